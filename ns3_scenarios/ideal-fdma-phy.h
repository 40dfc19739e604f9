// The physical layer of the ideal-fdma radio: a SpectrumPhy that sends signals on a contiguous
// range of bins and computes, per received signal, its SINR against thermal noise and every other
// signal that overlaps it in time and frequency. The base station and the devices use the same
// class; they differ only in noise figure and in the bins they listen to.
#ifndef IDEAL_FDMA_PHY_H
#define IDEAL_FDMA_PHY_H

#include "ns3/mobility-model.h"
#include "ns3/spectrum-channel.h"
#include "ns3/spectrum-phy.h"
#include "ns3/spectrum-signal-parameters.h"
#include "ns3/spectrum-transmit-filter.h"

#include <functional>
#include <vector>

namespace cosim
{

/// A signal of the ideal-fdma radio: what it is, whom it is for and which bins it occupies.
struct FdmaSignal : public ns3::SpectrumSignalParameters
{
    enum Kind
    {
        SOUNDING,
        UPLINK,
        DOWNLINK
    };

    ns3::Ptr<ns3::SpectrumSignalParameters> Copy() const override;

    Kind kind{SOUNDING};
    uint32_t device{0};                   ///< the device the signal comes from or goes to
    uint32_t bytes{0};                    ///< payload carried
    double se{0};                         ///< spectral efficiency it was sent with (bit/s/Hz)
    uint32_t lo{0};                       ///< first occupied bin
    uint32_t hi{0};                       ///< one past the last occupied bin
    uint64_t epoch{0};                    ///< round (or measurement) the signal belongs to
    const ns3::SpectrumPhy* dst{nullptr}; ///< the phy meant to decode it
};

class FdmaPhy : public ns3::SpectrumPhy
{
  public:
    /// signal, SINR over its bins (linear), received power (W)
    using RxCallback = std::function<void(ns3::Ptr<const FdmaSignal>, double, double)>;

    static ns3::TypeId GetTypeId();

    void Configure(ns3::Ptr<ns3::MobilityModel> mobility,
                   ns3::Ptr<ns3::SpectrumChannel> channel,
                   ns3::Ptr<const ns3::SpectrumModel> model,
                   double noisePsdWHz,
                   RxCallback onRx);

    /// Forget every signal and accept only those of this epoch from now on.
    void Reset(uint64_t epoch);
    /// The bins the receiver is tuned to; signals elsewhere do not reach it. lo == hi: deaf.
    void Listen(uint32_t lo, uint32_t hi);
    bool Hears(uint32_t lo, uint32_t hi) const;
    void Send(ns3::Ptr<FdmaSignal> signal);

    void SetDevice(ns3::Ptr<ns3::NetDevice> d) override;
    ns3::Ptr<ns3::NetDevice> GetDevice() const override;
    void SetMobility(ns3::Ptr<ns3::MobilityModel> m) override;
    ns3::Ptr<ns3::MobilityModel> GetMobility() const override;
    void SetChannel(ns3::Ptr<ns3::SpectrumChannel> c) override;
    ns3::Ptr<const ns3::SpectrumModel> GetRxSpectrumModel() const override;
    ns3::Ptr<ns3::Object> GetAntenna() const override;
    void StartRx(ns3::Ptr<ns3::SpectrumSignalParameters> params) override;

  private:
    struct Reception
    {
        ns3::Ptr<FdmaSignal> signal;
        double signalPsd;       ///< sum over its bins of its own received PSD (W/Hz)
        double interference{0}; ///< time integral of the other signals' PSD summed over its bins
    };

    void EndSignal(ns3::Ptr<FdmaSignal> signal);
    /// Integrate the interference seen by every ongoing reception up to now.
    void Accumulate();

    ns3::Ptr<ns3::MobilityModel> m_mobility;
    ns3::Ptr<ns3::SpectrumChannel> m_channel;
    ns3::Ptr<const ns3::SpectrumModel> m_model;
    double m_noisePsd{0};
    double m_binWidth{0};
    RxCallback m_onRx;
    uint32_t m_listenLo{0};
    uint32_t m_listenHi{0};
    uint64_t m_epoch{0};
    std::vector<double> m_totalPsd; ///< sum of the PSDs of every signal on the air here, per bin
    uint32_t m_onAir{0};
    ns3::Time m_lastUpdate;
    std::vector<Reception> m_receptions;
};

/// Spares the channel the path loss of signals a receiver is not tuned to (e.g. device to device
/// on disjoint sub-bands): they would add nothing to its SINR.
class FdmaListenFilter : public ns3::SpectrumTransmitFilter
{
  public:
    static ns3::TypeId GetTypeId();

  private:
    bool DoFilter(ns3::Ptr<const ns3::SpectrumSignalParameters> params,
                  ns3::Ptr<const ns3::SpectrumPhy> receiverPhy) override;
    int64_t DoAssignStreams(int64_t stream) override;
};

} // namespace cosim

#endif // IDEAL_FDMA_PHY_H
