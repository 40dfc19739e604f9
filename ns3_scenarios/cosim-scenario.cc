// cosim-scenario: one macro cell, K devices, and the round loop of split federated learning.
//
// Each round the Python side asks for a channel report (what the base station measures of every
// device), then sends a plan (who transmits, with which bandwidth share, how many bytes); this
// program enacts the plan at packet level on the selected radio and answers with what happened.
// Simulated time runs on across rounds, so devices move between rounds.
//
//   ./cosim-scenario --shm=<segment>           driven by Python over shared memory
//   ./cosim-scenario --rounds=3 --payloadBytes=200000
//                                              standalone: every device, equal shares, CSV out
//
// Every knob is a CommandLine argument (--help lists them); --RngSeed/--RngRun select the
// replication as in every ns-3 program.
#include "cosim-bridge.h"
#include "cosim-mobility.h"
#include "cosim-radio.h"

#include "ns3/core-module.h"
#include "ns3/flow-monitor-helper.h"
#include "ns3/mobility-model.h"
#include "ns3/network-module.h"

#include <cmath>
#include <iostream>
#include <limits>
#include <sstream>

using namespace ns3;
using namespace cosim;

NS_LOG_COMPONENT_DEFINE("CosimScenario");

namespace
{

/// The report every radio produces, completed with what the scenario itself knows.
void
FillReport(CosimRadio& radio, const ScenarioParams& p, const Presence& presence, NodeContainer bs,
           NodeContainer ues, uint32_t round, ReportHeader& header, ReportRecord* records)
{
    auto measured = radio.Measure();
    header.round_index = round;
    header.num_devices = ues.GetN();
    header.sim_time_s = Simulator::Now().GetSeconds();
    header.bandwidth_hz = p.bandwidthHz;
    header.noise_psd_dbm_hz = radio.NoisePsdDbmHz(p);
    Vector bsPos = bs.Get(0)->GetObject<MobilityModel>()->GetPosition();
    for (uint32_t k = 0; k < ues.GetN(); ++k)
    {
        auto mm = ues.Get(k)->GetObject<MobilityModel>();
        Vector pos = mm->GetPosition();
        Vector vel = mm->GetVelocity();
        ReportRecord& r = records[k];
        r.device_id = k;
        r.serving_cell = measured[k].servingCell;
        r.present = presence.At(k, header.sim_time_s) ? 1 : 0;
        r.los_state = measured[k].losState;
        r.snr_db = measured[k].snrDb;
        r.sinr_db = measured[k].sinrDb;
        r.rx_power_dbm = measured[k].rxPowerDbm;
        r.tx_power_dbm = p.ueTxPowerDbm;
        r.x_m = pos.x;
        r.y_m = pos.y;
        r.z_m = pos.z;
        r.speed_mps = std::sqrt(vel.x * vel.x + vel.y * vel.y + vel.z * vel.z);
        r.distance_m = CalculateDistance(pos, bsPos);
    }
}

/// A plan may not give a device traffic while it is absent (not yet in its trace, or gone).
void
CheckPresent(const PlanHeader& plan, const PlanRecord* records, const Presence& presence)
{
    double now = Simulator::Now().GetSeconds();
    for (uint32_t i = 0; i < plan.num_devices; ++i)
    {
        if (records[i].scheduled && !presence.At(records[i].device_id, now))
        {
            throw std::runtime_error("the plan schedules device " + std::to_string(records[i].device_id) +
                                     ", which is not in the mobility trace at t = " +
                                     std::to_string(now) + " s (the channel report says present=0)");
        }
    }
}

void
RunBridge(const std::string& shm, double idleTimeoutS, CosimRadio& radio, const ScenarioParams& p,
          const Presence& presence, NodeContainer bs, NodeContainer ues)
{
    ShmBridge bridge(shm, idleTimeoutS);
    if (bridge.Header().max_devices < ues.GetN())
    {
        bridge.ReplyError("the segment holds " + std::to_string(bridge.Header().max_devices) +
                          " devices but the scenario has " + std::to_string(ues.GetN()));
        throw BridgeError("segment too small for the scenario");
    }
    bridge.Header().num_devices = ues.GetN();
    bridge.Reply(STATUS_READY);
    uint32_t round = 0;
    while (true)
    {
        uint32_t cmd = bridge.WaitCommand();
        try
        {
            if (cmd == CMD_REPORT)
            {
                FillReport(radio, p, presence, bs, ues, round, bridge.Report(), bridge.ReportRecords());
                bridge.Reply(STATUS_OK);
            }
            else if (cmd == CMD_EXECUTE)
            {
                const PlanHeader& plan = bridge.Plan();
                if (plan.num_devices != ues.GetN())
                {
                    throw std::runtime_error("the plan has " + std::to_string(plan.num_devices) +
                                             " devices, the scenario " + std::to_string(ues.GetN()));
                }
                if (plan.num_steps > bridge.Header().max_steps)
                {
                    throw std::runtime_error("the plan has " + std::to_string(plan.num_steps) +
                                             " steps, the segment room for " +
                                             std::to_string(bridge.Header().max_steps));
                }
                CheckPresent(plan, bridge.PlanRecords(), presence);
                radio.Execute(PlanView{plan, bridge.PlanRecords(), bridge.PlanSteps()},
                              OutcomeView{bridge.Outcome(), bridge.OutcomeRecords(), bridge.OutcomeSteps()});
                round = plan.round_index + 1;
                bridge.Reply(STATUS_OK);
            }
            else if (cmd == CMD_ECHO)
            {
                // Touch the whole plan and rewrite the whole report: the bridge's own cost.
                const PlanRecord* plan = bridge.PlanRecords();
                ReportRecord* report = bridge.ReportRecords();
                for (uint32_t k = 0; k < bridge.Plan().num_devices; ++k)
                {
                    report[k] = ReportRecord{};
                    report[k].device_id = plan[k].device_id;
                    report[k].snr_db = plan[k].bandwidth_share;
                }
                bridge.Report().num_devices = bridge.Plan().num_devices;
                bridge.Reply(STATUS_OK);
            }
            else if (cmd == CMD_SHUTDOWN)
            {
                bridge.Reply(STATUS_OK);
                return;
            }
            else
            {
                throw std::runtime_error("unknown command " + std::to_string(cmd));
            }
        }
        catch (const std::exception& e)
        {
            std::cerr << "cosim-scenario: " << e.what() << std::endl;
            bridge.ReplyError(e.what());
            throw;
        }
    }
}

/// Parse "--shares=0.5,0.25,0" into one share per device; empty means equal shares for all.
std::vector<double>
ParseShares(const std::string& text, uint32_t k)
{
    std::vector<double> shares;
    if (text.empty())
    {
        return std::vector<double>(k, 1.0 / k);
    }
    std::stringstream in(text);
    std::string item;
    double sum = 0;
    while (std::getline(in, item, ','))
    {
        double b = std::stod(item);
        if (!(b >= 0 && b <= 1))
        {
            throw std::runtime_error("--shares: " + item + " is not in [0, 1]");
        }
        shares.push_back(b);
        sum += b;
    }
    if (shares.size() != k)
    {
        throw std::runtime_error("--shares has " + std::to_string(shares.size()) +
                                 " entries for " + std::to_string(k) + " devices");
    }
    if (sum > 1 + 1e-9)
    {
        throw std::runtime_error("--shares sum to " + std::to_string(sum) + " > 1");
    }
    return shares;
}

/// Without Python: every device with a non-zero share is scheduled every round with a fixed
/// payload; one CSV row per (round, device) on stdout. For ns-3 users and for measuring the
/// simulator's own cost.
void
RunStandalone(uint32_t rounds, uint64_t payloadBytes, double deadlineS, const std::string& sharesText,
              CosimRadio& radio, const ScenarioParams& p, const Presence& presence, NodeContainer bs,
              NodeContainer ues)
{
    uint32_t k = ues.GetN();
    std::vector<double> shares = ParseShares(sharesText, k);
    std::vector<ReportRecord> reports(k);
    std::vector<PlanRecord> plan(k);
    std::vector<OutcomeRecord> outcomes(k);
    // each device's round: its payload up, then the same down (no computation)
    std::vector<PlanStep> steps;
    for (uint32_t i = 0; i < k; ++i)
    {
        steps.push_back(PlanStep{i, STEP_UPLINK, 0, 0, payloadBytes, 0.0});
        steps.push_back(PlanStep{i, STEP_DOWNLINK, 0, 1, payloadBytes, 0.0});
    }
    std::vector<OutcomeStep> outcomeSteps(steps.size());
    std::cout << "round,device_id,sim_time_s,snr_db,distance_m,x_m,y_m,scheduled,bandwidth_share,"
                 "uplink_delivered_bytes,downlink_delivered_bytes,uplink_transfer_s,downlink_transfer_s,"
                 "completion_time_s,airtime_s,tx_energy_j,packets_sent,packets_lost,retransmissions,"
                 "mean_sinr_db,granted_share,deadline_met\n";
    for (uint32_t t = 0; t < rounds; ++t)
    {
        ReportHeader rh{};
        FillReport(radio, p, presence, bs, ues, t, rh, reports.data());
        for (uint32_t i = 0; i < k; ++i)
        {
            bool go = shares[i] > 0 && reports[i].present;
            plan[i] = PlanRecord{i, go ? 1u : 0u, shares[i], 2 * i, 2};
        }
        PlanHeader ph{t, k, static_cast<uint32_t>(steps.size()), deadlineS, 1};
        OutcomeHeader oh{};
        radio.Execute(PlanView{ph, plan.data(), steps.data()},
                      OutcomeView{oh, outcomes.data(), outcomeSteps.data()});
        for (uint32_t i = 0; i < k; ++i)
        {
            const auto& o = outcomes[i];
            const auto& r = reports[i];
            std::cout << t << ',' << i << ',' << rh.sim_time_s << ',' << r.snr_db << ','
                      << r.distance_m << ',' << r.x_m << ',' << r.y_m << ',' << o.scheduled << ','
                      << plan[i].bandwidth_share << ',' << o.uplink_delivered_bytes << ','
                      << o.downlink_delivered_bytes << ',' << o.uplink_transfer_s << ','
                      << o.downlink_transfer_s << ',' << o.completion_time_s << ',' << o.airtime_s
                      << ',' << o.tx_energy_j << ',' << o.packets_sent << ',' << o.packets_lost
                      << ',' << o.retransmissions << ',' << o.mean_sinr_db << ','
                      << o.granted_share << ',' << o.deadline_met << '\n';
        }
    }
}

} // namespace

int
main(int argc, char* argv[])
{
    ScenarioParams p;
    MobilityParams m;
    std::string shm;
    double bridgeTimeoutS = 3600;
    std::string flowMonitorXml;
    uint32_t rounds = 0;
    uint64_t payloadBytes = 100'000;
    double deadlineS = 10.0;
    std::string shares;

    SetLteDefaults(); // before Parse: --ns3::Class::Attribute=value on the command line wins
    CommandLine cmd(__FILE__);
    cmd.Usage("Split federated learning over one macro cell: channel reports and round transfers\n"
              "for a Python driver over shared memory (--shm), or standalone (--rounds).");
    cmd.AddValue("devices", "number of devices K", p.devices);
    cmd.AddValue("radio", "lte | ideal-fdma", p.radio);
    cmd.AddValue("propagation", "uma | umi | log-distance", p.propagation);
    cmd.AddValue("shadowing", "enable shadowing", p.shadowing);
    cmd.AddValue("shadowingSigma", "log-distance shadowing std. deviation (dB)", p.shadowingSigmaDb);
    cmd.AddValue("fading", "rayleigh | nakagami | none", p.fading);
    cmd.AddValue("nakagamiM", "Nakagami m parameter (fading=nakagami)", p.nakagamiM);
    cmd.AddValue("fadingProcess",
                 "doppler (each link's fade follows its device's motion: Doppler v f_c / c, constant "
                 "at rest) | per-packet (a new independent draw for every packet)",
                 p.fadingProcess);
    cmd.AddValue("losCorrelation",
                 "uma/umi: a link's LOS/NLOS state is drawn anew each time its device has moved this "
                 "far (m; 3GPP TR 38.901's LOS correlation distance, 50 m in UMa and UMi; 0 = once "
                 "per run)",
                 p.losCorrelationM);
    cmd.AddValue("frequency", "carrier frequency (Hz)", p.frequencyHz);
    cmd.AddValue("bandwidth", "total uplink bandwidth B (Hz)", p.bandwidthHz);
    cmd.AddValue("ueTxPower", "device transmit power (dBm)", p.ueTxPowerDbm);
    cmd.AddValue("bsTxPower", "base station transmit power (dBm)", p.bsTxPowerDbm);
    cmd.AddValue("bsNoiseFigure", "base station noise figure (dB)", p.bsNoiseFigureDb);
    cmd.AddValue("ueNoiseFigure", "device noise figure (dB)", p.ueNoiseFigureDb);
    cmd.AddValue("packetBytes", "application payload per packet (bytes)", p.packetBytes);
    cmd.AddValue("linkMargin",
                 "ideal-fdma: SNR gap of the link adaptation to Shannon, log2(1 + SNR/margin) (dB)",
                 p.linkMarginDb);
    cmd.AddValue("maxSpectralEfficiency",
                 "ideal-fdma: cap on the link adaptation's spectral efficiency (bit/s/Hz; 0 = none)",
                 p.maxSpectralEfficiency);
    cmd.AddValue("fdmaBins", "ideal-fdma: equal sub-bands across the band; shares are whole bins",
                 p.fdmaBins);
    cmd.AddValue("lteBlerTarget", "lte: block error rate the uplink's outer-loop link adaptation aims at",
                 p.lteBlerTarget);
    cmd.AddValue("lteHarq",
                 "lte: HARQ in both directions, up to three combined retransmissions of a failed transport "
                 "block (RLC AM recovers what it gives up)",
                 p.lteHarq);
    cmd.AddValue("ltePowerControl",
                 "lte: uplink power control (ns-3's LteUePowerControl; tune it with its attributes); the "
                 "transmit energy follows the power of each grant",
                 p.ltePowerControl);
    cmd.AddValue("cellRadius", "devices are placed uniformly in a disc of this radius (m)", m.cellRadiusM);
    cmd.AddValue("minDistance", "minimum distance of a device to the base station (m)", m.minDistanceM);
    cmd.AddValue("mobility", "constant | random-walk | random-waypoint | gauss-markov | ns2", m.model);
    cmd.AddValue("traceFile",
                 "ns-2 mobility trace (mobility=ns2); a node without Z_ (or Z_ 0) is --ueHeight high, "
                 "and is absent after the end of its last move unless --activityFile says otherwise",
                 m.traceFile);
    cmd.AddValue("activityFile",
                 "SUMO ns2activity file (`$ns_ at t \"$g(i) start\"` / `stop`): when each trace node "
                 "is in the scenario",
                 m.activityFile);
    cmd.AddValue("speedMin", "minimum device speed (m/s)", m.speedMinMps);
    cmd.AddValue("speedMax", "maximum device speed (m/s)", m.speedMaxMps);
    cmd.AddValue("bsHeight", "base station antenna height (m)", p.bsHeightM);
    cmd.AddValue("ueHeight", "device height (m)", p.ueHeightM);
    cmd.AddValue("shm", "shared-memory segment created by the Python side", shm);
    cmd.AddValue("bridgeTimeout", "exit if no command arrives for this long (s)", bridgeTimeoutS);
    cmd.AddValue("flowMonitor", "write FlowMonitor XML here at the end", flowMonitorXml);
    cmd.AddValue("rounds", "standalone mode: rounds to run without Python", rounds);
    cmd.AddValue("payloadBytes", "standalone mode: uplink and downlink bytes per device", payloadBytes);
    cmd.AddValue("deadline", "standalone mode: round deadline (s)", deadlineS);
    cmd.AddValue("shares", "standalone mode: comma-separated share per device, 0 = not scheduled "
                           "(default: equal shares)", shares);
    cmd.Parse(argc, argv);
    m.bsHeightM = p.bsHeightM;
    m.ueHeightM = p.ueHeightM;
    m.propagation = p.propagation;

    try
    {
        if (p.devices == 0)
        {
            throw std::runtime_error("--devices must be at least 1");
        }
        if (shm.empty() && rounds == 0)
        {
            throw std::runtime_error("give --shm=<segment> (driven by Python) or --rounds=N (standalone)");
        }
        NodeContainer bs(1);
        NodeContainer ues(p.devices);
        Presence presence = InstallMobility(m, bs, ues);
        std::unique_ptr<CosimRadio> radio;
        if (p.radio == "lte")
        {
            radio = MakeLteRadio();
        }
        else if (p.radio == "ideal-fdma")
        {
            radio = MakeIdealFdmaRadio();
        }
        else
        {
            throw std::runtime_error("unknown --radio '" + p.radio + "' (lte, ideal-fdma)");
        }
        radio->Install(p, bs, ues);

        FlowMonitorHelper flowHelper;
        if (!flowMonitorXml.empty())
        {
            flowHelper.InstallAll();
        }
        Simulator::Stop(radio->WarmUp());
        Simulator::Run();

        if (!shm.empty())
        {
            RunBridge(shm, bridgeTimeoutS, *radio, p, presence, bs, ues);
        }
        else
        {
            RunStandalone(rounds, payloadBytes, deadlineS, shares, *radio, p, presence, bs, ues);
        }
        if (!flowMonitorXml.empty())
        {
            flowHelper.SerializeToXmlFile(flowMonitorXml, true, true);
        }
        Simulator::Destroy();
    }
    catch (const std::exception& e)
    {
        std::cerr << "cosim-scenario: error: " << e.what() << std::endl;
        return 2;
    }
    return 0;
}
