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

namespace
{

constexpr double NaN = std::numeric_limits<double>::quiet_NaN();

bool
IsMessage(const PlanStep& s)
{
    return s.kind == STEP_UPLINK || s.kind == STEP_DOWNLINK;
}

double
SinceS(Time start, const std::optional<Time>& at)
{
    return at ? (*at - start).GetSeconds() : NaN;
}

} // namespace

std::vector<const PlanRecord*>
RecordsById(const PlanView& plan, uint32_t devices)
{
    std::vector<const PlanRecord*> byId(devices, nullptr);
    for (uint32_t i = 0; i < plan.header.num_devices; ++i)
    {
        const PlanRecord& r = plan.records[i];
        if (r.device_id >= devices)
        {
            throw std::runtime_error("plan names device " + std::to_string(r.device_id) + " of " +
                                     std::to_string(devices));
        }
        if (uint64_t(r.first_step) + r.step_count > plan.header.num_steps)
        {
            throw std::runtime_error("plan gives device " + std::to_string(r.device_id) +
                                     " steps beyond the plan's " + std::to_string(plan.header.num_steps));
        }
        for (uint32_t j = 0; j < r.step_count; ++j)
        {
            const PlanStep& s = plan.steps[r.first_step + j];
            if (s.device_id != r.device_id || s.index != j || s.kind > STEP_DOWNLINK ||
                !(s.seconds >= 0 && std::isfinite(s.seconds)))
            {
                throw std::runtime_error("plan step " + std::to_string(r.first_step + j) + " of device " +
                                         std::to_string(r.device_id) + " is malformed");
            }
        }
        byId[r.device_id] = &r;
    }
    return byId;
}

double
SpanS(const std::optional<Time>& from, const std::optional<Time>& to)
{
    return from && to ? (*to - *from).GetSeconds() : NaN;
}

uint32_t
RoundProtocol::Start(const PlanView& plan,
                     const std::vector<const PlanRecord*>& byId,
                     Carrier& carrier,
                     std::function<void()> end)
{
    Stop();
    ++m_round;
    m_open = true;
    m_carrier = &carrier;
    m_end = std::move(end);
    m_server.Reset(plan.header.server_count);
    m_runs.assign(byId.size(), Run{});
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
        Run& run = m_runs[k];
        run.steps = plan.steps + r->first_step;
        run.count = r->step_count;
        run.timing.assign(run.count, StepTiming{});
        starting.push_back(k);
    }
    m_pending = starting.size();
    if (m_pending > 0 && std::isfinite(plan.header.deadline_s))
    {
        // scheduled first, so that it wins a tie: nothing starts at the deadline itself
        m_events.push_back(Simulator::Schedule(Seconds(std::max(0.0, plan.header.deadline_s)),
                                               &RoundProtocol::Finished, this, m_round));
    }
    for (uint32_t k : starting)
    {
        for (Party party : {DEVICE, SERVER})
        {
            m_events.push_back(Simulator::ScheduleNow(&RoundProtocol::Advance, this, m_round, k, party));
        }
    }
    return starting.size();
}

void
RoundProtocol::Advance(uint64_t round, uint32_t k, Party party)
{
    if (!Current(round))
    {
        return;
    }
    Run& r = m_runs[k];
    uint32_t& cursor = r.cursor[party];
    while (cursor < r.count)
    {
        const uint32_t i = cursor;
        const PlanStep& s = r.steps[i];
        StepTiming& t = r.timing[i];
        if (IsMessage(s))
        {
            const bool up = s.kind == STEP_UPLINK;
            if (party == (up ? DEVICE : SERVER)) // the sender hands it over and goes on
            {
                ++cursor;
                t.ready = Simulator::Now();
                NS_LOG_INFO("device " << k << " step " << i << (up ? " uplink " : " downlink ") << s.bytes
                                      << " bytes sent");
                m_carrier->Carry(k, up ? Direction::UPLINK : Direction::DOWNLINK, s.bytes,
                                 [this, round, k, i] { Arrived(round, k, i); });
                continue;
            }
            if (!t.end) // the receiver waits for it
            {
                return;
            }
            ++cursor;
            continue;
        }
        const Party owner = s.kind == STEP_DEVICE_COMPUTE ? DEVICE : SERVER;
        if (owner != party || t.end)
        {
            ++cursor;
            continue;
        }
        if (t.ready) // under way
        {
            return;
        }
        t.ready = Simulator::Now();
        auto done = [this, round, k, i, party] {
            if (Current(round))
            {
                m_runs[k].timing[i].end = Simulator::Now();
                Advance(round, k, party);
            }
        };
        if (owner == DEVICE)
        {
            t.start = t.ready;
            m_events.push_back(Simulator::Schedule(Seconds(s.seconds), done));
        }
        else
        {
            m_server.Submit(
                Seconds(s.seconds),
                [this, round, k, i](Time wait) {
                    if (Current(round))
                    {
                        StepTiming& st = m_runs[k].timing[i];
                        st.start = *st.ready + wait;
                    }
                },
                done);
        }
        return;
    }
    if (r.finished[party])
    {
        return;
    }
    r.finished[party] = true;
    if (r.finished[DEVICE] && r.finished[SERVER] && --m_pending == 0)
    {
        Finished(round);
    }
}

void
RoundProtocol::Arrived(uint64_t round, uint32_t k, uint32_t i)
{
    if (!Current(round))
    {
        return;
    }
    Run& r = m_runs[k];
    r.timing[i].end = Simulator::Now();
    const bool up = r.steps[i].kind == STEP_UPLINK;
    NS_LOG_INFO("device " << k << " step " << i << (up ? " uplink " : " downlink ") << r.steps[i].bytes
                          << " bytes arrived");
    Advance(round, k, up ? SERVER : DEVICE);
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
    m_server.Clear(); // requests still queued or running were cut by the deadline
}

void
RoundProtocol::Report(uint32_t k, Time start, OutcomeRecord& o, OutcomeStep* steps) const
{
    const Run& r = m_runs.at(k);
    const Time now = Simulator::Now();
    o.uplink_delivered_bytes = m_carrier ? m_carrier->Received(k, Direction::UPLINK) : 0;
    o.downlink_delivered_bytes = m_carrier ? m_carrier->Received(k, Direction::DOWNLINK) : 0;
    o.steps_completed = 0;
    o.messages_delivered = 0;
    o.uplink_transfer_s = o.downlink_transfer_s = o.device_compute_s = o.server_compute_s = 0;
    o.server_wait_s = NaN;
    std::optional<Time> lastEnd[2]; ///< per direction, when its latest message arrived
    bool blocked[2]{false, false};  ///< per direction, an earlier message has not arrived
    uint64_t arrivedBytes[2]{0, 0}; ///< per direction, bytes of the messages that arrived
    const uint64_t received[2]{o.uplink_delivered_bytes, o.downlink_delivered_bytes};
    bool stepDone = true; ///< every step so far of the current local step ended
    std::optional<Time> lastDone;
    for (uint32_t i = 0; i < r.count; ++i)
    {
        const PlanStep& s = r.steps[i];
        StepTiming t = r.timing[i];
        uint64_t delivered = 0;
        if (IsMessage(s))
        {
            const int dir = s.kind == STEP_UPLINK ? 0 : 1;
            // its transfer starts once the direction has carried every earlier message
            if (t.ready && !blocked[dir])
            {
                t.start = lastEnd[dir] ? std::max(*t.ready, *lastEnd[dir]) : *t.ready;
            }
            if (t.end)
            {
                delivered = s.bytes;
                arrivedBytes[dir] += s.bytes;
                lastEnd[dir] = t.end;
                ++o.messages_delivered;
            }
            else
            {
                blocked[dir] = true;
                if (t.start) // under way when the round ended
                {
                    delivered = std::min(s.bytes, received[dir] - std::min(received[dir], arrivedBytes[dir]));
                }
            }
            if (t.start)
            {
                double& phase = dir == 0 ? o.uplink_transfer_s : o.downlink_transfer_s;
                phase += ((t.end ? *t.end : now) - *t.start).GetSeconds();
            }
        }
        else if (t.start)
        {
            (s.kind == STEP_DEVICE_COMPUTE ? o.device_compute_s : o.server_compute_s) +=
                ((t.end ? *t.end : now) - *t.start).GetSeconds();
        }
        if (s.kind == STEP_SERVER_COMPUTE && t.ready)
        {
            const Time waited = (t.start ? *t.start : now) - *t.ready;
            o.server_wait_s = (std::isnan(o.server_wait_s) ? 0.0 : o.server_wait_s) + waited.GetSeconds();
        }
        // a local step is complete when its last step ended (steps of one local step are contiguous)
        stepDone = stepDone && t.end.has_value();
        const bool lastOfLocalStep = i + 1 == r.count || r.steps[i + 1].local_step != s.local_step;
        if (lastOfLocalStep)
        {
            if (s.local_step > 0 && stepDone)
            {
                ++o.steps_completed;
            }
            stepDone = true;
        }
        if (t.end)
        {
            lastDone = lastDone ? std::max(*lastDone, *t.end) : *t.end;
        }
        steps[i] = OutcomeStep{s.device_id, s.index, SinceS(start, t.ready), SinceS(start, t.start),
                               SinceS(start, t.end), delivered};
    }
    const bool done = r.finished[DEVICE] && r.finished[SERVER];
    o.deadline_met = done ? 1 : 0;
    o.completion_time_s = !done ? NaN : lastDone ? (*lastDone - start).GetSeconds() : 0.0;
}

} // namespace cosim
