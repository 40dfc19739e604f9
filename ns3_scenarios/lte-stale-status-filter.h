// Drops RLC AM STATUS PDUs that arrive after a newer one of the same bearer.
//
// With HARQ a transport block can be decoded up to three retransmissions (7 to 8 ms each) after
// the blocks sent behind it, so a newer STATUS PDU can overtake an older one. TS 36.322
// 5.2.1 has the transmitter act only on sequence numbers within VT(A) <= SN < VT(S): an old
// ACK_SN (below VT(A)) acknowledges nothing. ns-3's LteRlcAm compares ACK_SN modulo 1024 from
// VT(A), so an old ACK_SN reads as one almost a window ahead and every PDU in flight counts as
// acknowledged: those that were lost are never sent again and the bearer stalls for good. This
// filter sits between a receiving PHY (the eNB's uplink, each UE's downlink) and its MAC and
// discards such stale STATUS PDUs (the newer STATUS already said everything they say).
#ifndef LTE_STALE_STATUS_FILTER_H
#define LTE_STALE_STATUS_FILTER_H

#include "ns3/callback.h"
#include "ns3/lte-spectrum-phy.h"
#include "ns3/packet.h"
#include "ns3/ptr.h"

#include <cstdint>
#include <map>
#include <utility>

namespace ns3
{

class LteStaleStatusFilter : public SimpleRefCount<LteStaleStatusFilter>
{
  public:
    /// Puts the filter between `rx` and `deliver`, the PHY's data callback that LteHelper set
    /// (LteEnbPhy::PhyPduReceived or LteUePhy::PhyPduReceived), which it replaces.
    static Ptr<LteStaleStatusFilter> Install(Ptr<LteSpectrumPhy> rx, Callback<void, Ptr<Packet>> deliver);

  private:
    explicit LteStaleStatusFilter(Callback<void, Ptr<Packet>> deliver);
    void Receive(Ptr<Packet> p);

    Callback<void, Ptr<Packet>> m_deliver;
    std::map<std::pair<uint16_t, uint8_t>, uint16_t> m_lastAckSn; ///< (rnti, lcid) -> ACK_SN
};

} // namespace ns3

#endif // LTE_STALE_STATUS_FILTER_H
