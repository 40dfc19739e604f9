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

#include <cmath>
#include <fstream>
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

} // namespace

void
ValidateNs2Trace(const std::string& path, uint32_t numNodes)
{
    std::ifstream in(path);
    if (!in)
    {
        throw std::runtime_error(path + ": cannot open the ns-2 mobility trace");
    }
    static const std::regex setPos(R"(^\$node_\((\d+)\)\s+set\s+([XYZ])_\s+(\S+)$)");
    static const std::regex setDest(
        R"(^\$ns_\s+at\s+(\S+)\s+\"\$node_\((\d+)\)\s+setdest\s+(\S+)\s+(\S+)\s+(\S+)\"$)");
    std::set<uint32_t> placed;
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
        std::string body = line.substr(first, last - first + 1);
        std::smatch m;
        std::string where = Where(path, n);
        uint32_t node;
        if (std::regex_match(body, m, setPos))
        {
            node = std::stoul(m[1]);
            ParseNumber(m[3], where, std::string("coordinate ") + m[2].str());
            placed.insert(node);
        }
        else if (std::regex_match(body, m, setDest))
        {
            double t = ParseNumber(m[1], where, "time");
            node = std::stoul(m[2]);
            ParseNumber(m[3], where, "x");
            ParseNumber(m[4], where, "y");
            double speed = ParseNumber(m[5], where, "speed");
            if (t < 0)
            {
                throw std::runtime_error(where + "negative time " + m[1].str());
            }
            if (speed < 0)
            {
                throw std::runtime_error(where + "negative speed " + m[5].str());
            }
        }
        else
        {
            throw std::runtime_error(
                where + "not an ns-2 mobility command (expected `$node_(i) set X_ x` or "
                        "`$ns_ at t \"$node_(i) setdest x y speed\"`): " + body);
        }
        if (node >= numNodes)
        {
            throw std::runtime_error(where + "node " + std::to_string(node) +
                                     " does not exist (the scenario has " +
                                     std::to_string(numNodes) + " devices, 0.." +
                                     std::to_string(numNodes - 1) + ")");
        }
    }
    for (uint32_t i = 0; i < numNodes; ++i)
    {
        if (!placed.count(i))
        {
            throw std::runtime_error(path + ": device " + std::to_string(i) +
                                     " has no initial position (`$node_(" + std::to_string(i) +
                                     ") set X_ ...`)");
        }
    }
}

void
InstallMobility(const MobilityParams& p, NodeContainer bs, NodeContainer ues)
{
    MobilityHelper fixed;
    auto bsPos = CreateObject<ListPositionAllocator>();
    bsPos->Add(Vector(0.0, 0.0, p.bsHeightM));
    fixed.SetPositionAllocator(bsPos);
    fixed.SetMobilityModel("ns3::ConstantPositionMobilityModel");
    fixed.Install(bs);

    if (p.model == "ns2")
    {
        ValidateNs2Trace(p.traceFile, ues.GetN());
        Ns2MobilityHelper ns2(p.traceFile);
        ns2.Install(ues.Begin(), ues.End());
        return;
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
}

} // namespace cosim
