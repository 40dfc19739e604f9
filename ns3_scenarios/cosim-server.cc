#include "cosim-server.h"

#include "ns3/simulator.h"

#include <stdexcept>
#include <utility>

using namespace ns3;

namespace cosim
{

void
EdgeServer::Reset(uint32_t count)
{
    if (count == 0)
    {
        throw std::runtime_error("the plan gives the server no accelerator (server_count 0)");
    }
    m_count = count;
    Clear();
}

void
EdgeServer::Clear()
{
    for (EventId& e : m_running)
    {
        e.Cancel();
    }
    m_running.clear();
    m_queue.clear();
    m_free = m_count;
}

void
EdgeServer::Submit(Time work, Started started, Done done)
{
    Request request{work, Simulator::Now(), std::move(started), std::move(done)};
    if (m_free > 0)
    {
        Start(std::move(request));
    }
    else
    {
        m_queue.push_back(std::move(request));
    }
}

void
EdgeServer::Start(Request request)
{
    --m_free;
    m_running.push_back(Simulator::Schedule(request.work, &EdgeServer::Finished, this, std::move(request.done)));
    request.started(Simulator::Now() - request.arrived);
}

void
EdgeServer::Finished(Done done)
{
    ++m_free;
    if (!m_queue.empty())
    {
        Request next = std::move(m_queue.front());
        m_queue.pop_front();
        Start(std::move(next));
    }
    done();
}

} // namespace cosim
