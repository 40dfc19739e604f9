#include "lte-stale-status-filter.h"

#include "ns3/lte-radio-bearer-tag.h"
#include "ns3/lte-rlc-am-header.h"
#include "ns3/log.h"
#include "ns3/lte-spectrum-phy.h"

namespace ns3
{

NS_LOG_COMPONENT_DEFINE("LteStaleStatusFilter");

namespace
{
/// AM sequence numbers are 10 bits; a newer ACK_SN is less than half the space ahead.
constexpr uint16_t SN_MODULUS = 1024;
/// Logical channel 0 is SRB0 (RLC TM, no STATUS); every other bearer of this radio is RLC AM.
constexpr uint8_t FIRST_AM_LCID = 1;
} // namespace

LteStaleStatusFilter::LteStaleStatusFilter(Callback<void, Ptr<Packet>> deliver)
    : m_deliver(deliver)
{
}

Ptr<LteStaleStatusFilter>
LteStaleStatusFilter::Install(Ptr<LteSpectrumPhy> rx, Callback<void, Ptr<Packet>> deliver)
{
    Ptr<LteStaleStatusFilter> filter = Ptr<LteStaleStatusFilter>(new LteStaleStatusFilter(deliver), false);
    rx->SetLtePhyRxDataEndOkCallback(MakeCallback(&LteStaleStatusFilter::Receive, PeekPointer(filter)));
    return filter;
}

void
LteStaleStatusFilter::Receive(Ptr<Packet> p)
{
    LteRadioBearerTag tag;
    if (p->PeekPacketTag(tag) && tag.GetLcid() >= FIRST_AM_LCID)
    {
        LteRlcAmHeader header;
        p->PeekHeader(header);
        if (header.IsControlPdu())
        {
            uint16_t ackSn = header.GetAckSn().GetValue();
            auto [last, first] = m_lastAckSn.try_emplace({tag.GetRnti(), tag.GetLcid()}, ackSn);
            uint16_t behind = (last->second - ackSn + SN_MODULUS) % SN_MODULUS;
            if (!first && behind > 0 && behind < SN_MODULUS / 2)
            {
                NS_LOG_INFO("stale STATUS dropped: rnti " << tag.GetRnti() << " lcid " << +tag.GetLcid()
                                                          << " ACK_SN " << ackSn << " after "
                                                          << last->second);
                return;
            }
            last->second = ackSn;
        }
    }
    m_deliver(p);
}

} // namespace ns3
