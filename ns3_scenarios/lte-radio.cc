// `--radio=lte`: one LTE eNB with EPC, K UEs, a remote host behind the PGW as the server.
//
// Carrier: band 1, DL EARFCN 100 (2120 MHz), UL EARFCN 18100 (1930 MHz), the band-1 pair nearest
// the 2.1 GHz default. The EARFCN only sets the spectrum model of the LTE PHY: the path loss is
// the scenario's own chain (MakePropagationLoss), evaluated at params.frequencyHz, so both radios
// see the same channel. It is the only loss model on the LTE spectrum channels (see ChainLoss).
//
// Uplink shares are enacted by CosimShareFfMacScheduler (lte-share-scheduler.h). Each device's
// messages travel on two TCP connections per round (tcp-message-stream.h), one per direction,
// opened by its first message that way, over RLC AM, with HARQ in both directions (--lteHarq);
// RLC AM recovers what HARQ gives up.
#include "cosim-protocol.h"
#include "cosim-radio.h"
#include "lte-share-scheduler.h"
#include "lte-stale-status-filter.h"
#include "tcp-message-stream.h"

#include "ns3/core-module.h"
#include "ns3/internet-module.h"
#include "ns3/lte-module.h"
#include "ns3/network-module.h"
#include "ns3/point-to-point-module.h"

#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>

using namespace ns3;

NS_LOG_COMPONENT_DEFINE("CosimLteRadio");

namespace cosim
{

namespace
{

constexpr double NaN = std::numeric_limits<double>::quiet_NaN();
constexpr uint16_t FIRST_PORT = 10000;
constexpr double TTI_S = 1e-3;

/// LteHelper creates one loss model per spectrum channel from a TypeId; this one delegates to the
/// scenario's chain, so nothing (e.g. the default Friis model) is stacked on top of it.
class ChainLoss : public PropagationLossModel
{
  public:
    static TypeId GetTypeId()
    {
        static TypeId tid = TypeId("ns3::CosimChainLoss")
                                .SetParent<PropagationLossModel>()
                                .SetGroupName("Propagation")
                                .AddConstructor<ChainLoss>();
        return tid;
    }

    void SetChain(Ptr<PropagationLossModel> chain)
    {
        m_chain = chain;
    }

  private:
    double DoCalcRxPower(double txPowerDbm, Ptr<MobilityModel> a, Ptr<MobilityModel> b) const override
    {
        return m_chain->CalcRxPower(txPowerDbm, a, b);
    }

    int64_t DoAssignStreams(int64_t) override
    {
        return 0; // the chain's random variables take automatically assigned streams
    }

    Ptr<PropagationLossModel> m_chain;
};

NS_OBJECT_ENSURE_REGISTERED(ChainLoss);

uint16_t
ResourceBlocks(double bandwidthHz)
{
    static const std::map<double, uint16_t> rbs{
        {1.4e6, 6}, {3e6, 15}, {5e6, 25}, {10e6, 50}, {15e6, 75}, {20e6, 100}};
    for (const auto& [hz, n] : rbs)
    {
        if (std::abs(bandwidthHz - hz) < 1.0)
        {
            return n;
        }
    }
    throw std::runtime_error("radio lte: --bandwidth must be one of 1.4e6, 3e6, 5e6, 10e6, 15e6, "
                             "20e6 Hz (6..100 resource blocks), not " + std::to_string(bandwidthHz));
}

/// Uplink PHY counters of one UE: the transport blocks it sent, as the eNB heard them.
struct UlStats
{
    uint32_t tbs{0};
    uint32_t lost{0};
    double sinrDbSum{0};
};

class LteRadio : public CosimRadio, private Carrier
{
  public:
    void Install(const ScenarioParams& params, NodeContainer bs, NodeContainer ues) override;
    Time WarmUp() const override;
    std::vector<ChannelMeasurement> Measure() override;
    void Execute(const PlanView& plan, const OutcomeView& outcome) override;

  private:
    /// A device's streams of the running round (none before its first message that way).
    struct Device
    {
        std::shared_ptr<TcpMessageStream> up;
        std::shared_ptr<TcpMessageStream> down;
    };

    void Carry(uint32_t k, Direction dir, uint64_t bytes, std::function<void()> delivered) override;
    uint64_t Received(uint32_t k, Direction dir) const override;

    std::vector<uint16_t> Rntis() const;
    TcpMessageStream& Open(uint32_t k, Direction dir);
    uint16_t NextPort();

    void OnSrsSinr(uint16_t cellId, uint16_t rnti, double sinrLinear, uint8_t ccId);
    void OnUlTb(uint16_t rnti, double sinrDb, bool ok);
    void OnUlRbs(uint16_t rnti, const std::vector<int>& rbs);
    void OnUlPsd(uint16_t rnti, Ptr<SpectrumValue> psd);

    ScenarioParams m_params;
    Ptr<PropagationLossModel> m_chain;
    Ptr<MobilityModel> m_bsMobility;
    Ptr<LteHelper> m_lte;
    Ptr<PointToPointEpcHelper> m_epc;
    NodeContainer m_ues;
    Ptr<Node> m_server;
    Ipv4Address m_serverAddress;
    std::vector<Ipv4Address> m_ueAddresses;
    NetDeviceContainer m_ueDevs;
    Ptr<LteEnbNetDevice> m_enbDev;
    Ptr<CosimShareFfMacScheduler> m_scheduler;
    std::vector<Ptr<LteStaleStatusFilter>> m_statusFilters; ///< eNB uplink, each UE's downlink
    uint16_t m_numRb{0};
    uint16_t m_srsPeriodMs{0};
    uint16_t m_nextPort{FIRST_PORT};

    std::map<uint16_t, double> m_srs; ///< rnti -> SINR (linear) of its last SRS

    // state of the running round
    std::map<uint16_t, UlStats> m_ulStats;
    std::map<uint16_t, std::pair<uint64_t, uint32_t>> m_ulRbs; ///< rnti -> RBs granted, grants
    std::map<uint16_t, std::pair<double, uint32_t>> m_ulPowerW; ///< rnti -> sum of tx powers, grants
    std::vector<Device> m_devices;
    RoundProtocol m_protocol;
};

void
LteRadio::Install(const ScenarioParams& params, NodeContainer bs, NodeContainer ues)
{
    m_params = params;
    m_ues = ues;
    m_numRb = ResourceBlocks(params.bandwidthHz);
    if (params.packetBytes == 0 || params.packetBytes > 1460)
    {
        throw std::runtime_error("radio lte: --packetBytes must be 1..1460 (TCP segments, MTU 1500)");
    }
    // SRS periodicity (ms) must leave one SRS slot per UE
    for (uint16_t p : {40, 80, 160, 320})
    {
        if (p > ues.GetN())
        {
            m_srsPeriodMs = p;
            break;
        }
    }
    if (m_srsPeriodMs == 0)
    {
        throw std::runtime_error("radio lte: at most 319 devices per cell (SRS periodicity 320 ms)");
    }

    // what the scenario's own flags set (--ueTxPower, ...) and what follows from K
    Config::SetDefault("ns3::LteEnbRrc::SrsPeriodicity", UintegerValue(m_srsPeriodMs));
    Config::SetDefault("ns3::LteUePhy::TxPower", DoubleValue(params.ueTxPowerDbm));
    Config::SetDefault("ns3::LteUePhy::NoiseFigure", DoubleValue(params.ueNoiseFigureDb));
    Config::SetDefault("ns3::LteEnbPhy::TxPower", DoubleValue(params.bsTxPowerDbm));
    Config::SetDefault("ns3::LteEnbPhy::NoiseFigure", DoubleValue(params.bsNoiseFigureDb));
    Config::SetDefault("ns3::TcpSocket::SegmentSize", UintegerValue(params.packetBytes));
    Config::SetDefault("ns3::CosimShareFfMacScheduler::BlerTarget", DoubleValue(params.lteBlerTarget));
    Config::SetDefault("ns3::CosimShareFfMacScheduler::HarqEnabled", BooleanValue(params.lteHarq));
    Config::SetDefault("ns3::LteUePhy::EnableUplinkPowerControl", BooleanValue(params.ltePowerControl));

    // the helpers must outlive Install: deleting them disposes the EPC nodes
    m_lte = CreateObject<LteHelper>();
    m_epc = CreateObject<PointToPointEpcHelper>();
    Ptr<LteHelper> lte = m_lte;
    Ptr<PointToPointEpcHelper> epc = m_epc;
    lte->SetEpcHelper(epc);
    lte->SetSchedulerType("ns3::CosimShareFfMacScheduler");
    lte->SetPathlossModelType(ChainLoss::GetTypeId());
    lte->SetEnbDeviceAttribute("DlEarfcn", UintegerValue(100));
    lte->SetEnbDeviceAttribute("UlEarfcn", UintegerValue(18100));
    lte->SetEnbDeviceAttribute("DlBandwidth", UintegerValue(m_numRb));
    lte->SetEnbDeviceAttribute("UlBandwidth", UintegerValue(m_numRb));

    // the server: a remote host on a fast 1 ms link behind the PGW
    NodeContainer server(1);
    m_server = server.Get(0);
    InternetStackHelper internet;
    internet.Install(server);
    PointToPointHelper p2p;
    p2p.SetDeviceAttribute("DataRate", DataRateValue(DataRate("100Gb/s")));
    p2p.SetDeviceAttribute("Mtu", UintegerValue(1500));
    p2p.SetChannelAttribute("Delay", TimeValue(MilliSeconds(1)));
    NetDeviceContainer internetDevs = p2p.Install(epc->GetPgwNode(), m_server);
    Ipv4AddressHelper ipv4;
    ipv4.SetBase("1.0.0.0", "255.0.0.0");
    m_serverAddress = ipv4.Assign(internetDevs).GetAddress(1);
    Ipv4StaticRoutingHelper routing;
    routing.GetStaticRouting(m_server->GetObject<Ipv4>())
        ->AddNetworkRouteTo(Ipv4Address("7.0.0.0"), Ipv4Mask("255.0.0.0"), 1);

    m_enbDev = DynamicCast<LteEnbNetDevice>(lte->InstallEnbDevice(bs).Get(0));
    Ptr<PropagationLossModel> chain = MakePropagationLoss(params);
    m_chain = chain;
    m_bsMobility = bs.Get(0)->GetObject<MobilityModel>();
    for (auto channel : {lte->GetUplinkSpectrumChannel(), lte->GetDownlinkSpectrumChannel()})
    {
        DynamicCast<ChainLoss>(channel->GetPropagationLossModel())->SetChain(chain);
    }
    m_ueDevs = lte->InstallUeDevice(ues);
    internet.Install(ues);
    Ipv4InterfaceContainer ueIfaces = epc->AssignUeIpv4Address(m_ueDevs);
    for (uint32_t k = 0; k < ues.GetN(); ++k)
    {
        m_ueAddresses.push_back(ueIfaces.GetAddress(k));
        routing.GetStaticRouting(ues.Get(k)->GetObject<Ipv4>())
            ->SetDefaultRoute(epc->GetUeDefaultGatewayAddress(), 1);
    }
    lte->Attach(m_ueDevs, m_enbDev);
    // HARQ can deliver an RLC STATUS PDU after a newer one; see lte-stale-status-filter.h
    Ptr<LteEnbPhy> enbPhy = m_enbDev->GetPhy();
    m_statusFilters.push_back(LteStaleStatusFilter::Install(
        enbPhy->GetUlSpectrumPhy(), MakeCallback(&LteEnbPhy::PhyPduReceived, enbPhy)));
    for (uint32_t k = 0; k < m_ueDevs.GetN(); ++k)
    {
        Ptr<LteUePhy> uePhy = DynamicCast<LteUeNetDevice>(m_ueDevs.Get(k))->GetPhy();
        m_statusFilters.push_back(LteStaleStatusFilter::Install(
            uePhy->GetDlSpectrumPhy(), MakeCallback(&LteUePhy::PhyPduReceived, uePhy)));
    }

    m_scheduler = DynamicCast<CosimShareFfMacScheduler>(
        DynamicCast<ComponentCarrierEnb>(m_enbDev->GetCcMap().at(0))->GetFfMacScheduler());
    m_scheduler->TraceConnectWithoutContext("UlTb", MakeCallback(&LteRadio::OnUlTb, this));
    m_enbDev->GetPhy()->TraceConnectWithoutContext("ReportUeSinr",
                                                   MakeCallback(&LteRadio::OnSrsSinr, this));
    // the resource blocks each UE's PHY transmits on, as its uplink grants set them, and the
    // power it spreads over them (below --ueTxPower when uplink power control is on)
    for (uint32_t k = 0; k < m_ueDevs.GetN(); ++k)
    {
        Ptr<LteUePhy> phy = DynamicCast<LteUeNetDevice>(m_ueDevs.Get(k))->GetPhy();
        phy->TraceConnectWithoutContext("ReportUlPhyResourceBlocks", MakeCallback(&LteRadio::OnUlRbs, this));
        phy->TraceConnectWithoutContext("ReportPowerSpectralDensity", MakeCallback(&LteRadio::OnUlPsd, this));
    }
}

Time
LteRadio::WarmUp() const
{
    // random access and RRC connection of every UE, then two SRS periods
    return MilliSeconds(300 + 2 * m_srsPeriodMs);
}

std::vector<uint16_t>
LteRadio::Rntis() const
{
    std::vector<uint16_t> rntis;
    for (uint32_t k = 0; k < m_ueDevs.GetN(); ++k)
    {
        auto rrc = DynamicCast<LteUeNetDevice>(m_ueDevs.Get(k))->GetRrc();
        if (rrc->GetState() != LteUeRrc::CONNECTED_NORMALLY)
        {
            throw std::runtime_error("radio lte: device " + std::to_string(k) +
                                     " is not connected to the cell");
        }
        rntis.push_back(rrc->GetRnti());
    }
    return rntis;
}

std::vector<ChannelMeasurement>
LteRadio::Measure()
{
    std::vector<uint16_t> rntis = Rntis();
    // every device sounds the whole band once per SRS period: run one period and keep each one's
    // sounding, the same quantity as the ideal-fdma radio's report (one wideband sounding)
    m_srs.clear();
    Simulator::Stop(MilliSeconds(m_srsPeriodMs));
    Simulator::Run();
    // single cell, no interference: SINR = SNR; rx power = SINR x noise over the sounded band,
    // and the report's SNR is that power over the noise of the whole band B, as on ideal-fdma
    double noiseDbm = NoisePsdDbmHz(m_params) + 10 * std::log10(m_numRb * 180e3);
    double bandNoiseDbm = NoisePsdDbmHz(m_params) + 10 * std::log10(m_params.bandwidthHz);
    std::vector<ChannelMeasurement> measured(rntis.size());
    for (uint32_t k = 0; k < rntis.size(); ++k)
    {
        auto it = m_srs.find(rntis[k]);
        if (it == m_srs.end())
        {
            throw std::runtime_error("radio lte: device " + std::to_string(k) + " sent no SRS in " +
                                     std::to_string(m_srsPeriodMs) + " ms");
        }
        double rxDbm = 10 * std::log10(it->second) + noiseDbm;
        measured[k] = ChannelMeasurement{rxDbm - bandNoiseDbm, rxDbm - bandNoiseDbm, rxDbm,
                                         m_enbDev->GetCellId(),
                                         LosState(m_chain, m_ues.Get(k)->GetObject<MobilityModel>(),
                                                  m_bsMobility)};
    }
    return measured;
}

void
LteRadio::OnSrsSinr(uint16_t, uint16_t rnti, double sinrLinear, uint8_t)
{
    m_srs[rnti] = sinrLinear; // mean over the sounded resource blocks
}

void
LteRadio::OnUlTb(uint16_t rnti, double sinrDb, bool ok)
{
    UlStats& s = m_ulStats[rnti];
    s.tbs += 1;
    s.lost += ok ? 0 : 1;
    s.sinrDbSum += sinrDb;
}

void
LteRadio::OnUlPsd(uint16_t rnti, Ptr<SpectrumValue> psd)
{
    double watts = 0;
    for (auto it = psd->ConstValuesBegin(); it != psd->ConstValuesEnd(); ++it)
    {
        watts += *it * 180e3; // W/Hz over each resource block
    }
    if (watts > 0) // the PHY also reports an empty mask between grants
    {
        auto& [sum, grants] = m_ulPowerW[rnti];
        sum += watts;
        ++grants;
    }
}

void
LteRadio::OnUlRbs(uint16_t rnti, const std::vector<int>& rbs)
{
    auto& [total, grants] = m_ulRbs[rnti];
    total += rbs.size();
    ++grants;
}

uint16_t
LteRadio::NextPort()
{
    if (m_nextPort >= 65000)
    {
        m_nextPort = FIRST_PORT;
    }
    return m_nextPort++;
}

TcpMessageStream&
LteRadio::Open(uint32_t k, Direction dir)
{
    const bool up = dir == Direction::UPLINK;
    std::shared_ptr<TcpMessageStream>& t = up ? m_devices[k].up : m_devices[k].down;
    if (!t)
    {
        t = up ? TcpMessageStream::Open(m_ues.Get(k), m_server, m_serverAddress, NextPort())
               : TcpMessageStream::Open(m_server, m_ues.Get(k), m_ueAddresses[k], NextPort());
    }
    return *t;
}

void
LteRadio::Carry(uint32_t k, Direction dir, uint64_t bytes, std::function<void()> delivered)
{
    Open(k, dir).Send(bytes, std::move(delivered));
}

uint64_t
LteRadio::Received(uint32_t k, Direction dir) const
{
    const auto& t = dir == Direction::UPLINK ? m_devices.at(k).up : m_devices.at(k).down;
    return t ? t->Received() : 0;
}

void
LteRadio::Execute(const PlanView& plan, const OutcomeView& outcome)
{
    const uint32_t k = m_ues.GetN();
    const Time start = Simulator::Now();
    const double startS = start.GetSeconds();
    std::vector<const PlanRecord*> byId = RecordsById(plan, k);
    std::vector<uint16_t> rntis = Rntis();
    std::vector<std::pair<uint16_t, double>> shares;
    for (uint32_t i = 0; i < k; ++i)
    {
        bool scheduled = byId[i] && byId[i]->scheduled;
        shares.emplace_back(rntis[i], scheduled ? byId[i]->bandwidth_share : 0.0);
    }
    m_scheduler->SetUplinkShares(shares);
    m_ulStats.clear();
    m_ulRbs.clear();
    m_ulPowerW.clear();
    m_devices.assign(k, Device{});

    if (m_protocol.Start(plan, byId, *this, [] { Simulator::Stop(); }) > 0)
    {
        Simulator::Run();
    }
    m_protocol.Stop();
    const double endS = Simulator::Now().GetSeconds();

    outcome.header.round_index = plan.header.round_index;
    outcome.header.num_devices = k;
    outcome.header.num_steps = plan.header.num_steps;
    outcome.header.round_start_s = startS;
    outcome.header.round_duration_s = endS - startS;
    const double txPowerW = std::pow(10, (m_params.ueTxPowerDbm - 30) / 10);
    for (uint32_t i = 0; i < k; ++i)
    {
        OutcomeRecord& o = outcome.records[i];
        o = OutcomeRecord{};
        o.device_id = i;
        o.completion_time_s = o.server_wait_s = NaN;
        if (!byId[i] || !byId[i]->scheduled)
        {
            continue;
        }
        const UlStats& s = m_ulStats[rntis[i]];
        o.scheduled = 1;
        m_protocol.Report(i, start, o, outcome.steps + byId[i]->first_step);
        for (const auto& t : {m_devices[i].up, m_devices[i].down})
        {
            if (t)
            {
                t->Close();
            }
        }
        o.airtime_s = s.tbs * TTI_S; // one uplink TB per TTI
        // at the power of its grants: --ueTxPower unless power control lowers it
        const auto& [powerSum, powered] = m_ulPowerW[rntis[i]];
        o.tx_energy_j = (powered ? powerSum / powered : txPowerW) * o.airtime_s;
        o.packets_sent = s.tbs;
        o.packets_lost = s.lost;
        o.retransmissions = s.lost; // every lost TB is sent again, by HARQ or (when it gives up) RLC AM
        o.mean_sinr_db = s.tbs ? s.sinrDbSum / s.tbs : NaN;
        const auto& [rbs, grants] = m_ulRbs[rntis[i]];
        o.granted_share = grants ? double(rbs) / grants / m_numRb : 0.0;
    }
    m_devices.clear();
}

} // namespace

void
SetLteDefaults()
{
    Config::SetDefault("ns3::LteEnbRrc::EpsBearerToRlcMapping", EnumValue(LteEnbRrc::RLC_AM_ALWAYS));
    Config::SetDefault("ns3::LteRlcAm::MaxTxBufferSize", UintegerValue(2 * 1024 * 1024));
    // ns-3 RLC AM cannot re-segment: a PDU to retransmit that is larger than the (link-adapted)
    // grant would otherwise block the bearer for good
    Config::SetDefault("ns3::LteRlcAm::TxOpportunityForRetxAlwaysBigEnough", BooleanValue(true));
    // PDCCH errors off: a lost grant would silently shrink the share the plan gave
    Config::SetDefault("ns3::LteSpectrumPhy::CtrlErrorModelEnabled", BooleanValue(false));
    // windows above the cell's bandwidth-delay product, yet small: what a transfer cut by the
    // deadline leaves in its buffers still drains into the next round
    Config::SetDefault("ns3::TcpSocket::SndBufSize", UintegerValue(256 * 1024));
    Config::SetDefault("ns3::TcpSocket::RcvBufSize", UintegerValue(256 * 1024));
    Config::SetDefault("ns3::TcpSocketBase::MinRto", TimeValue(MilliSeconds(200))); // as Linux
    // delayed ACKs wait at most 40 ms, Linux's floor (TCP_ATO_MIN): at ns-3's 200 ms, the RTO floor,
    // a lone segment's ACK and its retransmission timer expire together, and a connection that
    // resumes after an idle spell (the server computing between two messages) falls back to one
    // segment per timeout and never recovers
    Config::SetDefault("ns3::TcpSocket::DelAckTimeout", TimeValue(MilliSeconds(40)));
    // t-Reordering above HARQ's longest delay (three retransmissions, 7 ms apart), as 3GPP
    // configurations choose it: a block HARQ is still resending is not reported missing
    Config::SetDefault("ns3::LteRlcAm::ReorderingTimer", TimeValue(MilliSeconds(35)));
}

std::unique_ptr<CosimRadio>
MakeLteRadio()
{
    return std::make_unique<LteRadio>();
}

} // namespace cosim
