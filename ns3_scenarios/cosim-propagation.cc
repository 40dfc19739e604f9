#include "cosim-radio.h"

#include "ns3/channel-condition-model.h"
#include "ns3/double.h"
#include "ns3/boolean.h"
#include "ns3/mobility-model.h"
#include "ns3/propagation-loss-model.h"
#include "ns3/random-variable-stream.h"
#include "ns3/three-gpp-propagation-loss-model.h"
#include "ns3/nstime.h"

#include <cmath>
#include <map>
#include <stdexcept>
#include <utility>
#include <vector>

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

/// 3GPP LOS/NLOS state redrawn as a device moves: a link keeps its state until its geometry has
/// changed by the LOS correlation distance (TR 38.901 Table 7.6.3.1-2: 50 m in UMa and UMi), then
/// the 3GPP model draws it anew from the LOS probability at the new distance. A device at rest
/// keeps its state; 0 keeps every link's first draw for the whole run.
class DisplacementLosConditionModel : public ChannelConditionModel
{
  public:
    DisplacementLosConditionModel(Ptr<ChannelConditionModel> inner, double correlationM)
        : m_inner(inner),
          m_correlationM(correlationM)
    {
        // the inner model draws anew whenever it is asked, which is only when a device has moved
        m_inner->SetAttribute("UpdatePeriod", TimeValue(NanoSeconds(1)));
    }

    Ptr<ChannelCondition> GetChannelCondition(Ptr<const MobilityModel> a,
                                              Ptr<const MobilityModel> b) const override
    {
        auto key = a < b ? std::make_pair(a, b) : std::make_pair(b, a);
        Vector r = key.first->GetPosition() - key.second->GetPosition();
        auto it = m_links.find(key);
        if (it == m_links.end())
        {
            it = m_links.emplace(key, std::make_pair(m_inner->GetChannelCondition(a, b), r)).first;
        }
        else if (m_correlationM > 0 && CalculateDistance(r, it->second.second) >= m_correlationM)
        {
            it->second = std::make_pair(m_inner->GetChannelCondition(a, b), r);
        }
        return it->second.first;
    }

    int64_t AssignStreams(int64_t stream) override
    {
        return m_inner->AssignStreams(stream);
    }

  private:
    Ptr<ChannelConditionModel> m_inner;
    double m_correlationM;
    mutable std::map<std::pair<Ptr<const MobilityModel>, Ptr<const MobilityModel>>,
                     std::pair<Ptr<ChannelCondition>, Vector>>
        m_links;
};

/// Fast fading with memory: each link's fade is a sum of plane waves from random horizontal
/// directions, evaluated at the link's current geometry, so it changes exactly as fast as the
/// device moves (Doppler f_d = v f_c / c, autocorrelation J0(2 pi f_d t) at constant speed), stays
/// put while the device stands still, and is the same in both directions. The power gain is
/// Nakagami-m: the mean of 2m squared independent Gaussian processes (m = 1: Rayleigh), each a
/// sum of kWaves cosines; 2m must be a whole number.
class PlaneWaveFadingLossModel : public PropagationLossModel
{
  public:
    PlaneWaveFadingLossModel(double frequencyHz, double m)
        : m_wavenumber(2 * M_PI * frequencyHz / 299792458.0),
          m_components(static_cast<uint32_t>(std::lround(2 * m))),
          m_uniform(CreateObject<UniformRandomVariable>())
    {
    }

  private:
    static constexpr uint32_t kWaves = 32;

    struct Wave
    {
        double kx; ///< wavenumber times the direction's components
        double ky;
        double phase;
    };

    double DoCalcRxPower(double txPowerDbm, Ptr<MobilityModel> a, Ptr<MobilityModel> b) const override
    {
        bool ordered = a < b;
        auto key = ordered ? std::make_pair(a, b) : std::make_pair(b, a);
        auto it = m_links.find(key);
        if (it == m_links.end())
        {
            std::vector<Wave> waves(m_components * kWaves);
            for (Wave& w : waves)
            {
                double direction = m_uniform->GetValue(0, 2 * M_PI);
                w = Wave{m_wavenumber * std::cos(direction), m_wavenumber * std::sin(direction),
                         m_uniform->GetValue(0, 2 * M_PI)};
            }
            it = m_links.emplace(key, std::move(waves)).first;
        }
        Vector r = key.first->GetPosition() - key.second->GetPosition();
        double gain = 0;
        for (uint32_t c = 0; c < m_components; ++c)
        {
            double g = 0;
            for (uint32_t n = 0; n < kWaves; ++n)
            {
                const Wave& w = it->second[c * kWaves + n];
                g += std::cos(w.kx * r.x + w.ky * r.y + w.phase);
            }
            gain += g * g * 2.0 / kWaves;
        }
        gain /= m_components;
        return txPowerDbm + 10 * std::log10(std::max(gain, 1e-12));
    }

    int64_t DoAssignStreams(int64_t stream) override
    {
        m_uniform->SetStream(stream);
        return 1;
    }

    double m_wavenumber;
    uint32_t m_components;
    Ptr<UniformRandomVariable> m_uniform;
    mutable std::map<std::pair<Ptr<MobilityModel>, Ptr<MobilityModel>>, std::vector<Wave>> m_links;
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
        if (!(p.losCorrelationM >= 0))
        {
            throw std::runtime_error("--losCorrelation must be >= 0 (m; 0 = drawn once per link)");
        }
        model->SetChannelConditionModel(
            Create<DisplacementLosConditionModel>(condition, p.losCorrelationM));
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
        Ptr<PropagationLossModel> fading;
        if (p.fadingProcess == "doppler")
        {
            if (std::abs(2 * m - std::round(2 * m)) > 1e-9)
            {
                throw std::runtime_error("--fadingProcess=doppler needs 2 x nakagamiM to be a whole "
                                         "number (0.5, 1, 1.5, ...), not nakagamiM=" +
                                         std::to_string(m) + "; or use --fadingProcess=per-packet");
            }
            fading = Create<PlaneWaveFadingLossModel>(p.frequencyHz, m);
        }
        else if (p.fadingProcess == "per-packet")
        {
            auto nakagami = CreateObject<NakagamiPropagationLossModel>();
            nakagami->SetAttribute("m0", DoubleValue(m));
            nakagami->SetAttribute("m1", DoubleValue(m));
            nakagami->SetAttribute("m2", DoubleValue(m));
            fading = nakagami;
        }
        else
        {
            throw std::runtime_error("unknown --fadingProcess '" + p.fadingProcess +
                                     "' (doppler, per-packet)");
        }
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

uint32_t
LosState(Ptr<PropagationLossModel> loss, Ptr<MobilityModel> a, Ptr<MobilityModel> b)
{
    auto threeGpp = DynamicCast<ThreeGppPropagationLossModel>(loss);
    if (!threeGpp)
    {
        return 2;
    }
    return threeGpp->GetChannelConditionModel()->GetChannelCondition(a, b)->IsLos() ? 1 : 0;
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
