// `--radio=ideal-fdma`: the paper's FDMA model, carried packet by packet on a SpectrumChannel.
//
// The band B is cut into --fdmaBins equal bins. Each scheduled device gets a contiguous run of
// uplink bins (prefix sums of the shares, in order of device id); the plan's shares are the
// uplink's. The downlink band (FDD: a channel of its own) is cut into K equal parts, one per
// device of the cell, whether or not it is scheduled: the paper's fixed downlink rate per device,
// and what the scheduler plans with (B/K at the base station's power per Hz). Transmit power is
// spread evenly over the run, so a narrower run has a higher PSD. Link adaptation: a transfer's
// first packet goes at log2(1 + SNR / margin) bit/s/Hz (--linkMargin), optionally capped
// (--maxSpectralEfficiency), with SNR what the channel report measured over the device's run;
// every later packet at that of the SINR the last received packet met (the receiver's feedback,
// one packet late), so the rate follows the fading as it changes. Each packet is decoded if the
// SINR it actually met (fading, current path loss, interference) supports the spectral
// efficiency it was sent with, and lost packets are sent again (ARQ) until the transfer is
// complete or the round's deadline passes.
#include "cosim-protocol.h"
#include "cosim-radio.h"
#include "ideal-fdma-phy.h"

#include "ns3/log.h"
#include "ns3/mobility-model.h"
#include "ns3/node.h"
#include "ns3/propagation-delay-model.h"
#include "ns3/simulator.h"
#include "ns3/single-model-spectrum-channel.h"
#include "ns3/spectrum-model.h"
#include "ns3/spectrum-value.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <limits>
#include <stdexcept>

using namespace ns3;

NS_LOG_COMPONENT_DEFINE("IdealFdmaRadio");

namespace cosim
{

namespace
{

constexpr double kMinSe = 1e-3; ///< keeps a packet's duration finite at a hopeless SNR
const Time kSounding = MicroSeconds(50);
/// Sounding slots are spaced by more than the largest propagation delay difference (15 km).
const Time kSoundingSlot = MicroSeconds(100);
const double kNaN = std::numeric_limits<double>::quiet_NaN();

double
DbmToW(double dbm)
{
    return std::pow(10.0, (dbm - 30.0) / 10.0);
}

double
WToDbm(double w)
{
    return 10.0 * std::log10(w) + 30.0;
}

/// Spectral efficiency the link adaptation picks for an SNR (linear) over the transmitted band.
double
SpectralEfficiency(const ScenarioParams& p, double snr)
{
    double se = std::log2(1.0 + snr / std::pow(10.0, p.linkMarginDb / 10.0));
    double cap = p.maxSpectralEfficiency > 0 ? p.maxSpectralEfficiency : std::numeric_limits<double>::max();
    return std::isfinite(se) ? std::clamp(se, kMinSe, cap) : kMinSe;
}

/// One direction of one device's messages in the current round, carried one after the other: a
/// message's packets go when the one before it has fully arrived (link-layer ARQ per message).
struct Transfer
{
    FdmaSignal::Kind kind{FdmaSignal::UPLINK};
    uint32_t device{0};
    Ptr<FdmaPhy> tx;
    Ptr<FdmaPhy> rx;
    Ptr<SpectrumValue> psd;
    uint32_t lo{0};
    uint32_t hi{0};
    double se{0};    ///< spectral efficiency of the next packet
    double width{0}; ///< Hz of the transfer's run of bins
    // the message under way
    uint64_t total{0};
    uint64_t handedOut{0}; ///< fresh bytes put into packets so far
    uint64_t delivered{0};
    std::deque<uint32_t> retx; ///< sizes of lost packets waiting to be sent again
    bool active{false};        ///< a message is under way
    std::function<void()> onDelivered; ///< the protocol's, called when its last byte arrived
    std::deque<std::pair<uint64_t, std::function<void()>>> queued; ///< messages behind it
    // the round so far
    bool busy{false};
    Time txStart;
    uint64_t receivedBytes{0};
    uint32_t sent{0};
    uint32_t lost{0};
    uint32_t retransmissions{0};
    double airtimeS{0};
    double sinrDbSum{0};
    uint32_t received{0};
};

class IdealFdmaRadio : public CosimRadio, private Carrier
{
  public:
    void Install(const ScenarioParams& params, NodeContainer bs, NodeContainer ues) override;
    std::vector<ChannelMeasurement> Measure() override;
    void Execute(const PlanView& plan, const OutcomeView& outcome) override;

  private:
    struct Device
    {
        Ptr<FdmaPhy> phy;
        bool scheduled{false};
        Transfer up;
        Transfer down;
    };

    /// Starts a new round or measurement: whatever is still scheduled from before becomes a no-op.
    void NewEpoch();
    void Sound(uint32_t k);
    void OnRx(Ptr<const FdmaSignal> s, double sinr, double rxPowerW);
    void Carry(uint32_t k, Direction dir, uint64_t bytes, std::function<void()> delivered) override;
    uint64_t Received(uint32_t k, Direction dir) const override;
    /// Starts the next queued message unless one is under way.
    void Next(Transfer& t);
    /// Puts the next packet (a retransmission first) on the air unless the transmitter is busy.
    void Pump(Transfer& t);
    void TxEnd(uint64_t epoch, Transfer* t);
    Ptr<SpectrumValue> FlatPsd(uint32_t lo, uint32_t hi, double powerW) const;

    ScenarioParams m_p;
    Ptr<PropagationLossModel> m_loss;
    Ptr<MobilityModel> m_bsMobility;
    std::vector<Ptr<MobilityModel>> m_ueMobility;
    uint32_t m_bins{0};
    double m_binWidth{0};
    double m_bsNoisePsd{0}; ///< W/Hz incl. noise figure
    double m_ueNoisePsd{0};
    Ptr<SpectrumModel> m_model;
    Ptr<SingleModelSpectrumChannel> m_ulChannel; ///< devices transmit, the base station listens
    Ptr<SingleModelSpectrumChannel> m_dlChannel; ///< the base station transmits, devices listen
    Ptr<FdmaPhy> m_bs;
    std::vector<Device> m_dev;
    std::vector<double> m_measuredRxW; ///< last sounding of each device received at the BS
    std::vector<double> m_measuredSinr;
    bool m_measured{false};
    uint64_t m_epoch{0};
    RoundProtocol m_protocol;
};

void
IdealFdmaRadio::Install(const ScenarioParams& params, NodeContainer bs, NodeContainer ues)
{
    m_p = params;
    m_bins = params.fdmaBins;
    if (m_bins < params.devices)
    {
        throw std::runtime_error("radio ideal-fdma: --fdmaBins=" + std::to_string(m_bins) +
                                 " gives fewer bins than the " + std::to_string(params.devices) +
                                 " devices' downlink parts; use at least --devices bins");
    }
    if (!(params.linkMarginDb >= 0) || !(params.maxSpectralEfficiency >= 0))
    {
        throw std::runtime_error("radio ideal-fdma: --linkMargin and --maxSpectralEfficiency must be >= 0");
    }
    m_binWidth = params.bandwidthHz / m_bins;
    m_bsNoisePsd = DbmToW(NoisePsdDbmHz(params));
    m_ueNoisePsd = DbmToW(-174.0 + params.ueNoiseFigureDb);

    Bands bands(m_bins);
    double f0 = params.frequencyHz - params.bandwidthHz / 2;
    for (uint32_t i = 0; i < m_bins; ++i)
    {
        bands[i].fl = f0 + i * m_binWidth;
        bands[i].fc = bands[i].fl + m_binWidth / 2;
        bands[i].fh = bands[i].fl + m_binWidth;
    }
    m_model = Create<SpectrumModel>(bands);

    Ptr<PropagationLossModel> loss = MakePropagationLoss(params);
    PrimePropagationLoss(loss, bs, ues);
    auto bsMobility = bs.Get(0)->GetObject<MobilityModel>();
    m_loss = loss;
    m_bsMobility = bsMobility;
    m_ueMobility.clear();
    for (uint32_t k = 0; k < ues.GetN(); ++k)
    {
        m_ueMobility.push_back(ues.Get(k)->GetObject<MobilityModel>());
    }
    // FDD: uplink and downlink are separate channels, so an uplink packet reaches the base
    // station only and costs O(1), not one filter call per device
    for (auto* channel : {&m_ulChannel, &m_dlChannel})
    {
        *channel = CreateObject<SingleModelSpectrumChannel>();
        (*channel)->AddPropagationLossModel(loss);
        (*channel)->SetPropagationDelayModel(CreateObject<ConstantSpeedPropagationDelayModel>());
        (*channel)->AddSpectrumTransmitFilter(CreateObject<FdmaListenFilter>());
    }

    auto onRx = [this](Ptr<const FdmaSignal> s, double sinr, double rxPowerW) {
        OnRx(s, sinr, rxPowerW);
    };
    m_bs = CreateObject<FdmaPhy>();
    m_bs->Configure(bsMobility, m_dlChannel, m_model, m_bsNoisePsd, onRx);
    m_bs->Listen(0, m_bins);
    m_ulChannel->AddRx(m_bs);
    m_dev.resize(ues.GetN());
    for (uint32_t k = 0; k < ues.GetN(); ++k)
    {
        m_dev[k].phy = CreateObject<FdmaPhy>();
        m_dev[k].phy->Configure(ues.Get(k)->GetObject<MobilityModel>(), m_ulChannel, m_model,
                                m_ueNoisePsd, onRx);
        m_dlChannel->AddRx(m_dev[k].phy);
    }
    m_measuredRxW.assign(ues.GetN(), kNaN);
    m_measuredSinr.assign(ues.GetN(), kNaN);
}

Ptr<SpectrumValue>
IdealFdmaRadio::FlatPsd(uint32_t lo, uint32_t hi, double powerW) const
{
    auto psd = Create<SpectrumValue>(m_model);
    for (uint32_t b = lo; b < hi; ++b)
    {
        (*psd)[b] = powerW / ((hi - lo) * m_binWidth);
    }
    return psd;
}

void
IdealFdmaRadio::NewEpoch()
{
    ++m_epoch;
    m_bs->Reset(m_epoch);
    for (auto& d : m_dev)
    {
        d.phy->Reset(m_epoch);
        d.phy->Listen(0, 0);
    }
}

std::vector<ChannelMeasurement>
IdealFdmaRadio::Measure()
{
    NewEpoch();
    uint32_t n = m_dev.size();
    m_measuredRxW.assign(n, kNaN);
    m_measuredSinr.assign(n, kNaN);
    for (uint32_t k = 0; k < n; ++k)
    {
        Simulator::Schedule(kSoundingSlot * k, &IdealFdmaRadio::Sound, this, k);
    }
    // every sounding has ended before this (see kSoundingSlot), so nothing is left over
    Simulator::Schedule(kSoundingSlot * n, [] { Simulator::Stop(); });
    Simulator::Run();
    m_measured = true;

    std::vector<ChannelMeasurement> out(n);
    for (uint32_t k = 0; k < n; ++k)
    {
        double rxW = m_measuredRxW[k];
        out[k] = ChannelMeasurement{10.0 * std::log10(rxW / (m_bsNoisePsd * m_p.bandwidthHz)),
                                    10.0 * std::log10(m_measuredSinr[k]),
                                    WToDbm(rxW),
                                    1,
                                    LosState(m_loss, m_ueMobility[k], m_bsMobility)};
    }
    return out;
}

void
IdealFdmaRadio::Sound(uint32_t k)
{
    auto s = Create<FdmaSignal>();
    s->psd = FlatPsd(0, m_bins, DbmToW(m_p.ueTxPowerDbm));
    s->duration = kSounding;
    s->kind = FdmaSignal::SOUNDING;
    s->device = k;
    s->lo = 0;
    s->hi = m_bins;
    s->epoch = m_epoch;
    s->dst = PeekPointer(m_bs);
    m_dev[k].phy->Send(s);
}

void
IdealFdmaRadio::Execute(const PlanView& plan, const OutcomeView& outcome)
{
    uint32_t n = m_dev.size();
    if (!m_measured)
    {
        Measure(); // link adaptation needs a channel estimate
    }
    NewEpoch();
    Time start = Simulator::Now();
    std::vector<const PlanRecord*> byId = RecordsById(plan, n);

    double ueTxW = DbmToW(m_p.ueTxPowerDbm);
    double bsTxW = DbmToW(m_p.bsTxPowerDbm);
    uint32_t nextBin = 0;
    double shareSum = 0.0;
    const uint32_t dlBins = m_bins / n; // every device of the cell owns one downlink part
    for (uint32_t k = 0; k < n; ++k)
    {
        Device& d = m_dev[k];
        const PlanRecord* r = byId[k];
        d.scheduled = r && r->scheduled;
        d.up = Transfer{};
        d.down = Transfer{};
        if (!d.scheduled)
        {
            continue;
        }
        // whole bins: the run ends at the bin nearest to the running sum of the shares, so each
        // device is within one bin of its share, without a bias (rounding every share down would
        // cost a narrow one up to a bin), and never gets none for a positive share
        if (!(r->bandwidth_share > 0))
        {
            NS_LOG_WARN("device " << k << " is scheduled without bandwidth and cannot finish");
            continue;
        }
        shareSum += std::min(r->bandwidth_share, 1.0);
        uint32_t end = static_cast<uint32_t>(std::llround(std::min(shareSum, 1.0) * m_bins));
        uint32_t bins = std::max(end, nextBin + 1) - nextBin;
        uint32_t lo = std::min(nextBin, m_bins - bins);
        if (lo < nextBin)
        {
            NS_LOG_WARN("shares exceed the band: device " << k << " overlaps its neighbours");
        }
        nextBin += bins;
        double width = bins * m_binWidth;

        Transfer& up = d.up;
        up.kind = FdmaSignal::UPLINK;
        up.device = k;
        up.tx = d.phy;
        up.rx = m_bs;
        up.lo = lo;
        up.hi = lo + bins;
        up.psd = FlatPsd(up.lo, up.hi, ueTxW);
        up.se = SpectralEfficiency(m_p, m_measuredRxW[k] / (m_bsNoisePsd * width));
        up.width = width;

        // the server sends on the device's part of the downlink band with its power per Hz; the
        // path gain is reciprocal
        Transfer& down = d.down;
        down.kind = FdmaSignal::DOWNLINK;
        down.device = k;
        down.tx = m_bs;
        down.rx = d.phy;
        down.lo = k * dlBins;
        down.hi = down.lo + dlBins;
        double downWidth = dlBins * m_binWidth;
        double downTxW = bsTxW * dlBins / m_bins;
        down.psd = FlatPsd(down.lo, down.hi, downTxW);
        double gain = m_measuredRxW[k] / ueTxW;
        down.se = SpectralEfficiency(m_p, downTxW * gain / (m_ueNoisePsd * downWidth));
        down.width = downWidth;

        d.phy->Listen(down.lo, down.hi);
        NS_LOG_INFO("device " << k << " bins [" << up.lo << "," << up.hi << ") up "
                              << up.se << " bit/s/Hz " << up.se * up.width << " bit/s, down "
                              << down.se << " bit/s/Hz");
    }

    // our own end rather than Simulator::Stop(delay), which would outlive an early end
    if (m_protocol.Start(plan, byId, *this, [] { Simulator::Stop(); }) > 0)
    {
        Simulator::Run();
    }
    m_protocol.Stop();
    Time end = Simulator::Now();

    outcome.header.round_index = plan.header.round_index;
    outcome.header.num_devices = n;
    outcome.header.num_steps = plan.header.num_steps;
    outcome.header.round_start_s = start.GetSeconds();
    outcome.header.round_duration_s = (end - start).GetSeconds();
    for (uint32_t k = 0; k < n; ++k)
    {
        Device& d = m_dev[k];
        Transfer& up = d.up;
        if (up.busy)
        {
            up.airtimeS += (end - up.txStart).GetSeconds(); // cut off by the deadline
        }
        OutcomeRecord& o = outcome.records[k];
        o = OutcomeRecord{};
        o.device_id = k;
        o.scheduled = d.scheduled;
        o.completion_time_s = o.server_wait_s = kNaN;
        if (d.scheduled)
        {
            m_protocol.Report(k, start, o, outcome.steps + byId[k]->first_step);
        }
        o.packets_sent = up.sent;
        o.packets_lost = up.lost;
        o.retransmissions = up.retransmissions;
        o.airtime_s = up.airtimeS;
        o.tx_energy_j = ueTxW * up.airtimeS;
        o.mean_sinr_db = up.received > 0 ? up.sinrDbSum / up.received : kNaN;
        o.granted_share = d.scheduled ? double(up.hi - up.lo) / m_bins : 0.0;
    }
}

void
IdealFdmaRadio::Carry(uint32_t k, Direction dir, uint64_t bytes, std::function<void()> delivered)
{
    Transfer& t = dir == Direction::UPLINK ? m_dev[k].up : m_dev[k].down;
    t.queued.emplace_back(bytes, std::move(delivered));
    Next(t);
}

uint64_t
IdealFdmaRadio::Received(uint32_t k, Direction dir) const
{
    const Device& d = m_dev.at(k);
    return (dir == Direction::UPLINK ? d.up : d.down).receivedBytes;
}

void
IdealFdmaRadio::Next(Transfer& t)
{
    while (!t.active && !t.queued.empty())
    {
        auto [bytes, delivered] = std::move(t.queued.front());
        t.queued.pop_front();
        if (bytes == 0)
        {
            delivered();
            continue;
        }
        t.total = bytes;
        t.handedOut = t.delivered = 0;
        t.active = true;
        t.onDelivered = std::move(delivered);
        Pump(t);
    }
}

void
IdealFdmaRadio::Pump(Transfer& t)
{
    if (t.busy || !t.active)
    {
        return;
    }
    uint32_t bytes;
    if (!t.retx.empty())
    {
        bytes = t.retx.front();
        t.retx.pop_front();
        ++t.retransmissions;
    }
    else if (t.handedOut < t.total)
    {
        bytes = static_cast<uint32_t>(std::min<uint64_t>(m_p.packetBytes, t.total - t.handedOut));
        t.handedOut += bytes;
    }
    else
    {
        return; // everything is on the air; a loss will wake the transmitter up again
    }
    auto s = Create<FdmaSignal>();
    s->psd = t.psd;
    s->duration = Seconds(bytes * 8.0 / (t.se * t.width));
    s->se = t.se;
    s->kind = t.kind;
    s->device = t.device;
    s->bytes = bytes;
    s->lo = t.lo;
    s->hi = t.hi;
    s->epoch = m_epoch;
    s->dst = PeekPointer(t.rx);
    t.busy = true;
    t.txStart = Simulator::Now();
    ++t.sent;
    t.tx->Send(s);
    Simulator::Schedule(s->duration, &IdealFdmaRadio::TxEnd, this, m_epoch, &t);
}

void
IdealFdmaRadio::TxEnd(uint64_t epoch, Transfer* t)
{
    if (epoch != m_epoch)
    {
        return;
    }
    t->busy = false;
    t->airtimeS += (Simulator::Now() - t->txStart).GetSeconds();
    Pump(*t);
}

void
IdealFdmaRadio::OnRx(Ptr<const FdmaSignal> s, double sinr, double rxPowerW)
{
    if (s->kind == FdmaSignal::SOUNDING)
    {
        m_measuredRxW[s->device] = rxPowerW;
        m_measuredSinr[s->device] = sinr;
        return;
    }
    Device& d = m_dev[s->device];
    Transfer& t = s->kind == FdmaSignal::UPLINK ? d.up : d.down;
    ++t.received;
    t.sinrDbSum += 10.0 * std::log10(sinr);
    t.se = SpectralEfficiency(m_p, sinr); // feedback: the next packet follows the channel
    if (std::log2(1.0 + sinr) >= s->se)
    {
        t.delivered += s->bytes;
        t.receivedBytes += s->bytes;
        if (t.delivered == t.total)
        {
            t.active = false;
            auto delivered = std::move(t.onDelivered);
            delivered();
            Next(t);
        }
    }
    else
    {
        ++t.lost;
        t.retx.push_back(s->bytes);
        Pump(t);
    }
}

} // namespace

std::unique_ptr<CosimRadio>
MakeIdealFdmaRadio()
{
    return std::make_unique<IdealFdmaRadio>();
}

} // namespace cosim
