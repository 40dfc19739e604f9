// Placement and mobility of the devices: uniform in a disc around the base station, then one of
// constant position, random walk, random waypoint, Gauss-Markov, or an ns-2 mobility trace.
#ifndef COSIM_MOBILITY_H
#define COSIM_MOBILITY_H

#include "ns3/node-container.h"

#include <string>

namespace cosim
{

struct MobilityParams
{
    std::string model{"random-walk"}; ///< constant | random-walk | random-waypoint | gauss-markov | ns2
    std::string traceFile;            ///< ns-2 trace (model=ns2)
    double cellRadiusM{250.0};        ///< devices are placed uniformly in this disc
    double minDistanceM{10.0};        ///< ... but not closer than this to the base station
    double speedMinMps{0.5};
    double speedMaxMps{1.5};
    double bsHeightM{25.0};
    double ueHeightM{1.5};
};

/// Put the base station at the origin and install the devices' mobility.
/// Throws std::runtime_error naming the file, line and reason for a malformed ns-2 trace.
void InstallMobility(const MobilityParams& params, ns3::NodeContainer bs, ns3::NodeContainer ues);

/// Check an ns-2 mobility trace line by line for `numNodes` nodes; throws std::runtime_error
/// "FILE:LINE: reason" at the first bad line. ns-3's own reader skips what it cannot parse.
void ValidateNs2Trace(const std::string& path, uint32_t numNodes);

} // namespace cosim

#endif // COSIM_MOBILITY_H
