// The edge server of a round, shared by both radios: each scheduled device's request (a server
// computation of its round) is served in arrival order by one of `count` identical accelerators,
// so devices whose uplinks finish together queue for the server instead of being served at once.
#ifndef COSIM_SERVER_H
#define COSIM_SERVER_H

#include "ns3/event-id.h"
#include "ns3/nstime.h"

#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

namespace cosim
{

class EdgeServer
{
  public:
    /// Called when an accelerator takes the request, with how long it waited for one.
    using Started = std::function<void(ns3::Time wait)>;
    /// Called when the request has been served.
    using Done = std::function<void()>;

    /// A new round with `count` accelerators: whatever was queued or running is dropped.
    void Reset(uint32_t count);

    /// Drop whatever is queued or running (the deadline cut it); every accelerator is free again.
    void Clear();

    /// Serve `work` once an accelerator is free (now, if one is).
    void Submit(ns3::Time work, Started started, Done done);

  private:
    struct Request
    {
        ns3::Time work;
        ns3::Time arrived;
        Started started;
        Done done;
    };

    void Start(Request request);
    void Finished(Done done);

    uint32_t m_count{0};
    uint32_t m_free{0};
    std::deque<Request> m_queue;
    std::vector<ns3::EventId> m_running;
};

} // namespace cosim

#endif // COSIM_SERVER_H
