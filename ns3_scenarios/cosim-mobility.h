// Placement and mobility of the devices: uniform in a disc around the base station, then one of
// constant position, random walk, random waypoint, Gauss-Markov, or an ns-2 mobility trace.
#ifndef COSIM_MOBILITY_H
#define COSIM_MOBILITY_H

#include "ns3/node-container.h"

#include <string>
#include <vector>

namespace cosim
{

struct MobilityParams
{
    std::string model{"random-walk"}; ///< constant | random-walk | random-waypoint | gauss-markov | ns2
    std::string traceFile;            ///< ns-2 trace (model=ns2)
    std::string activityFile;         ///< SUMO ns2activity file: when each node starts and stops
    std::string propagation{"uma"};   ///< the path loss model, whose range of device heights applies
    double cellRadiusM{250.0};        ///< devices are placed uniformly in this disc
    double minDistanceM{10.0};        ///< ... but not closer than this to the base station
    double speedMinMps{0.5};
    double speedMaxMps{1.5};
    double bsHeightM{25.0};
    double ueHeightM{1.5};
};

/// When each device is in the scenario, in simulated seconds: from enterS[k] until leaveS[k].
/// Devices of the built-in mobility models are always there; a trace's may enter late or leave.
struct Presence
{
    std::vector<double> enterS;
    std::vector<double> leaveS;

    bool At(uint32_t device, double nowS) const
    {
        return enterS[device] <= nowS && nowS <= leaveS[device];
    }
};

/// Put the base station at the origin and install the devices' mobility; returns when each
/// device is present. Throws std::runtime_error naming the file, line (or node) and reason for
/// a malformed ns-2 trace or activity file, or a height the path loss model does not cover.
Presence InstallMobility(const MobilityParams& params, ns3::NodeContainer bs, ns3::NodeContainer ues);

} // namespace cosim

#endif // COSIM_MOBILITY_H
