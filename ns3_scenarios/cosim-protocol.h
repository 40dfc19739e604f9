// The application layer of a round, shared by both radios: each scheduled device computes for its
// compute_time_s, sends its uplink bytes, waits for the edge server (its requests served in
// arrival order, cosim-server.h) and receives its downlink bytes; the deadline cuts every device
// wherever it is. A radio only carries bytes (Carrier), so both radios time a round's phases the
// same way, here.
#ifndef COSIM_PROTOCOL_H
#define COSIM_PROTOCOL_H

#include "cosim-messages.h"
#include "cosim-server.h"

#include "ns3/event-id.h"
#include "ns3/nstime.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace cosim
{

enum class Direction
{
    UPLINK,
    DOWNLINK
};

/// What a radio does for the protocol: its MAC and PHY carry a device's bytes one way.
class Carrier
{
  public:
    virtual ~Carrier() = default;

    /// Carry `bytes` of device `k` in direction `dir` and call `delivered` once the last byte has
    /// arrived (0 bytes: at once). The protocol calls it at most once per direction and round.
    virtual void Carry(uint32_t k, Direction dir, uint64_t bytes, std::function<void()> delivered) = 0;
};

/// When each phase of one device's round began and ended (empty: it did not, before the round ended).
struct DeviceTiming
{
    std::optional<ns3::Time> uplinkStart;
    std::optional<ns3::Time> uplinkEnd;
    std::optional<ns3::Time> downlinkStart;
    std::optional<ns3::Time> downlinkEnd;
    std::optional<ns3::Time> serverWait; ///< how long its request queued for a free accelerator

    bool Done() const
    {
        return downlinkEnd.has_value();
    }
};

/// to - from in seconds, exact to the nanosecond; NaN unless both happened.
double SpanS(const std::optional<ns3::Time>& from, const std::optional<ns3::Time>& to);

/// The plan's record of each device, by device id (nullptr: the plan does not name it); throws
/// for a device id the scenario does not have.
std::vector<const PlanRecord*> RecordsById(const PlanHeader& plan, const PlanRecord* records, uint32_t devices);

class RoundProtocol
{
  public:
    /// Starts the round of every device scheduled with a bandwidth share (one without cannot
    /// send and is not waited for) and schedules the deadline. `end` is called once: when the
    /// last of them has its downlink, or at the deadline. Returns how many devices started.
    uint32_t Start(const PlanHeader& plan,
                   const std::vector<const PlanRecord*>& byId,
                   Carrier& carrier,
                   std::function<void()> end);

    /// Ends the round where it stands: computations, server requests and the deadline still
    /// pending are dropped, and nothing the carrier reports later counts.
    void Stop();

    const DeviceTiming& Timing(uint32_t k) const
    {
        return m_timing.at(k);
    }

  private:
    void Uplink(uint64_t round, uint32_t k, const PlanRecord& r);
    void Finished(uint64_t round);
    bool Current(uint64_t round) const
    {
        return round == m_round && m_open;
    }

    Carrier* m_carrier{nullptr};
    EdgeServer m_server;
    uint32_t m_serverCount{0};
    std::vector<DeviceTiming> m_timing;
    std::vector<ns3::EventId> m_events; ///< the devices' computations and the deadline
    std::function<void()> m_end;
    uint32_t m_pending{0};
    uint64_t m_round{0}; ///< counts Start calls, so callbacks of an earlier round are ignored
    bool m_open{false};
};

} // namespace cosim

#endif // COSIM_PROTOCOL_H
