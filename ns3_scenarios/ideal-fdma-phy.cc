#include "ideal-fdma-phy.h"

#include "ns3/log.h"
#include "ns3/net-device.h"
#include "ns3/simulator.h"
#include "ns3/spectrum-value.h"

#include <algorithm>

using namespace ns3;

namespace cosim
{

NS_LOG_COMPONENT_DEFINE("IdealFdmaPhy");
NS_OBJECT_ENSURE_REGISTERED(FdmaPhy);
NS_OBJECT_ENSURE_REGISTERED(FdmaListenFilter);

Ptr<SpectrumSignalParameters>
FdmaSignal::Copy() const
{
    return Create<FdmaSignal>(*this);
}

TypeId
FdmaPhy::GetTypeId()
{
    static TypeId tid = TypeId("cosim::FdmaPhy")
                            .SetParent<SpectrumPhy>()
                            .SetGroupName("Cosim")
                            .AddConstructor<FdmaPhy>();
    return tid;
}

void
FdmaPhy::Configure(Ptr<MobilityModel> mobility,
                   Ptr<SpectrumChannel> channel,
                   Ptr<const SpectrumModel> model,
                   double noisePsdWHz,
                   RxCallback onRx)
{
    m_mobility = mobility;
    m_channel = channel;
    m_model = model;
    m_noisePsd = noisePsdWHz;
    m_onRx = std::move(onRx);
    m_binWidth = model->Begin()->fh - model->Begin()->fl;
    m_totalPsd.assign(model->GetNumBands(), 0.0);
}

void
FdmaPhy::Reset(uint64_t epoch)
{
    m_epoch = epoch;
    std::fill(m_totalPsd.begin(), m_totalPsd.end(), 0.0);
    m_onAir = 0;
    m_receptions.clear();
    m_lastUpdate = Simulator::Now();
}

void
FdmaPhy::Listen(uint32_t lo, uint32_t hi)
{
    m_listenLo = lo;
    m_listenHi = hi;
}

bool
FdmaPhy::Hears(uint32_t lo, uint32_t hi) const
{
    return lo < m_listenHi && m_listenLo < hi;
}

void
FdmaPhy::Send(Ptr<FdmaSignal> signal)
{
    signal->txPhy = this;
    m_channel->StartTx(signal);
}

void
FdmaPhy::StartRx(Ptr<SpectrumSignalParameters> params)
{
    auto s = DynamicCast<FdmaSignal>(params);
    if (!s || s->epoch != m_epoch)
    {
        return; // left over from a round that has ended
    }
    Accumulate();
    double own = 0;
    for (uint32_t b = s->lo; b < s->hi; ++b)
    {
        double psd = (*s->psd)[b];
        m_totalPsd[b] += psd;
        own += psd;
    }
    ++m_onAir;
    if (s->dst == this)
    {
        m_receptions.push_back(Reception{s, own});
    }
    Simulator::Schedule(s->duration, &FdmaPhy::EndSignal, this, s);
}

void
FdmaPhy::EndSignal(Ptr<FdmaSignal> s)
{
    if (s->epoch != m_epoch)
    {
        return;
    }
    Accumulate();
    if (--m_onAir == 0)
    {
        // start from exact zeros again rather than from the rounding residue of the subtractions
        std::fill(m_totalPsd.begin(), m_totalPsd.end(), 0.0);
    }
    else
    {
        for (uint32_t b = s->lo; b < s->hi; ++b)
        {
            m_totalPsd[b] -= (*s->psd)[b];
        }
    }
    auto it = std::find_if(m_receptions.begin(), m_receptions.end(),
                           [&s](const Reception& r) { return r.signal == s; });
    if (it == m_receptions.end())
    {
        return; // interference only
    }
    Reception r = *it;
    *it = m_receptions.back();
    m_receptions.pop_back();
    double noise = m_noisePsd * (s->hi - s->lo);
    double interference = r.interference / s->duration.GetSeconds();
    NS_LOG_LOGIC("device " << s->device << " kind " << s->kind << " S " << r.signalPsd << " N "
                           << noise << " I " << interference);
    m_onRx(s, r.signalPsd / (noise + interference), r.signalPsd * m_binWidth);
}

void
FdmaPhy::Accumulate()
{
    double dt = (Simulator::Now() - m_lastUpdate).GetSeconds();
    m_lastUpdate = Simulator::Now();
    if (dt <= 0)
    {
        return;
    }
    for (auto& r : m_receptions)
    {
        double total = 0;
        for (uint32_t b = r.signal->lo; b < r.signal->hi; ++b)
        {
            total += m_totalPsd[b];
        }
        r.interference += std::max(0.0, total - r.signalPsd) * dt;
    }
}

void
FdmaPhy::SetDevice(Ptr<NetDevice>)
{
}

Ptr<NetDevice>
FdmaPhy::GetDevice() const
{
    return nullptr; // no NetDevice: the radio drives the phys directly
}

void
FdmaPhy::SetMobility(Ptr<MobilityModel> m)
{
    m_mobility = m;
}

Ptr<MobilityModel>
FdmaPhy::GetMobility() const
{
    return m_mobility;
}

void
FdmaPhy::SetChannel(Ptr<SpectrumChannel> c)
{
    m_channel = c;
}

Ptr<const SpectrumModel>
FdmaPhy::GetRxSpectrumModel() const
{
    return m_model;
}

Ptr<Object>
FdmaPhy::GetAntenna() const
{
    return nullptr; // isotropic
}

TypeId
FdmaListenFilter::GetTypeId()
{
    static TypeId tid = TypeId("cosim::FdmaListenFilter")
                            .SetParent<SpectrumTransmitFilter>()
                            .SetGroupName("Cosim")
                            .AddConstructor<FdmaListenFilter>();
    return tid;
}

bool
FdmaListenFilter::DoFilter(Ptr<const SpectrumSignalParameters> params,
                           Ptr<const SpectrumPhy> receiverPhy)
{
    // Called once per receiver for every signal, the hottest path of a large cell; only FdmaPhys
    // attach to and transmit FdmaSignals on the radio's channels, so no dynamic_cast is needed.
    auto s = static_cast<const FdmaSignal*>(PeekPointer(params));
    auto phy = static_cast<const FdmaPhy*>(PeekPointer(receiverPhy));
    return !phy->Hears(s->lo, s->hi);
}

int64_t
FdmaListenFilter::DoAssignStreams(int64_t)
{
    return 0;
}

} // namespace cosim
