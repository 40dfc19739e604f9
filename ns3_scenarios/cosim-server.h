// The edge server of a round, shared by both radios: each scheduled device's request (the server
// part of its local steps) is served in arrival order by one of `count` identical accelerators,
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
    /// Called when the request has been served, with how long it waited for an accelerator.
    using Done = std::function<void(ns3::Time wait)>;

    /// A new round with `count` accelerators: whatever was queued or running is dropped.
    void Reset(uint32_t count);

    /// Serve `work` once an accelerator is free (now, if one is).
    void Submit(ns3::Time work, Done done);

  private:
    struct Request
    {
        ns3::Time work;
        ns3::Time arrived;
        Done done;
    };

    void Start(Request request);
    void Finished(Done done, ns3::Time wait);

    uint32_t m_free{0};
    std::deque<Request> m_queue;
    std::vector<ns3::EventId> m_running;
};

} // namespace cosim

#endif // COSIM_SERVER_H
