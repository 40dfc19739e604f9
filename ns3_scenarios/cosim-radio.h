// The interface every radio of the scenario implements (`--radio=lte`, `--radio=ideal-fdma`).
// The scenario owns nodes, mobility and the bridge; a radio owns devices, channel, MAC and PHY,
// and carries the bytes of the round's protocol (cosim-protocol.h, shared by both radios).
#ifndef COSIM_RADIO_H
#define COSIM_RADIO_H

#include "cosim-messages.h"
#include "cosim-protocol.h"

#include "ns3/mobility-model.h"
#include "ns3/node-container.h"
#include "ns3/nstime.h"
#include "ns3/propagation-loss-model.h"

#include <memory>
#include <string>
#include <vector>

namespace cosim
{

/// Every physical knob of the scenario; filled from CommandLine arguments in main().
struct ScenarioParams
{
    uint32_t devices{10};
    std::string radio{"ideal-fdma"};      ///< lte | ideal-fdma
    std::string propagation{"uma"};       ///< uma | umi | log-distance
    bool shadowing{true};                 ///< 3GPP shadowing / log-normal for log-distance
    double shadowingSigmaDb{8.0};         ///< log-distance only (3GPP models use their own)
    std::string fading{"rayleigh"};       ///< rayleigh | nakagami | none
    double nakagamiM{1.0};                ///< Nakagami m (fading=nakagami)
    std::string fadingProcess{"doppler"}; ///< doppler (memory: follows the device's motion) | per-packet
    double losCorrelationM{50.0};         ///< 3GPP LOS/NLOS redrawn every this many metres moved; 0 = once
    double frequencyHz{2.1e9};            ///< uplink carrier
    double bandwidthHz{20e6};             ///< total uplink bandwidth B
    double ueTxPowerDbm{23.0};            ///< device transmit power
    double bsTxPowerDbm{46.0};            ///< base station transmit power (whole band)
    double bsNoiseFigureDb{5.0};
    double ueNoiseFigureDb{9.0};
    double bsHeightM{25.0};
    double ueHeightM{1.5};
    uint32_t packetBytes{1400};           ///< application payload per packet
    // ideal-fdma link adaptation and granularity
    double linkMarginDb{3.0};             ///< SNR gap of the link adaptation to Shannon (dB)
    double maxSpectralEfficiency{0.0};    ///< cap on the spectral efficiency (bit/s/Hz), 0 = none
    uint32_t fdmaBins{1000};              ///< sub-bands across B; shares are whole numbers of them
    double lteBlerTarget{0.1};            ///< lte: block error rate the outer loop aims at
    bool lteHarq{true};                   ///< lte: HARQ both ways (RLC AM recovers what it gives up)
    bool ltePowerControl{false};          ///< lte: ns-3's uplink power control (3GPP open + closed loop)
};

/// What the base station measured of one device (the rest of ReportRecord is filled by main).
struct ChannelMeasurement
{
    double snrDb;
    double sinrDb;
    double rxPowerDbm;
    uint32_t servingCell;
    uint32_t losState; ///< 1 line of sight, 0 not, 2 the path loss model has no such state
};

class CosimRadio
{
  public:
    virtual ~CosimRadio() = default;

    /// Create devices, channel, stacks and applications on the base station and the devices.
    /// Mobility is already installed on every node.
    virtual void Install(const ScenarioParams& params,
                         ns3::NodeContainer bs,
                         ns3::NodeContainer ues) = 0;

    /// Simulated time to run before the first report (attachment, first SRS, ...).
    virtual ns3::Time WarmUp() const
    {
        return ns3::Seconds(0);
    }

    /// Measure the uplink channel of every device as the base station sees it. May advance the
    /// simulator a little (sounding signals); returns one entry per device.
    virtual std::vector<ChannelMeasurement> Measure() = 0;

    /// Enact one round: lay out the plan's shares, then run the round's protocol (RoundProtocol:
    /// each scheduled device's steps) until every scheduled device has finished them or the
    /// deadline passed. Fills the outcome header, one record per device and one step per plan step.
    virtual void Execute(const PlanView& plan, const OutcomeView& outcome) = 0;

    /// Noise power spectral density at the base station incl. its noise figure (dBm/Hz).
    double NoisePsdDbmHz(const ScenarioParams& p) const
    {
        return -174.0 + p.bsNoiseFigureDb;
    }
};

std::unique_ptr<CosimRadio> MakeLteRadio();

/// The project's defaults for ns-3 attributes of the LTE stack (RLC, TCP, PHY options), set
/// before the command line is parsed so that a user's --ns3::Class::Attribute=value wins.
void SetLteDefaults();
std::unique_ptr<CosimRadio> MakeIdealFdmaRadio();

/// The large-scale + fast-fading propagation chain selected by the parameters, shared by both
/// radios so the same flags mean the same channel. ns-3 adds fading at the end of the chain.
ns3::Ptr<ns3::PropagationLossModel> MakePropagationLoss(const ScenarioParams& params);

/// The LOS state of a link in the chain's 3GPP condition model: 1 LOS, 0 NLOS, 2 none (log-distance).
uint32_t LosState(ns3::Ptr<ns3::PropagationLossModel> loss,
                  ns3::Ptr<ns3::MobilityModel> a,
                  ns3::Ptr<ns3::MobilityModel> b);

/// ns-3's 3GPP shadowing replaces the value drawn at a link's first evaluation by another one at
/// its second: spend that first evaluation of every device-to-base-station link at set-up, so
/// the channel report and the round's packets see the same shadowing.
void PrimePropagationLoss(ns3::Ptr<ns3::PropagationLossModel> loss,
                          ns3::NodeContainer bs,
                          ns3::NodeContainer ues);

} // namespace cosim

#endif // COSIM_RADIO_H
