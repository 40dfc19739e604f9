#include "cosim-protocol.h"

#include "ns3/log.h"
#include "ns3/simulator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

using namespace ns3;

NS_LOG_COMPONENT_DEFINE("CosimProtocol");

namespace cosim
{

std::vector<const PlanRecord*>
RecordsById(const PlanHeader& plan, const PlanRecord* records, uint32_t devices)
{
    std::vector<const PlanRecord*> byId(devices, nullptr);
    for (uint32_t i = 0; i < plan.num_devices; ++i)
    {
        if (records[i].device_id >= devices)
        {
            throw std::runtime_error("plan names device " + std::to_string(records[i].device_id) +
                                     " of " + std::to_string(devices));
        }
        byId[records[i].device_id] = &records[i];
    }
    return byId;
}

double
SpanS(const std::optional<Time>& from, const std::optional<Time>& to)
{
    return from && to ? (*to - *from).GetSeconds() : std::numeric_limits<double>::quiet_NaN();
}

uint32_t
RoundProtocol::Start(const PlanHeader& plan,
                     const std::vector<const PlanRecord*>& byId,
                     Carrier& carrier,
                     std::function<void()> end)
{
    Stop();
    ++m_round;
    m_open = true;
    m_carrier = &carrier;
    m_end = std::move(end);
    m_serverCount = plan.server_count;
    m_server.Reset(m_serverCount);
    m_timing.assign(byId.size(), DeviceTiming{});
    std::vector<uint32_t> starting;
    for (uint32_t k = 0; k < byId.size(); ++k)
    {
        const PlanRecord* r = byId[k];
        if (!r || !r->scheduled)
        {
            continue;
        }
        if (!(r->bandwidth_share > 0))
        {
            NS_LOG_WARN("device " << k << " is scheduled without bandwidth and cannot finish");
            continue;
        }
        starting.push_back(k);
    }
    m_pending = starting.size();
    if (m_pending > 0 && std::isfinite(plan.deadline_s))
    {
        // scheduled first, so that it wins a tie: nothing starts at the deadline itself
        m_events.push_back(Simulator::Schedule(Seconds(std::max(0.0, plan.deadline_s)),
                                               &RoundProtocol::Finished, this, m_round));
    }
    for (uint32_t k : starting)
    {
        m_events.push_back(Simulator::Schedule(Seconds(std::max(0.0, byId[k]->compute_time_s)),
                                               &RoundProtocol::Uplink, this, m_round, k, *byId[k]));
    }
    return m_pending;
}

void
RoundProtocol::Uplink(uint64_t round, uint32_t k, const PlanRecord& r)
{
    m_timing[k].uplinkStart = Simulator::Now();
    Time work = Seconds(r.server_time_s);
    uint64_t downlinkBytes = r.downlink_bytes;
    m_carrier->Carry(k, Direction::UPLINK, r.uplink_bytes, [this, round, k, work, downlinkBytes]() {
        if (!Current(round))
        {
            return;
        }
        m_timing[k].uplinkEnd = Simulator::Now();
        m_server.Submit(work, [this, round, k, downlinkBytes](Time wait) {
            if (!Current(round))
            {
                return;
            }
            m_timing[k].serverWait = wait;
            m_timing[k].downlinkStart = Simulator::Now();
            m_carrier->Carry(k, Direction::DOWNLINK, downlinkBytes, [this, round, k]() {
                if (!Current(round))
                {
                    return;
                }
                m_timing[k].downlinkEnd = Simulator::Now();
                if (--m_pending == 0)
                {
                    Finished(round);
                }
            });
        });
    });
}

void
RoundProtocol::Finished(uint64_t round)
{
    if (!Current(round))
    {
        return;
    }
    m_open = false;
    m_end();
}

void
RoundProtocol::Stop()
{
    m_open = false;
    for (EventId& e : m_events)
    {
        e.Cancel();
    }
    m_events.clear();
    if (m_serverCount > 0)
    {
        m_server.Reset(m_serverCount); // requests still queued or running were cut by the deadline
    }
}

} // namespace cosim
