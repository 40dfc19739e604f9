// An LTE FF MAC scheduler that gives each device a fixed uplink share of the resource blocks.
//
// Stock ns-3 schedulers give every uplink flow the same number of RBs. This one is a decorator
// around the stock round-robin scheduler: downlink, random access and everything else go to the
// inner scheduler unchanged; the uplink grants of the devices that have a share are replaced by
// a fixed contiguous block of floor(b_k * N_RB) RBs (at least 1), blocks laid out in device order,
// granted in every TTI in which the device reported buffered data. The MCS follows the device's
// averaged SINR plus an outer-loop offset that targets the BlerTarget attribute's block errors.
// With HarqEnabled (the default), a transport block the eNB could not decode is granted again on
// the same block with the same size (new data indicator 0) when its failure is reported, up to
// three retransmissions, and the eNB combines the attempts; the downlink's HARQ is the inner
// scheduler's. RLC AM recovers what HARQ gives up.
#ifndef LTE_SHARE_SCHEDULER_H
#define LTE_SHARE_SCHEDULER_H

#include "ns3/ff-mac-scheduler.h"
#include "ns3/ff-mac-sched-sap.h"
#include "ns3/lte-amc.h"
#include "ns3/traced-callback.h"

#include <map>
#include <utility>
#include <vector>

namespace ns3
{

class CosimShareFfMacScheduler : public FfMacScheduler
{
  public:
    static TypeId GetTypeId();
    CosimShareFfMacScheduler();
    ~CosimShareFfMacScheduler() override;

    void SetFfMacCschedSapUser(FfMacCschedSapUser* s) override;
    void SetFfMacSchedSapUser(FfMacSchedSapUser* s) override;
    FfMacCschedSapProvider* GetFfMacCschedSapProvider() override;
    FfMacSchedSapProvider* GetFfMacSchedSapProvider() override;
    void SetLteFfrSapProvider(LteFfrSapProvider* s) override;
    LteFfrSapUser* GetLteFfrSapUser() override;

    /// Uplink shares b_k in device order, as (RNTI, share). Devices listed here get exactly their
    /// block (share 0: no data grant); RNTIs not listed are left to the inner scheduler.
    void SetUplinkShares(const std::vector<std::pair<uint16_t, double>>& shares);

    /// HARQ on or off in both directions (the HarqEnabled attribute).
    void SetHarq(bool enabled);
    bool GetHarq() const;

  protected:
    void DoInitialize() override;
    void DoDispose() override;

  private:
    class SchedProvider;
    class SchedUser;
    class CschedProvider;

    // interceptions of the SAP calls; everything else is forwarded to the inner scheduler
    void UlTrigger(const FfMacSchedSapProvider::SchedUlTriggerReqParameters& params);
    void UlMacCtrlInfo(const FfMacSchedSapProvider::SchedUlMacCtrlInfoReqParameters& params);
    void UlCqiInfo(const FfMacSchedSapProvider::SchedUlCqiInfoReqParameters& params);
    void InnerUlConfig(const FfMacSchedSapUser::SchedUlConfigIndParameters& params);

    /// SINR (dB) the device would have per RB if it spread its power over the whole band; PUSCH
    /// and SRS measurements are normalised to it so both feed the same average.
    void UpdateSinr(uint16_t rnti, double fullBandSinrDb);

    Ptr<FfMacScheduler> m_inner;
    Ptr<LteAmc> m_amc;
    FfMacSchedSapUser* m_macSchedSapUser{nullptr};
    SchedProvider* m_schedProvider;
    SchedUser* m_schedUser;
    CschedProvider* m_cschedProvider;

    uint16_t m_ulBandwidth{0};
    std::map<uint16_t, std::pair<uint8_t, uint8_t>> m_blocks; ///< rnti -> (rbStart, rbLen)
    std::map<uint16_t, uint32_t> m_ulBuffer;                  ///< rnti -> reported bytes, minus grants
    std::map<uint16_t, double> m_sinrDb;                      ///< rnti -> averaged full-band SINR
    std::map<uint16_t, double> m_sinrOffsetDb;                ///< rnti -> link adaptation offset
    FfMacSchedSapUser::SchedUlConfigIndParameters m_innerUl;  ///< inner grants of this TTI

    /// An uplink grant: its DCI and how often the TB has been sent with it (first time: 1).
    struct Grant
    {
        UlDciListElement_s dci;
        uint32_t transmissions;
    };

    /// The grants made for one TTI: the RNTI of each RB (0 = none) and each RNTI's grant.
    struct TtiGrants
    {
        std::vector<uint16_t> rbOwners;
        std::map<uint16_t, Grant> grants;
    };

    /// A TB of the TTI whose PUSCH report came last: its SINR (dB, mean over its RBs), its grant.
    struct Heard
    {
        double sinrDb;
        Grant grant;
    };

    std::map<uint16_t, TtiGrants> m_ttis; ///< sfnSf -> the grants made for it, until its report
    std::map<uint16_t, Heard> m_heard;    ///< rnti -> its TB heard in the last reported TTI

    /// Every uplink TB a UE sent: RNTI, PUSCH SINR (dB, mean over its RBs), decoded.
    TracedCallback<uint16_t, double, bool> m_ulTbTrace;

    bool m_harq{true};
    double m_blerTarget{0.1};
};

} // namespace ns3

#endif // LTE_SHARE_SCHEDULER_H
