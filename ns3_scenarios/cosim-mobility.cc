#include "cosim-mobility.h"

#include "ns3/double.h"
#include "ns3/mobility-helper.h"
#include "ns3/mobility-model.h"
#include "ns3/ns2-mobility-helper.h"
#include "ns3/pointer.h"
#include "ns3/random-variable-stream.h"
#include "ns3/rectangle.h"
#include "ns3/box.h"
#include "ns3/string.h"
#include "ns3/uinteger.h"
#include "ns3/nstime.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

using namespace ns3;

namespace cosim
{

namespace
{

std::string
Where(const std::string& path, uint32_t line)
{
    return path + ":" + std::to_string(line) + ": ";
}

double
ParseNumber(const std::string& text, const std::string& where, const std::string& what)
{
    try
    {
        std::size_t used = 0;
        double v = std::stod(text, &used);
        if (used != text.size() || !std::isfinite(v))
        {
            throw std::invalid_argument(text);
        }
        return v;
    }
    catch (const std::logic_error&)
    {
        throw std::runtime_error(where + what + " '" + text + "' is not a finite number");
    }
}

/// n positions uniform over the area of the annulus [minDistance, radius] around the origin.
Ptr<PositionAllocator>
DiscAllocator(const MobilityParams& p, uint32_t n)
{
    auto u = CreateObject<UniformRandomVariable>();
    double lo = (p.minDistanceM / p.cellRadiusM) * (p.minDistanceM / p.cellRadiusM);
    auto alloc = CreateObject<ListPositionAllocator>();
    for (uint32_t i = 0; i < n; ++i)
    {
        double rho = p.cellRadiusM * std::sqrt(u->GetValue(lo, 1.0));
        double phi = u->GetValue(0.0, 2 * M_PI);
        alloc->Add(Vector(rho * std::cos(phi), rho * std::sin(phi), p.ueHeightM));
    }
    return alloc;
}

/// Call `command(body, where)` for each line of a Tcl-style file that is neither blank nor a
/// comment, trimmed; `where` is "FILE:LINE: " for error messages.
void
ForEachCommand(const std::string& path,
               const std::string& what,
               const std::function<void(const std::string&, const std::string&)>& command)
{
    std::ifstream in(path);
    if (!in)
    {
        throw std::runtime_error(path + ": cannot open the " + what);
    }
    std::string line;
    uint32_t n = 0;
    while (std::getline(in, line))
    {
        ++n;
        auto first = line.find_first_not_of(" \t\r");
        if (first == std::string::npos || line[first] == '#')
        {
            continue;
        }
        auto last = line.find_last_not_of(" \t\r");
        command(line.substr(first, last - first + 1), Where(path, n));
    }
}

/// What a trace says of one node: its initial position and its moves (time, x, y, speed).
struct TraceNode
{
    double x{0};
    double y{0};
    double z{0};
    bool hasZ{false};
    bool placed{false};
    std::vector<std::array<double, 4>> moves;
};

/// Check an ns-2 mobility trace line by line for `numNodes` nodes and return what it says of
/// each; throws std::runtime_error "FILE:LINE: reason" at the first bad line (ns-3's own reader
/// skips what it cannot parse).
std::vector<TraceNode>
ReadNs2Trace(const std::string& path, uint32_t numNodes)
{
    static const std::regex setPos(R"(^\$node_\((\d+)\)\s+set\s+([XYZ])_\s+(\S+)$)");
    static const std::regex setDest(
        R"(^\$ns_\s+at\s+(\S+)\s+\"\$node_\((\d+)\)\s+setdest\s+(\S+)\s+(\S+)\s+(\S+)\"$)");
    std::vector<TraceNode> nodes(numNodes);
    ForEachCommand(path, "ns-2 mobility trace", [&](const std::string& body, const std::string& where) {
        std::smatch m;
        uint32_t node;
        std::array<double, 4> move{};
        bool isMove = false;
        double coordinate = 0;
        if (std::regex_match(body, m, setPos))
        {
            node = std::stoul(m[1]);
            coordinate = ParseNumber(m[3], where, std::string("coordinate ") + m[2].str());
        }
        else if (std::regex_match(body, m, setDest))
        {
            move = {ParseNumber(m[1], where, "time"), ParseNumber(m[3], where, "x"),
                    ParseNumber(m[4], where, "y"), ParseNumber(m[5], where, "speed")};
            node = std::stoul(m[2]);
            isMove = true;
            if (move[0] < 0)
            {
                throw std::runtime_error(where + "negative time " + m[1].str());
            }
            if (move[3] < 0)
            {
                throw std::runtime_error(where + "negative speed " + m[5].str());
            }
        }
        else
        {
            throw std::runtime_error(
                where + "not an ns-2 mobility command (expected `$node_(i) set X_ x` or "
                        "`$ns_ at t \"$node_(i) setdest x y speed\"`)");
        }
        if (node >= numNodes)
        {
            throw std::runtime_error(where + "node " + std::to_string(node) +
                                     " does not exist (the scenario has " +
                                     std::to_string(numNodes) + " devices, 0.." +
                                     std::to_string(numNodes - 1) + ")");
        }
        TraceNode& t = nodes[node];
        if (isMove)
        {
            t.moves.push_back(move);
        }
        else if (m[2] == "X")
        {
            t.x = coordinate;
            t.placed = true;
        }
        else if (m[2] == "Y")
        {
            t.y = coordinate;
        }
        else
        {
            t.z = coordinate;
            t.hasZ = true;
        }
    });
    for (uint32_t i = 0; i < numNodes; ++i)
    {
        if (!nodes[i].placed)
        {
            throw std::runtime_error(path + ": device " + std::to_string(i) +
                                     " has no initial position (`$node_(" + std::to_string(i) +
                                     ") set X_ ...`)");
        }
        std::sort(nodes[i].moves.begin(), nodes[i].moves.end());
    }
    return nodes;
}

/// When a node reaches its last position: the end of its last move, followed through every
/// move before it as ns-3 does (a move starts from where the node is at its time); +inf if it
/// never moves (its one position holds for the whole run).
double
LastPositionS(const TraceNode& t)
{
    if (t.moves.empty())
    {
        return std::numeric_limits<double>::infinity();
    }
    double x = t.x, y = t.y;   // where the current move started
    double at = 0, arrive = 0; // when it started and when it ends
    double tx = t.x, ty = t.y, speed = 0;
    for (const auto& [time, destX, destY, v] : t.moves)
    {
        if (time < arrive && speed > 0) // cut short: where the node is now
        {
            double f = (time - at) / (arrive - at);
            x += f * (tx - x);
            y += f * (ty - y);
        }
        else
        {
            x = tx;
            y = ty;
        }
        at = time;
        tx = destX;
        ty = destY;
        speed = v;
        double distance = std::hypot(tx - x, ty - y);
        arrive = time + (v > 0 ? distance / v : 0.0);
    }
    return arrive;
}

/// A SUMO ns2activity file (`$ns_ at T "$g(N) start"` / `stop`, as traceExporter writes it with
/// numeric ids): [start, stop] per node; a node it does not mention is there all along.
void
ReadActivity(const std::string& path, uint32_t numNodes, Presence& presence)
{
    static const std::regex event(
        R"(^\$ns_\s+at\s+(\S+)\s+\"\$g\((\d+)\)\s+(start|stop)\"\s*;?\s*(#.*)?$)");
    ForEachCommand(path, "activity file", [&](const std::string& body, const std::string& where) {
        std::smatch m;
        if (!std::regex_match(body, m, event))
        {
            throw std::runtime_error(where + "not an activity event (expected `$ns_ at t \"$g(i) "
                                             "start\"` or `stop`, numeric ids)");
        }
        double t = ParseNumber(m[1], where, "time");
        uint32_t node = std::stoul(m[2]);
        if (node >= numNodes)
        {
            throw std::runtime_error(where + "node " + std::to_string(node) + " does not exist (the "
                                     "scenario has " + std::to_string(numNodes) + " devices)");
        }
        (m[3] == "start" ? presence.enterS : presence.leaveS)[node] = t;
    });
}

/// The range of device heights a path loss model is defined for (3GPP TR 38.901 Table 7.4.1-1).
std::pair<double, double>
HeightRange(const std::string& propagation)
{
    if (propagation == "uma" || propagation == "umi")
    {
        return {1.5, 22.5};
    }
    return {0.0, std::numeric_limits<double>::infinity()};
}

} // namespace

Presence
InstallMobility(const MobilityParams& p, NodeContainer bs, NodeContainer ues)
{
    MobilityHelper fixed;
    auto bsPos = CreateObject<ListPositionAllocator>();
    bsPos->Add(Vector(0.0, 0.0, p.bsHeightM));
    fixed.SetPositionAllocator(bsPos);
    fixed.SetMobilityModel("ns3::ConstantPositionMobilityModel");
    fixed.Install(bs);

    const uint32_t k = ues.GetN();
    const double forever = std::numeric_limits<double>::infinity();
    Presence presence{std::vector<double>(k, 0.0), std::vector<double>(k, forever)};
    auto [lowest, highest] = HeightRange(p.propagation);
    if (p.model == "ns2")
    {
        std::vector<TraceNode> nodes = ReadNs2Trace(p.traceFile, k);
        Ns2MobilityHelper ns2(p.traceFile);
        ns2.Install(ues.Begin(), ues.End());
        for (uint32_t i = 0; i < k; ++i)
        {
            // SUMO's exporter writes Z_ 0 for a vehicle: no device is at ground level
            double z = nodes[i].hasZ && nodes[i].z != 0 ? nodes[i].z : p.ueHeightM;
            if (z < lowest || z > highest)
            {
                throw std::runtime_error(p.traceFile + ": node " + std::to_string(i) + " is " +
                                         std::to_string(z) + " m high, outside the " + p.propagation +
                                         " path loss model's device heights (" +
                                         std::to_string(lowest) + "-" + std::to_string(highest) +
                                         " m); fix its Z_ or scenario.ue_height_m");
            }
            ues.Get(i)->GetObject<MobilityModel>()->SetPosition(Vector(nodes[i].x, nodes[i].y, z));
            presence.leaveS[i] = LastPositionS(nodes[i]);
        }
        if (!p.activityFile.empty())
        {
            presence.leaveS.assign(k, forever);
            ReadActivity(p.activityFile, k, presence);
        }
        return presence;
    }
    if (!p.activityFile.empty())
    {
        throw std::runtime_error("--activityFile goes with --mobility=ns2 (a trace's nodes)");
    }
    if (p.ueHeightM < lowest || p.ueHeightM > highest)
    {
        throw std::runtime_error("--ueHeight=" + std::to_string(p.ueHeightM) + " m is outside the " +
                                 p.propagation + " path loss model's device heights (" +
                                 std::to_string(lowest) + "-" + std::to_string(highest) + " m)");
    }

    MobilityHelper mob;
    mob.SetPositionAllocator(DiscAllocator(p, ues.GetN()));
    std::ostringstream speed;
    speed << "ns3::UniformRandomVariable[Min=" << p.speedMinMps << "|Max=" << p.speedMaxMps << "]";
    double r = p.cellRadiusM;
    if (p.model == "constant")
    {
        mob.SetMobilityModel("ns3::ConstantPositionMobilityModel");
    }
    else if (p.model == "random-walk")
    {
        mob.SetMobilityModel("ns3::RandomWalk2dMobilityModel",
                             "Bounds", RectangleValue(Rectangle(-r, r, -r, r)),
                             "Speed", StringValue(speed.str()),
                             "Mode", StringValue("Time"),
                             "Time", StringValue("2s"));
    }
    else if (p.model == "random-waypoint")
    {
        auto waypoints = CreateObject<UniformDiscPositionAllocator>();
        waypoints->SetRho(r);
        waypoints->SetZ(p.ueHeightM);
        mob.SetMobilityModel("ns3::RandomWaypointMobilityModel",
                             "Speed", StringValue(speed.str()),
                             "Pause", StringValue("ns3::ConstantRandomVariable[Constant=2.0]"),
                             "PositionAllocator", PointerValue(waypoints));
    }
    else if (p.model == "gauss-markov")
    {
        std::ostringstream mean;
        mean << "ns3::ConstantRandomVariable[Constant=" << 0.5 * (p.speedMinMps + p.speedMaxMps) << "]";
        mob.SetMobilityModel("ns3::GaussMarkovMobilityModel",
                             "Bounds", BoxValue(Box(-r, r, -r, r, p.ueHeightM, p.ueHeightM)),
                             "TimeStep", TimeValue(Seconds(1.0)),
                             "Alpha", DoubleValue(0.85),
                             "MeanVelocity", StringValue(mean.str()),
                             "MeanDirection", StringValue("ns3::UniformRandomVariable[Min=0|Max=6.283185307]"),
                             "MeanPitch", StringValue("ns3::ConstantRandomVariable[Constant=0.0]"),
                             "NormalVelocity", StringValue("ns3::NormalRandomVariable[Mean=0.0|Variance=0.0|Bound=0.0]"),
                             "NormalDirection", StringValue("ns3::NormalRandomVariable[Mean=0.0|Variance=0.2|Bound=0.4]"),
                             "NormalPitch", StringValue("ns3::ConstantRandomVariable[Constant=0.0]"));
    }
    else
    {
        throw std::runtime_error("unknown --mobility '" + p.model +
                                 "' (constant, random-walk, random-waypoint, gauss-markov, ns2)");
    }
    mob.Install(ues);
    return presence;
}

} // namespace cosim
