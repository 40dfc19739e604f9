// The ns-3 end of the shared-memory bridge (see cosim/wire/bridge.py for the Python end).
// Python creates the segment and both semaphores; this side attaches, checks magic and layout
// version, then answers one command at a time. Waits block on a process-shared semaphore in
// short slices and check between slices that the Python process is still alive, so a killed
// Python side makes this process exit (and remove the orphaned segment) within one slice.
#ifndef COSIM_BRIDGE_H
#define COSIM_BRIDGE_H

#include "cosim-messages.h"

#include <stdexcept>
#include <string>

namespace cosim
{

/// Raised for anything that makes the bridge unusable; main() prints it and exits non-zero.
class BridgeError : public std::runtime_error
{
  public:
    using std::runtime_error::runtime_error;
};

class ShmBridge
{
  public:
    /// Attach to /dev/shm/<name>. Throws BridgeError on a missing segment, a foreign magic or a
    /// layout version other than LAYOUT_VERSION (after telling the Python side both versions).
    ShmBridge(const std::string& name, double idleTimeoutS);
    ~ShmBridge();
    ShmBridge(const ShmBridge&) = delete;
    ShmBridge& operator=(const ShmBridge&) = delete;

    /// Block until Python posts a command; returns CMD_*. Exits the process if Python died,
    /// and throws BridgeError if no command came within the idle timeout.
    uint32_t WaitCommand();
    /// Answer the current command (STATUS_OK, STATUS_READY) and wake Python.
    void Reply(uint32_t status);
    /// Answer with STATUS_ERROR and a message Python will show to the user.
    void ReplyError(const std::string& message);

    SegmentHeader& Header() { return *m_header; }
    ReportHeader& Report() { return *At<ReportHeader>(m_offsets.report_header); }
    ReportRecord* ReportRecords() { return At<ReportRecord>(m_offsets.report_records); }
    const PlanHeader& Plan() { return *At<PlanHeader>(m_offsets.plan_header); }
    const PlanRecord* PlanRecords() { return At<PlanRecord>(m_offsets.plan_records); }
    const PlanStep* PlanSteps() { return At<PlanStep>(m_offsets.plan_steps); }
    OutcomeHeader& Outcome() { return *At<OutcomeHeader>(m_offsets.outcome_header); }
    OutcomeRecord* OutcomeRecords() { return At<OutcomeRecord>(m_offsets.outcome_records); }
    OutcomeStep* OutcomeSteps() { return At<OutcomeStep>(m_offsets.outcome_steps); }

  private:
    template <typename T>
    T* At(std::size_t offset)
    {
        return reinterpret_cast<T*>(m_base + offset);
    }

    bool PythonAlive() const;

    std::string m_name;
    double m_idleTimeoutS;
    int m_fd{-1};
    std::size_t m_size{0};
    char* m_base{nullptr};
    SegmentHeader* m_header{nullptr};
    SegmentOffsets m_offsets{};
};

} // namespace cosim

#endif // COSIM_BRIDGE_H
