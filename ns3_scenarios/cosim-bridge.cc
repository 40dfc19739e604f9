#include "cosim-bridge.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <iostream>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cosim
{

namespace
{
constexpr long SLICE_NS = 100'000'000; // liveness is checked every 100 ms while waiting

/// Exit code when the Python side vanished; Python is gone, so nobody reads it but the log.
constexpr int EXIT_PEER_DIED = 75;
} // namespace

ShmBridge::ShmBridge(const std::string& name, double idleTimeoutS)
    : m_name(name),
      m_idleTimeoutS(idleTimeoutS)
{
    std::string shmName = name.empty() || name[0] == '/' ? name : "/" + name;
    m_fd = shm_open(shmName.c_str(), O_RDWR, 0);
    if (m_fd < 0)
    {
        throw BridgeError("cannot open shared-memory segment " + shmName + ": " +
                          std::strerror(errno) + " (is the Python side running?)");
    }
    struct stat st{};
    if (fstat(m_fd, &st) != 0 || static_cast<std::size_t>(st.st_size) < sizeof(SegmentHeader))
    {
        throw BridgeError("shared-memory segment " + shmName + " is too small to be a cosim segment");
    }
    m_size = static_cast<std::size_t>(st.st_size);
    void* p = mmap(nullptr, m_size, PROT_READ | PROT_WRITE, MAP_SHARED, m_fd, 0);
    if (p == MAP_FAILED)
    {
        throw BridgeError(std::string("mmap of the segment failed: ") + std::strerror(errno));
    }
    m_base = static_cast<char*>(p);
    m_header = reinterpret_cast<SegmentHeader*>(m_base);
    if (m_header->magic != MAGIC)
    {
        throw BridgeError("segment " + shmName + " is not a cosim segment (bad magic)");
    }
    m_header->peer_layout_version = LAYOUT_VERSION;
    m_header->ns3_pid = getpid();
    if (m_header->layout_version != LAYOUT_VERSION)
    {
        std::string msg = "message layout mismatch: the Python side uses layout version " +
                          std::to_string(m_header->layout_version) +
                          ", this ns-3 scenario was built for version " +
                          std::to_string(LAYOUT_VERSION) + "; rebuild it with `make build`";
        // Only the prelude is common to all versions: write the message and wake Python.
        std::snprintf(m_header->error, sizeof(m_header->error), "%s", msg.c_str());
        m_header->status = STATUS_ERROR;
        sem_post(&m_header->to_python);
        throw BridgeError(msg);
    }
    m_offsets = ComputeOffsets(m_header->max_devices, m_header->max_steps);
    if (m_offsets.total > m_size)
    {
        throw BridgeError("segment is smaller than its declared capacity of " +
                          std::to_string(m_header->max_devices) + " devices and " +
                          std::to_string(m_header->max_steps) + " steps");
    }
}

ShmBridge::~ShmBridge()
{
    if (m_base)
    {
        munmap(m_base, m_size);
    }
    if (m_fd >= 0)
    {
        close(m_fd);
    }
}

bool
ShmBridge::PythonAlive() const
{
    auto pid = static_cast<pid_t>(m_header->python_pid);
    if (pid <= 0)
    {
        return true;
    }
    return kill(pid, 0) == 0 || errno == EPERM;
}

uint32_t
ShmBridge::WaitCommand()
{
    double waited = 0;
    while (true)
    {
        timespec deadline{};
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_nsec += SLICE_NS;
        if (deadline.tv_nsec >= 1'000'000'000)
        {
            deadline.tv_sec += 1;
            deadline.tv_nsec -= 1'000'000'000;
        }
        if (sem_timedwait(&m_header->to_ns3, &deadline) == 0)
        {
            return m_header->command;
        }
        if (errno != ETIMEDOUT && errno != EINTR)
        {
            throw BridgeError(std::string("sem_timedwait failed: ") + std::strerror(errno));
        }
        if (!PythonAlive())
        {
            std::cerr << "cosim-scenario: the Python process " << m_header->python_pid
                      << " is gone; removing its segment and exiting" << std::endl;
            shm_unlink((m_name[0] == '/' ? m_name : "/" + m_name).c_str());
            std::_Exit(EXIT_PEER_DIED);
        }
        waited += SLICE_NS / 1e9;
        if (m_idleTimeoutS > 0 && waited > m_idleTimeoutS)
        {
            throw BridgeError("no command from the Python side within " +
                              std::to_string(m_idleTimeoutS) + " s (--bridgeTimeout)");
        }
    }
}

void
ShmBridge::Reply(uint32_t status)
{
    m_header->status = status;
    m_header->reply_sequence = m_header->sequence;
    sem_post(&m_header->to_python);
}

void
ShmBridge::ReplyError(const std::string& message)
{
    std::snprintf(m_header->error, sizeof(m_header->error), "%s", message.c_str());
    Reply(STATUS_ERROR);
}

} // namespace cosim
