#include "cosim-radio.h"

#include "ns3/channel-condition-model.h"
#include "ns3/double.h"
#include "ns3/boolean.h"
#include "ns3/mobility-model.h"
#include "ns3/propagation-loss-model.h"
#include "ns3/random-variable-stream.h"
#include "ns3/three-gpp-propagation-loss-model.h"
#include "ns3/nstime.h"

#include <map>
#include <stdexcept>
#include <utility>

using namespace ns3;

namespace cosim
{

namespace
{

/// Log-normal shadowing that stays fixed per link (drawn once per node pair), unlike ns-3's
/// RandomPropagationLossModel which draws anew for every packet.
class LinkShadowingLossModel : public PropagationLossModel
{
  public:
    explicit LinkShadowingLossModel(double sigmaDb)
        : m_sigmaDb(sigmaDb),
          m_normal(CreateObject<NormalRandomVariable>())
    {
        m_normal->SetAttribute("Mean", DoubleValue(0.0));
        m_normal->SetAttribute("Variance", DoubleValue(sigmaDb * sigmaDb));
    }

  private:
    double DoCalcRxPower(double txPowerDbm, Ptr<MobilityModel> a, Ptr<MobilityModel> b) const override
    {
        auto key = a < b ? std::make_pair(a, b) : std::make_pair(b, a);
        auto it = m_shadowDb.find(key);
        if (it == m_shadowDb.end())
        {
            it = m_shadowDb.emplace(key, m_normal->GetValue()).first;
        }
        return txPowerDbm - it->second;
    }

    int64_t DoAssignStreams(int64_t stream) override
    {
        m_normal->SetStream(stream);
        return 1;
    }

    double m_sigmaDb;
    Ptr<NormalRandomVariable> m_normal;
    mutable std::map<std::pair<Ptr<MobilityModel>, Ptr<MobilityModel>>, double> m_shadowDb;
};

} // namespace

Ptr<PropagationLossModel>
MakePropagationLoss(const ScenarioParams& p)
{
    Ptr<PropagationLossModel> head;
    if (p.propagation == "uma" || p.propagation == "umi")
    {
        Ptr<ThreeGppPropagationLossModel> model;
        Ptr<ChannelConditionModel> condition;
        if (p.propagation == "uma")
        {
            model = CreateObject<ThreeGppUmaPropagationLossModel>();
            condition = CreateObject<ThreeGppUmaChannelConditionModel>();
        }
        else
        {
            model = CreateObject<ThreeGppUmiStreetCanyonPropagationLossModel>();
            condition = CreateObject<ThreeGppUmiStreetCanyonChannelConditionModel>();
        }
        model->SetAttribute("Frequency", DoubleValue(p.frequencyHz));
        model->SetAttribute("ShadowingEnabled", BooleanValue(p.shadowing));
        // ns-3 draws a link's LOS state independently at each update (no spatial consistency):
        // 0 keeps the first draw for the whole run, fine for slow devices; moving ones want about
        // 3GPP's LOS correlation distance over their speed (50 m in UMa, so ~5 s for cars)
        condition->SetAttribute("UpdatePeriod", TimeValue(Seconds(p.losUpdatePeriodS)));
        model->SetChannelConditionModel(condition);
        head = model;
    }
    else if (p.propagation == "log-distance")
    {
        // 128.1 + 37.6 log10(d / km), the usual macro-cell model at 2 GHz, anchored at 1 m
        // because ns-3 returns the reference loss for every distance below the reference
        auto model = CreateObject<LogDistancePropagationLossModel>();
        model->SetAttribute("ReferenceDistance", DoubleValue(1.0));
        model->SetAttribute("ReferenceLoss", DoubleValue(128.1 - 3 * 37.6));
        model->SetAttribute("Exponent", DoubleValue(3.76));
        head = model;
        if (p.shadowing)
        {
            head->SetNext(Create<LinkShadowingLossModel>(p.shadowingSigmaDb));
        }
    }
    else
    {
        throw std::runtime_error("unknown --propagation '" + p.propagation +
                                 "' (uma, umi, log-distance)");
    }

    if (p.fading == "rayleigh" || p.fading == "nakagami")
    {
        double m = p.fading == "rayleigh" ? 1.0 : p.nakagamiM;
        auto fading = CreateObject<NakagamiPropagationLossModel>();
        fading->SetAttribute("m0", DoubleValue(m));
        fading->SetAttribute("m1", DoubleValue(m));
        fading->SetAttribute("m2", DoubleValue(m));
        Ptr<PropagationLossModel> tail = head;
        while (tail->GetNext())
        {
            tail = tail->GetNext();
        }
        tail->SetNext(fading);
    }
    else if (p.fading != "none")
    {
        throw std::runtime_error("unknown --fading '" + p.fading + "' (rayleigh, nakagami, none)");
    }
    return head;
}

void
PrimePropagationLoss(Ptr<PropagationLossModel> loss, NodeContainer bs, NodeContainer ues)
{
    auto bsMobility = bs.Get(0)->GetObject<MobilityModel>();
    for (uint32_t k = 0; k < ues.GetN(); ++k)
    {
        loss->CalcRxPower(0.0, ues.Get(k)->GetObject<MobilityModel>(), bsMobility);
    }
}

} // namespace cosim
