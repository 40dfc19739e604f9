#include "lte-share-scheduler.h"

#include "ns3/boolean.h"
#include "ns3/double.h"
#include "ns3/ff-mac-csched-sap.h"
#include "ns3/log.h"
#include "ns3/lte-common.h"
#include "ns3/lte-vendor-specific-parameters.h"
#include "ns3/rr-ff-mac-scheduler.h"

#include <algorithm>
#include <cmath>

namespace ns3
{

NS_LOG_COMPONENT_DEFINE("CosimShareFfMacScheduler");
NS_OBJECT_ENSURE_REGISTERED(CosimShareFfMacScheduler);

namespace
{
/// Weight of a new SINR sample in the per-device average (PUSCH reports come every TTI).
constexpr double SINR_EWMA_WEIGHT = 0.1;
/// Outer-loop link adaptation: step on an error, bound of the offset.
constexpr double OLLA_STEP_DB = 1.0;
constexpr double OLLA_MAX_DB = 20.0;
/// Below this an RB carried no signal.
constexpr double MIN_SINR_DB = -100;
/// A transport block is sent at most this often (the first time and three HARQ retransmissions).
constexpr uint32_t MAX_UL_TRANSMISSIONS = 4;
} // namespace

/// MAC -> scheduler: intercepts the uplink requests, forwards the rest to the inner scheduler.
class CosimShareFfMacScheduler::SchedProvider : public FfMacSchedSapProvider
{
  public:
    SchedProvider(CosimShareFfMacScheduler* s, FfMacSchedSapProvider* inner)
        : m_s(s),
          m_in(inner)
    {
    }

    void SchedDlRlcBufferReq(const SchedDlRlcBufferReqParameters& p) override
    {
        m_in->SchedDlRlcBufferReq(p);
    }

    void SchedDlPagingBufferReq(const SchedDlPagingBufferReqParameters& p) override
    {
        m_in->SchedDlPagingBufferReq(p);
    }

    void SchedDlMacBufferReq(const SchedDlMacBufferReqParameters& p) override
    {
        m_in->SchedDlMacBufferReq(p);
    }

    void SchedDlTriggerReq(const SchedDlTriggerReqParameters& p) override
    {
        m_in->SchedDlTriggerReq(p);
    }

    void SchedDlRachInfoReq(const SchedDlRachInfoReqParameters& p) override
    {
        m_in->SchedDlRachInfoReq(p);
    }

    void SchedDlCqiInfoReq(const SchedDlCqiInfoReqParameters& p) override
    {
        m_in->SchedDlCqiInfoReq(p);
    }

    void SchedUlTriggerReq(const SchedUlTriggerReqParameters& p) override
    {
        m_s->UlTrigger(p);
    }

    void SchedUlNoiseInterferenceReq(const SchedUlNoiseInterferenceReqParameters& p) override
    {
        m_in->SchedUlNoiseInterferenceReq(p);
    }

    void SchedUlSrInfoReq(const SchedUlSrInfoReqParameters& p) override
    {
        m_in->SchedUlSrInfoReq(p);
    }

    void SchedUlMacCtrlInfoReq(const SchedUlMacCtrlInfoReqParameters& p) override
    {
        m_s->UlMacCtrlInfo(p);
    }

    void SchedUlCqiInfoReq(const SchedUlCqiInfoReqParameters& p) override
    {
        m_s->UlCqiInfo(p);
    }

    CosimShareFfMacScheduler* m_s;
    FfMacSchedSapProvider* m_in; ///< the inner scheduler
};

/// Inner scheduler -> MAC: downlink passes, uplink grants are held for rewriting.
class CosimShareFfMacScheduler::SchedUser : public FfMacSchedSapUser
{
  public:
    explicit SchedUser(CosimShareFfMacScheduler* s)
        : m_s(s)
    {
    }

    void SchedDlConfigInd(const SchedDlConfigIndParameters& p) override
    {
        m_s->m_macSchedSapUser->SchedDlConfigInd(p);
    }

    void SchedUlConfigInd(const SchedUlConfigIndParameters& p) override
    {
        m_s->InnerUlConfig(p);
    }

  private:
    CosimShareFfMacScheduler* m_s;
};

/// MAC -> scheduler configuration: learns the uplink bandwidth and released UEs.
class CosimShareFfMacScheduler::CschedProvider : public FfMacCschedSapProvider
{
  public:
    CschedProvider(CosimShareFfMacScheduler* s, FfMacCschedSapProvider* inner)
        : m_s(s),
          m_in(inner)
    {
    }

    void CschedCellConfigReq(const CschedCellConfigReqParameters& p) override
    {
        m_s->m_ulBandwidth = p.m_ulBandwidth;
        m_in->CschedCellConfigReq(p);
    }

    void CschedUeConfigReq(const CschedUeConfigReqParameters& p) override
    {
        m_in->CschedUeConfigReq(p);
    }

    void CschedLcConfigReq(const CschedLcConfigReqParameters& p) override
    {
        m_in->CschedLcConfigReq(p);
    }

    void CschedLcReleaseReq(const CschedLcReleaseReqParameters& p) override
    {
        m_in->CschedLcReleaseReq(p);
    }

    void CschedUeReleaseReq(const CschedUeReleaseReqParameters& p) override
    {
        m_s->m_ulBuffer.erase(p.m_rnti);
        m_s->m_sinrDb.erase(p.m_rnti);
        m_s->m_sinrOffsetDb.erase(p.m_rnti);
        m_in->CschedUeReleaseReq(p);
    }

  private:
    CosimShareFfMacScheduler* m_s;
    FfMacCschedSapProvider* m_in;
};

TypeId
CosimShareFfMacScheduler::GetTypeId()
{
    static TypeId tid =
        TypeId("ns3::CosimShareFfMacScheduler")
            .SetParent<FfMacScheduler>()
            .SetGroupName("Lte")
            .AddConstructor<CosimShareFfMacScheduler>()
            .AddAttribute("HarqEnabled",
                          "HARQ in both directions: an uplink TB the eNB could not decode is "
                          "granted again (same block and size) up to three times; the downlink's "
                          "is the inner round-robin scheduler's",
                          BooleanValue(true),
                          MakeBooleanAccessor(&CosimShareFfMacScheduler::SetHarq,
                                              &CosimShareFfMacScheduler::GetHarq),
                          MakeBooleanChecker())
            .AddAttribute("BlerTarget",
                          "Block error rate the outer-loop link adaptation aims at",
                          DoubleValue(0.1),
                          MakeDoubleAccessor(&CosimShareFfMacScheduler::m_blerTarget),
                          MakeDoubleChecker<double>(0.001, 0.5))
            .AddTraceSource("UlTb",
                            "Each uplink transport block a UE sent: RNTI, PUSCH SINR (dB, mean "
                            "over its RBs), decoded",
                            MakeTraceSourceAccessor(&CosimShareFfMacScheduler::m_ulTbTrace),
                            "ns3::CosimShareFfMacScheduler::UlTbTracedCallback");
    return tid;
}

CosimShareFfMacScheduler::CosimShareFfMacScheduler()
    : m_inner(CreateObject<RrFfMacScheduler>()),
      m_amc(CreateObject<LteAmc>())
{
    m_schedProvider = new SchedProvider(this, m_inner->GetFfMacSchedSapProvider());
    m_schedUser = new SchedUser(this);
    m_cschedProvider = new CschedProvider(this, m_inner->GetFfMacCschedSapProvider());
}

CosimShareFfMacScheduler::~CosimShareFfMacScheduler() = default;

void
CosimShareFfMacScheduler::SetHarq(bool enabled)
{
    m_harq = enabled;
    // the inner scheduler's uplink retransmissions are of its own grants, which are discarded
    // for the devices that have a block; it still serves the downlink and random access
    m_inner->SetAttribute("HarqEnabled", BooleanValue(enabled));
}

bool
CosimShareFfMacScheduler::GetHarq() const
{
    return m_harq;
}

void
CosimShareFfMacScheduler::DoInitialize()
{
    m_inner->Initialize();
    FfMacScheduler::DoInitialize();
}

void
CosimShareFfMacScheduler::DoDispose()
{
    m_inner->Dispose();
    m_inner = nullptr;
    delete m_schedProvider;
    delete m_schedUser;
    delete m_cschedProvider;
    FfMacScheduler::DoDispose();
}

void
CosimShareFfMacScheduler::SetFfMacCschedSapUser(FfMacCschedSapUser* s)
{
    m_inner->SetFfMacCschedSapUser(s);
}

void
CosimShareFfMacScheduler::SetFfMacSchedSapUser(FfMacSchedSapUser* s)
{
    m_macSchedSapUser = s;
    m_inner->SetFfMacSchedSapUser(m_schedUser);
}

FfMacCschedSapProvider*
CosimShareFfMacScheduler::GetFfMacCschedSapProvider()
{
    return m_cschedProvider;
}

FfMacSchedSapProvider*
CosimShareFfMacScheduler::GetFfMacSchedSapProvider()
{
    return m_schedProvider;
}

void
CosimShareFfMacScheduler::SetLteFfrSapProvider(LteFfrSapProvider* s)
{
    m_inner->SetLteFfrSapProvider(s);
}

LteFfrSapUser*
CosimShareFfMacScheduler::GetLteFfrSapUser()
{
    return m_inner->GetLteFfrSapUser();
}

void
CosimShareFfMacScheduler::SetUplinkShares(const std::vector<std::pair<uint16_t, double>>& shares)
{
    NS_ABORT_MSG_IF(m_ulBandwidth == 0, "uplink shares set before the cell was configured");
    m_blocks.clear();
    uint32_t start = 0;
    for (const auto& [rnti, share] : shares)
    {
        uint32_t len = share > 0 ? std::max<uint32_t>(1, std::floor(share * m_ulBandwidth)) : 0;
        len = std::min(len, m_ulBandwidth - start);
        NS_LOG_INFO("rnti " << rnti << " share " << share << " -> RBs [" << start << ", "
                            << start + len << ")");
        if (share > 0 && len == 0)
        {
            NS_LOG_WARN("rnti " << rnti << " finds no RB left");
        }
        m_blocks[rnti] = {static_cast<uint8_t>(start), static_cast<uint8_t>(len)};
        start += len;
    }
}

void
CosimShareFfMacScheduler::InnerUlConfig(const FfMacSchedSapUser::SchedUlConfigIndParameters& params)
{
    m_innerUl = params;
}

void
CosimShareFfMacScheduler::UlTrigger(const FfMacSchedSapProvider::SchedUlTriggerReqParameters& params)
{
    // the inner scheduler still serves random access (Msg3) and RNTIs without a share
    // Decoding results of the TBs whose PUSCH report just came. A granted UE with nothing to send
    // stays silent: the eNB still reports its TB as failed, so only TBs that were heard count.
    std::map<uint16_t, Grant> retx; // granted again this TTI
    for (const auto& info : params.m_ulInfoList)
    {
        auto heard = m_heard.find(info.m_rnti);
        if (heard == m_heard.end() || info.m_receptionStatus == UlInfoListElement_s::NotValid)
        {
            continue;
        }
        bool ok = info.m_receptionStatus == UlInfoListElement_s::Ok;
        m_ulTbTrace(info.m_rnti, heard->second.sinrDb, ok);
        // outer-loop link adaptation towards the BLER target: the fading of the next TB is unknown
        double& offset = m_sinrOffsetDb[info.m_rnti];
        offset += ok ? OLLA_STEP_DB * m_blerTarget / (1 - m_blerTarget) : -OLLA_STEP_DB;
        offset = std::clamp(offset, -OLLA_MAX_DB, OLLA_MAX_DB);
        const Grant& grant = heard->second.grant;
        if (!ok && m_harq && grant.transmissions < MAX_UL_TRANSMISSIONS && m_blocks.count(info.m_rnti))
        {
            UlDciListElement_s dci = grant.dci;
            dci.m_ndi = 0;
            retx[info.m_rnti] = {dci, grant.transmissions + 1};
        }
    }
    m_heard.clear();
    m_innerUl = FfMacSchedSapUser::SchedUlConfigIndParameters();
    // the inner scheduler retransmits only its own grants: the blocks' HARQ feedback is not for it
    FfMacSchedSapProvider::SchedUlTriggerReqParameters inner = params;
    std::erase_if(inner.m_ulInfoList, [this](const UlInfoListElement_s& info) {
        return m_blocks.count(info.m_rnti) > 0;
    });
    m_schedProvider->m_in->SchedUlTriggerReq(inner);
    FfMacSchedSapUser::SchedUlConfigIndParameters ret;
    ret.m_phichList = m_innerUl.m_phichList;
    for (const auto& dci : m_innerUl.m_dciList)
    {
        if (!m_blocks.count(dci.m_rnti))
        {
            ret.m_dciList.push_back(dci);
        }
    }

    TtiGrants& tti = m_ttis[params.m_sfnSf];
    tti = TtiGrants{std::vector<uint16_t>(m_ulBandwidth, 0), {}};
    for (const auto& [rnti, block] : m_blocks)
    {
        auto [rbStart, rbLen] = block;
        // the UE sends the failed TB again from its HARQ buffer, on the block it was granted:
        // unless a new round gave the device another block (RLC AM then recovers the TB)
        if (auto again = retx.find(rnti); again != retx.end() && again->second.dci.m_rbStart == rbStart &&
                                          again->second.dci.m_rbLen == rbLen)
        {
            NS_LOG_INFO("HARQ retransmission " << again->second.transmissions - 1 << " of rnti " << rnti
                                                << " on RBs [" << int(rbStart) << ", "
                                                << rbStart + rbLen << ")");
            ret.m_dciList.push_back(again->second.dci);
            tti.grants[rnti] = again->second;
            std::fill_n(tti.rbOwners.begin() + rbStart, rbLen, rnti);
            continue;
        }
        auto buf = m_ulBuffer.find(rnti);
        if (rbLen == 0 || buf == m_ulBuffer.end() || buf->second == 0)
        {
            continue;
        }
        // MCS from the averaged SINR the device gets when its power is spread over its block
        int mcs = 0;
        auto sinr = m_sinrDb.find(rnti);
        if (sinr != m_sinrDb.end())
        {
            double sinrDb = sinr->second + m_sinrOffsetDb[rnti] +
                            10 * std::log10(double(m_ulBandwidth) / rbLen);
            // spectral efficiency with the 5e-5 BER gap, as in the stock schedulers
            double s = std::log2(1 + std::pow(10, sinrDb / 10) / (-std::log(5.0 * 0.00005) / 1.5));
            int cqi = m_amc->GetCqiFromSpectralEfficiency(s);
            mcs = cqi == 0 ? 0 : m_amc->GetMcsFromCqi(cqi);
        }
        UlDciListElement_s dci;
        dci.m_rnti = rnti;
        dci.m_rbStart = rbStart;
        dci.m_rbLen = rbLen;
        dci.m_mcs = mcs;
        dci.m_tbSize = m_amc->GetUlTbSizeFromMcs(mcs, rbLen) / 8;
        dci.m_ndi = 1;
        dci.m_cceIndex = 0;
        dci.m_aggrLevel = 1;
        dci.m_ueTxAntennaSelection = 3; // antenna selection off
        dci.m_hopping = false;
        dci.m_n2Dmrs = 0;
        dci.m_tpc = 1; // closed-loop power control step 0 dB (TPC 0 would be -1 dB per grant)
        dci.m_cqiRequest = false;
        dci.m_ulIndex = 0;
        dci.m_dai = 1;
        dci.m_freqHopping = 0;
        dci.m_pdcchPowerOffset = 0;
        ret.m_dciList.push_back(dci);
        tti.grants[rnti] = {dci, 1};
        buf->second -= std::min<uint32_t>(buf->second, dci.m_tbSize);
        std::fill_n(tti.rbOwners.begin() + rbStart, rbLen, rnti);
    }
    m_macSchedSapUser->SchedUlConfigInd(ret);
}

void
CosimShareFfMacScheduler::UlMacCtrlInfo(
    const FfMacSchedSapProvider::SchedUlMacCtrlInfoReqParameters& params)
{
    for (const auto& ce : params.m_macCeList)
    {
        if (ce.m_macCeType == MacCeListElement_s::BSR)
        {
            uint32_t buffer = 0;
            for (uint8_t bsrId : ce.m_macCeValue.m_bufferStatus)
            {
                buffer += BufferSizeLevelBsr::BsrId2BufferSize(bsrId);
            }
            m_ulBuffer[ce.m_rnti] = buffer;
        }
    }
    m_schedProvider->m_in->SchedUlMacCtrlInfoReq(params);
}

void
CosimShareFfMacScheduler::UpdateSinr(uint16_t rnti, double fullBandSinrDb)
{
    auto [it, fresh] = m_sinrDb.emplace(rnti, fullBandSinrDb);
    if (!fresh)
    {
        it->second += SINR_EWMA_WEIGHT * (fullBandSinrDb - it->second);
    }
}

void
CosimShareFfMacScheduler::UlCqiInfo(const FfMacSchedSapProvider::SchedUlCqiInfoReqParameters& params)
{
    const auto& sinr = params.m_ulCqi.m_sinr;
    if (params.m_ulCqi.m_type == UlCqi_s::SRS)
    {
        for (const auto& vsp : params.m_vendorSpecificList)
        {
            if (vsp.m_type == SRS_CQI_RNTI_VSP && !sinr.empty())
            {
                uint16_t rnti = DynamicCast<SrsCqiRntiVsp>(vsp.m_value)->GetRnti();
                double sum = 0;
                for (uint16_t v : sinr)
                {
                    sum += std::pow(10, LteFfConverter::fpS11dot3toDouble(v) / 10);
                }
                double sinrDb = 10 * std::log10(sum / sinr.size());
                if (sinrDb > MIN_SINR_DB)
                {
                    UpdateSinr(rnti, sinrDb);
                }
            }
        }
    }
    else if (params.m_ulCqi.m_type == UlCqi_s::PUSCH)
    {
        auto tti = m_ttis.find(params.m_sfnSf);
        if (tti != m_ttis.end())
        {
            const std::vector<uint16_t>& owners = tti->second.rbOwners;
            std::map<uint16_t, std::pair<double, uint32_t>> perUe; // rnti -> (sum linear, RBs)
            for (std::size_t rb = 0; rb < owners.size() && rb < sinr.size(); ++rb)
            {
                double sinrDb = LteFfConverter::fpS11dot3toDouble(sinr[rb]);
                // a granted UE with nothing to send leaves its RBs silent (SINR -inf)
                if (uint16_t rnti = owners[rb]; rnti && sinrDb > MIN_SINR_DB)
                {
                    perUe[rnti].first += std::pow(10, sinrDb / 10);
                    perUe[rnti].second += 1;
                }
            }
            for (const auto& [rnti, acc] : perUe)
            {
                double sinrDb = 10 * std::log10(acc.first / acc.second);
                m_heard[rnti] = {sinrDb, tti->second.grants.at(rnti)}; // every RB owner was granted
                UpdateSinr(rnti, sinrDb - 10 * std::log10(double(m_ulBandwidth) / acc.second));
            }
            m_ttis.erase(tti);
        }
    }
    // PUSCH reports would be misread by the inner scheduler, whose grants were replaced
    if (m_blocks.empty() || params.m_ulCqi.m_type != UlCqi_s::PUSCH)
    {
        m_schedProvider->m_in->SchedUlCqiInfoReq(params);
    }
}

} // namespace ns3
