// SPC-4 primary commands of LogicalUnit: TEST UNIT READY, INQUIRY, REPORT LUNS, REQUEST SENSE,
// READ CAPACITY, MODE SENSE/SELECT, START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL,
// RESERVE/RELEASE(6) and PERSISTENT RESERVE IN/OUT.
#include <algorithm>

#include "storage/atomic_file.h"
#include "target/log.h"
#include "target/scsi/logical_unit.h"

namespace untorn::target {

using protocol::Bytes;
using protocol::LoadBe16;
using protocol::LoadBe32;
using protocol::ScsiStatus;
namespace op = protocol::op;
namespace sense = protocol::sense;

namespace {

std::vector<uint8_t> Truncate(std::vector<uint8_t> v, size_t allocation_length) {
  if (v.size() > allocation_length) v.resize(allocation_length);
  return v;
}

// Mode pages (SBC-4 §6.5), current values. `changeable` gives the mask page instead.
std::vector<uint8_t> ErrorRecoveryPage(bool changeable) {
  std::vector<uint8_t> p(12, 0);
  p[0] = 0x01;
  p[1] = 0x0a;
  if (!changeable) p[2] = 0x80 | 0x40;  // AWRE, ARRE
  return p;
}
std::vector<uint8_t> CachingPage(bool wce, bool changeable) {
  std::vector<uint8_t> p(20, 0);
  p[0] = 0x08;
  p[1] = 0x12;
  if (changeable) {
    p[2] = 0x04;  // WCE is the one changeable bit
  } else if (wce) {
    p[2] = 0x04;
  }
  return p;
}
std::vector<uint8_t> ControlPage(bool changeable) {
  std::vector<uint8_t> p(12, 0);
  p[0] = 0x0a;
  p[1] = 0x0a;
  if (!changeable) {
    p[3] = 0x10;                        // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering
    p[5] = 0x40;                        // TAS: aborted tasks of other nexuses get TASK ABORTED
    protocol::StoreBe16(p, 8, 0xffff);  // BUSY TIMEOUT PERIOD: unlimited
  }
  return p;
}

}  // namespace

ScsiOutcome LogicalUnit::RunTestUnitReady(const Nexus&, Bytes, std::vector<uint8_t>&) {
  return ScsiOutcome::Good();
}

std::optional<ScsiOutcome> LogicalUnit::ValidateInquiry(const Nexus&, Bytes cdb, CommandPlan&) {
  const protocol::InquiryCdb q = protocol::DecodeInquiry(cdb);
  if (cdb[1] & 0x02) return ScsiOutcome::Check(sense::InvalidFieldInCdb(1, 1));  // CMDDT
  if (!q.evpd && q.page != 0) return ScsiOutcome::Check(sense::InvalidFieldInCdb(2));
  if (q.evpd && protocol::VpdPage(disk_, q.page).empty()) {
    return ScsiOutcome::Check(sense::InvalidFieldInCdb(2));
  }
  return std::nullopt;
}

ScsiOutcome LogicalUnit::RunInquiry(const Nexus&, Bytes cdb, std::vector<uint8_t>&) {
  const protocol::InquiryCdb q = protocol::DecodeInquiry(cdb);
  auto page = q.evpd ? protocol::VpdPage(disk_, q.page) : protocol::StandardInquiry(disk_);
  return ScsiOutcome::Data(Truncate(std::move(page), q.allocation_length));
}

ScsiOutcome LogicalUnit::RunReportLuns(const Nexus&, Bytes cdb, std::vector<uint8_t>&) {
  const uint8_t select = cdb[2];
  const uint32_t alloc = LoadBe32(cdb, 6);
  if (select > 0x02 && select != 0x10 && select != 0x11 && select != 0x12) {
    return ScsiOutcome::Check(sense::InvalidFieldInCdb(2));
  }
  if (alloc < 16) return ScsiOutcome::Check(sense::InvalidFieldInCdb(6));
  // Select report 01h (well-known LUNs only): none here.
  std::vector<uint16_t> luns;
  if (select != 0x01) {
    std::lock_guard lk(state_mu_);
    luns = target_luns_;
  }
  return ScsiOutcome::Data(Truncate(protocol::ReportLuns(luns), alloc));
}

ScsiOutcome LogicalUnit::RunRequestSense(const Nexus& nexus, Bytes cdb, std::vector<uint8_t>&) {
  // Reports (and clears) a pending unit attention; otherwise NO SENSE. Fixed format only:
  // a DESC request is answered in fixed format, as SPC-4 §6.39 allows.
  const uint8_t alloc = cdb[4];
  protocol::Sense s{};
  if (auto ua = TakeUnitAttention(nexus.id)) s = *ua;
  return ScsiOutcome::Data(Truncate(protocol::EncodeFixedSense(s), alloc));
}

ScsiOutcome LogicalUnit::RunReadCapacity10(const Nexus&, Bytes cdb, std::vector<uint8_t>&) {
  const bool pmi = (cdb[8] & 0x01) != 0;
  if (!pmi && LoadBe32(cdb, 2) != 0) return ScsiOutcome::Check(sense::InvalidFieldInCdb(2));
  return ScsiOutcome::Data(protocol::ReadCapacity10(Describe()));
}

ScsiOutcome LogicalUnit::RunServiceActionIn16(const Nexus&, Bytes cdb, std::vector<uint8_t>&) {
  // Only READ CAPACITY(16) routes here (GET LBA STATUS has its own row).
  const uint32_t alloc = LoadBe32(cdb, 10);
  const bool pmi = (cdb[14] & 0x01) != 0;
  if (!pmi && protocol::LoadBe64(cdb, 2) != 0) {
    return ScsiOutcome::Check(sense::InvalidFieldInCdb(2));
  }
  return ScsiOutcome::Data(Truncate(protocol::ReadCapacity16(Describe()), alloc));
}

std::vector<uint8_t> LogicalUnit::ModePages(uint8_t pc, uint8_t page, uint8_t subpage,
                                            bool* ok) const {
  const bool changeable = pc == 1;
  const bool wce = pc == 2 ? disk_.write_cache : WriteCacheEnabled();
  *ok = true;
  if (subpage != 0 && !(page == 0x3f && subpage == 0xff)) {
    *ok = false;
    return {};
  }
  switch (page) {
    case 0x01:
      return ErrorRecoveryPage(changeable);
    case 0x08:
      return CachingPage(wce, changeable);
    case 0x0a:
      return ControlPage(changeable);
    case 0x3f: {
      std::vector<uint8_t> all = ErrorRecoveryPage(changeable);
      auto c = CachingPage(wce, changeable);
      auto k = ControlPage(changeable);
      all.insert(all.end(), c.begin(), c.end());
      all.insert(all.end(), k.begin(), k.end());
      return all;
    }
    default:
      *ok = false;
      return {};
  }
}

std::optional<ScsiOutcome> LogicalUnit::ValidateModeSense(const Nexus&, Bytes cdb, CommandPlan&) {
  const protocol::ModeSenseCdb m = protocol::DecodeModeSense(cdb);
  if (m.pc == 3) return ScsiOutcome::Check(sense::SavingParametersNotSupported());
  bool ok = false;
  (void)ModePages(m.pc, m.page, m.subpage, &ok);
  if (!ok) return ScsiOutcome::Check(sense::InvalidFieldInCdb(m.subpage != 0 ? 3 : 2));
  return std::nullopt;
}

ScsiOutcome LogicalUnit::RunModeSense(const Nexus&, Bytes cdb, std::vector<uint8_t>&) {
  const protocol::ModeSenseCdb m = protocol::DecodeModeSense(cdb);
  bool ok = false;
  const std::vector<uint8_t> pages = ModePages(m.pc, m.page, m.subpage, &ok);
  const uint8_t device_specific =
      static_cast<uint8_t>((disk_.read_only ? 0x80 : 0) | (disk_.dpofua ? 0x10 : 0));
  std::vector<uint8_t> desc;
  const uint64_t count = BlockCount();
  if (!m.dbd) {  // one block descriptor (SPC-4 §7.5.5)
    if (m.llbaa) {
      desc.assign(16, 0);
      protocol::StoreBe64(desc, 0, count);
      protocol::StoreBe32(desc, 12, disk_.block_size);
    } else {
      desc.assign(8, 0);
      protocol::StoreBe32(desc, 0,
                          count > 0xffffffffULL ? 0xffffffffu : static_cast<uint32_t>(count));
      protocol::StoreBe24(desc, 5, disk_.block_size);
    }
  }
  std::vector<uint8_t> b(m.ten ? 8 : 4, 0);
  if (m.ten) {
    b[3] = device_specific;
    b[4] = m.llbaa && !desc.empty() ? 0x01 : 0x00;  // LONGLBA
    protocol::StoreBe16(b, 6, static_cast<uint16_t>(desc.size()));
  } else {
    b[2] = device_specific;
    b[3] = static_cast<uint8_t>(desc.size());
  }
  b.insert(b.end(), desc.begin(), desc.end());
  b.insert(b.end(), pages.begin(), pages.end());
  if (m.ten) {
    protocol::StoreBe16(b, 0, static_cast<uint16_t>(b.size() - 2));
  } else {
    b[0] = static_cast<uint8_t>(b.size() - 1);
  }
  return ScsiOutcome::Data(Truncate(std::move(b), m.allocation_length));
}

std::optional<ScsiOutcome> LogicalUnit::ValidateModeSelect(const Nexus&, Bytes cdb,
                                                           CommandPlan& plan) {
  const protocol::ModeSelectCdb m = protocol::DecodeModeSelect(cdb);
  if (m.sp) return ScsiOutcome::Check(sense::InvalidFieldInCdb(1, 0));
  if (!m.pf && m.parameter_list_length > 0) {
    return ScsiOutcome::Check(sense::InvalidFieldInCdb(1, 4));
  }
  plan.data_out_length = m.parameter_list_length;
  return std::nullopt;
}

ScsiOutcome LogicalUnit::RunModeSelect(const Nexus& nexus, Bytes cdb, std::vector<uint8_t>& p) {
  const protocol::ModeSelectCdb m = protocol::DecodeModeSelect(cdb);
  if (p.empty()) return ScsiOutcome::Good();
  const size_t header = m.ten ? 8 : 4;
  if (p.size() < header) return ScsiOutcome::Check(sense::ParameterListLengthError());
  const size_t desc_len = m.ten ? LoadBe16(p, 6) : p[3];
  if (desc_len != 0 && desc_len != 8 && desc_len != 16) {
    return ScsiOutcome::Check(sense::InvalidFieldInParameterList(m.ten ? 6 : 3));
  }
  if (header + desc_len > p.size()) return ScsiOutcome::Check(sense::ParameterListLengthError());
  // Check every page before applying any (all-or-nothing).
  std::optional<bool> new_wce;
  for (size_t off = header + desc_len; off < p.size();) {
    if (p.size() - off < 2) return ScsiOutcome::Check(sense::ParameterListLengthError());
    const uint8_t code = p[off] & 0x3f;
    if (p[off] & 0x40) {  // SPF: no subpages here
      return ScsiOutcome::Check(sense::InvalidFieldInParameterList(static_cast<uint16_t>(off), 6));
    }
    const size_t len = size_t{p[off + 1]} + 2;
    if (off + len > p.size()) return ScsiOutcome::Check(sense::ParameterListLengthError());
    bool ok = false;
    const std::vector<uint8_t> current = ModePages(0, code, 0, &ok);
    if (!ok || code == 0x3f || current.size() != len) {
      return ScsiOutcome::Check(sense::InvalidFieldInParameterList(static_cast<uint16_t>(off)));
    }
    const std::vector<uint8_t> mask = ModePages(1, code, 0, &ok);
    for (size_t i = 2; i < len; ++i) {
      if (((p[off + i] ^ current[i]) & ~mask[i]) != 0) {
        return ScsiOutcome::Check(
            sense::InvalidFieldInParameterList(static_cast<uint16_t>(off + i)));
      }
    }
    if (code == 0x08) new_wce = (p[off + 2] & 0x04) != 0;
    off += len;
  }
  if (new_wce && *new_wce != WriteCacheEnabled()) {
    if (!*new_wce) {  // leaving write-back: what was cached must be durable first
      storage::Status s = store_->Flush();
      if (!s.ok()) return OutcomeFromStorage(s, true);
    }
    write_cache_.store(*new_wce);
    EstablishUnitAttention(sense::ModeParametersChanged(), nexus.id);
  }
  return ScsiOutcome::Good();
}

std::optional<ScsiOutcome> LogicalUnit::ValidateStartStopUnit(const Nexus&, Bytes cdb,
                                                              CommandPlan&) {
  // Power conditions other than START_VALID (0), ACTIVE (1), IDLE (2), STANDBY (3),
  // LU_CONTROL (7), FORCE_IDLE_0 (Ah), FORCE_STANDBY_0 (Bh) are reserved.
  const uint8_t pc = cdb[4] >> 4;
  if (!(pc <= 3 || pc == 7 || pc == 0xa || pc == 0xb)) {
    return ScsiOutcome::Check(sense::InvalidFieldInCdb(4, 7));
  }
  return std::nullopt;
}

ScsiOutcome LogicalUnit::RunNothing(const Nexus&, Bytes, std::vector<uint8_t>&) {
  return ScsiOutcome::Good();
}

std::optional<ScsiOutcome> LogicalUnit::ValidatePreventAllow(const Nexus&, Bytes, CommandPlan&) {
  return std::nullopt;  // no removable medium: every PREVENT value is accepted and has no effect
}

ScsiOutcome LogicalUnit::RunReserve6(const Nexus& nexus, Bytes, std::vector<uint8_t>&) {
  std::lock_guard lk(state_mu_);
  if (reserve6_holder_ && *reserve6_holder_ != nexus.id) {
    return ScsiOutcome::WithStatus(ScsiStatus::kReservationConflict);
  }
  reserve6_holder_ = nexus.id;
  return ScsiOutcome::Good();
}

ScsiOutcome LogicalUnit::RunRelease6(const Nexus& nexus, Bytes, std::vector<uint8_t>&) {
  std::lock_guard lk(state_mu_);
  if (reserve6_holder_ == nexus.id) reserve6_holder_.reset();
  return ScsiOutcome::Good();  // releasing someone else's reservation is a no-op (SPC-2)
}

ScsiOutcome LogicalUnit::RunPrIn(const Nexus&, Bytes cdb, std::vector<uint8_t>&) {
  const uint16_t alloc = LoadBe16(cdb, 7);
  std::optional<std::vector<uint8_t>> data;
  {
    std::lock_guard lk(state_mu_);
    data = pr_.In(cdb[1] & 0x1f, transport_ids_);
  }
  if (!data) return ScsiOutcome::Check(sense::InvalidFieldInCdb(1, 4));
  return ScsiOutcome::Data(Truncate(std::move(*data), alloc));
}

std::optional<ScsiOutcome> LogicalUnit::ValidatePrOut(const Nexus&, Bytes cdb, CommandPlan& plan) {
  plan.data_out_length = LoadBe32(cdb, 5);
  if (plan.data_out_length != 24) return ScsiOutcome::Check(sense::ParameterListLengthError());
  return std::nullopt;
}

ScsiOutcome LogicalUnit::RunPrOut(const Nexus& nexus, Bytes cdb, std::vector<uint8_t>& params) {
  PersistentReservations::Result r;
  {
    std::lock_guard lk(state_mu_);
    transport_ids_[nexus.id] = nexus.TransportId();
    const PersistentReservations before = pr_;
    r = pr_.Out(nexus.id, cdb, params);
    if (!r.conflict && !r.sense && !pr_path_.empty() && (pr_.aptpl() || before.aptpl())) {
      // Persisted before GOOD, with state_mu_ held so that no command sees a state a power
      // cut could take back. APTPL cleared: the kept state goes (SPC-4 §5.13.5).
      const std::string now = pr_.Encode(transport_ids_);
      storage::Status s = storage::Status::Ok();
      if (!pr_.aptpl()) {
        s = storage::RemoveFileDurably(*pr_fs_, pr_path_);
      } else if (now != before.Encode(transport_ids_) || !before.aptpl()) {
        s = storage::WriteFileAtomically(
            *pr_fs_, pr_path_, {reinterpret_cast<const uint8_t*>(now.data()), now.size()});
      }
      if (!s.ok()) {
        UNTORN_LOG_ERROR("LUN ", id_, ": persistent reservations not kept in ", pr_path_, ": ",
                         s.message(), "; the PERSISTENT RESERVE OUT is refused");
        pr_ = before;
        return ScsiOutcome::Check(sense::InternalTargetFailure());
      }
    }
    for (const auto& [n, s] : r.unit_attentions) {
      auto& q = unit_attentions_[n];
      if (q.size() < 16) q.push_back(s);
    }
  }
  if (r.conflict) return ScsiOutcome::WithStatus(ScsiStatus::kReservationConflict);
  if (r.sense) return ScsiOutcome::Check(*r.sense);
  return ScsiOutcome::Good();
}

}  // namespace untorn::target
