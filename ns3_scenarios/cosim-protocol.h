// The application layer of a round, shared by both radios. Each scheduled device's round is the
// plan's sequence of steps (PlanStep: computations and messages, cosim-messages.h), walked by two
// parties: the device runs its computations, sends its uplink messages and waits for its
// downlink ones; the server runs its computations (queued for a free accelerator,
// cosim-server.h), sends the downlink messages and waits for the uplink ones. A party's next step
// starts when its previous one is done: a computation when it finished, a message it waits for
// when it fully arrived, a message it sends as soon as it is handed to the radio. The deadline
// cuts every device wherever it is. A radio only carries bytes (Carrier), so both radios time a
// round's steps the same way, here.
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

/// What a radio does for the protocol: its MAC and PHY carry a device's messages one way.
class Carrier
{
  public:
    virtual ~Carrier() = default;

    /// Carry a message of `bytes` of device `k` in direction `dir` and call `delivered` once its
    /// last byte has arrived (0 bytes: at once). Messages of one device and direction arrive in
    /// the order they were handed over, as on one stream; a new one may be handed over while
    /// earlier ones are still under way.
    virtual void Carry(uint32_t k, Direction dir, uint64_t bytes, std::function<void()> delivered) = 0;

    /// Payload bytes of device `k` that have arrived in direction `dir` this round.
    virtual uint64_t Received(uint32_t k, Direction dir) const = 0;
};

/// The plan of a round as the bridge holds it.
struct PlanView
{
    const PlanHeader& header;
    const PlanRecord* records;
    const PlanStep* steps;
};

/// Where a round's outcome goes.
struct OutcomeView
{
    OutcomeHeader& header;
    OutcomeRecord* records;
    OutcomeStep* steps;
};

/// to - from in seconds, exact to the nanosecond; NaN unless both happened.
double SpanS(const std::optional<ns3::Time>& from, const std::optional<ns3::Time>& to);

/// The plan's record of each device, by device id (nullptr: the plan does not name it); throws
/// for a device id the scenario does not have, or steps outside the plan's.
std::vector<const PlanRecord*> RecordsById(const PlanView& plan, uint32_t devices);

class RoundProtocol
{
  public:
    /// Starts the round of every device scheduled with a bandwidth share (one without cannot
    /// send and is not waited for) and schedules the deadline. `end` is called once: when the
    /// last of them has finished its steps, or at the deadline. Returns how many devices started.
    uint32_t Start(const PlanView& plan,
                   const std::vector<const PlanRecord*>& byId,
                   Carrier& carrier,
                   std::function<void()> end);

    /// Ends the round where it stands: computations, server requests and the deadline still
    /// pending are dropped, and nothing the carrier reports later counts.
    void Stop();

    /// Writes the protocol's part of device k's outcome (completion, phases, steps, bytes) and
    /// one OutcomeStep per plan step of the device; `start` is the round's start.
    void Report(uint32_t k, ns3::Time start, OutcomeRecord& o, OutcomeStep* steps) const;

  private:
    enum Party
    {
        DEVICE = 0,
        SERVER = 1
    };

    struct StepTiming
    {
        std::optional<ns3::Time> ready;
        std::optional<ns3::Time> start;
        std::optional<ns3::Time> end;
    };

    /// One device's round: its steps, where each party stands, and when each step ran.
    struct Run
    {
        const PlanStep* steps{nullptr};
        uint32_t count{0};
        uint32_t cursor[2]{0, 0};
        bool finished[2]{false, false};
        std::vector<StepTiming> timing;
    };

    /// Walks `party` of device k forward until it must wait (or has no steps left).
    void Advance(uint64_t round, uint32_t k, Party party);
    void Arrived(uint64_t round, uint32_t k, uint32_t i);
    void Finished(uint64_t round);
    bool Current(uint64_t round) const
    {
        return round == m_round && m_open;
    }

    Carrier* m_carrier{nullptr};
    EdgeServer m_server;
    std::vector<Run> m_runs;
    std::vector<ns3::EventId> m_events; ///< the devices' computations and the deadline
    std::function<void()> m_end;
    uint32_t m_pending{0};
    uint64_t m_round{0}; ///< counts Start calls, so callbacks of an earlier round are ignored
    bool m_open{false};
};

} // namespace cosim

#endif // COSIM_PROTOCOL_H
