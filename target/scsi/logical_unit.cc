#include "target/scsi/logical_unit.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <functional>

#include "storage/atomic_file.h"
#include "target/log.h"

namespace untorn::target {

using protocol::Bytes;
using protocol::ScsiStatus;
namespace op = protocol::op;
namespace sense = protocol::sense;

// One row per command. `usage` is the CDB USAGE DATA of REPORT SUPPORTED OPERATION CODES
// (SPC-4 §6.35.3): the bits of each CDB byte this device server looks at.
struct LogicalUnit::Command {
  uint8_t opcode;
  int32_t service_action;  // -1: the opcode has no service actions
  const char* name;
  AccessKind access;
  bool modifies_medium;  // refused on a write-protected LU
  bool reports_ua;       // false for INQUIRY, REPORT LUNS, REQUEST SENSE (SAM-5 §5.14)
  bool allowed_under_reserve6;
  Validator validate;  // nullptr: nothing to validate, no data-out
  Runner run;
  uint8_t cdb_length;
  std::array<uint8_t, 16> usage;
};

namespace {

using C = LogicalUnit;
constexpr auto kAlways = AccessKind::kAlways;
constexpr auto kRead = AccessKind::kRead;
constexpr auto kWrite = AccessKind::kWrite;
constexpr auto kOther = AccessKind::kOther;

// Usage bytes for the common CDB shapes.
constexpr std::array<uint8_t, 16> U6(uint8_t op, uint8_t b1, uint8_t b2, uint8_t b3, uint8_t b4) {
  return {op, b1, b2, b3, b4, 0x07};
}
constexpr std::array<uint8_t, 16> U10(uint8_t op, uint8_t b1, uint8_t b6 = 0x3f) {
  return {op, b1, 0xff, 0xff, 0xff, 0xff, b6, 0xff, 0xff, 0x07};
}
constexpr std::array<uint8_t, 16> U12(uint8_t op, uint8_t b1) {
  return {op, b1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, 0x07};
}
constexpr std::array<uint8_t, 16> U16(uint8_t op, uint8_t b1) {
  return {op,   b1,   0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
          0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, 0x07};
}

std::string SenseLabel(const std::optional<protocol::Sense>& s, ScsiStatus st) {
  switch (st) {
    case ScsiStatus::kGood:
      return "good";
    case ScsiStatus::kReservationConflict:
      return "reservation_conflict";
    case ScsiStatus::kCheckCondition:
      break;
    default:
      return "other";
  }
  if (!s) return "check_condition";
  char buf[32];
  std::snprintf(buf, sizeof buf, "check_%x_%02x_%02x", static_cast<unsigned>(s->key), s->asc,
                s->ascq);
  return buf;
}

}  // namespace

// The command table. A member function so that rows can name private handlers.
std::span<const LogicalUnit::Command> LogicalUnit::Commands() {
  static const Command kCommands[] = {
      // clang-format off
    {op::kTestUnitReady, -1, "TEST UNIT READY", kAlways, false, true, false, nullptr, &C::RunTestUnitReady, 6, U6(0x00, 0, 0, 0, 0)},
    {op::kRequestSense, -1, "REQUEST SENSE", kAlways, false, false, true, nullptr, &C::RunRequestSense, 6, U6(0x03, 0x01, 0, 0, 0xff)},
    {op::kRead6, -1, "READ(6)", kRead, false, true, false, &C::ValidateBlockCommand, &C::RunRead, 6, U6(0x08, 0x1f, 0xff, 0xff, 0xff)},
    {op::kWrite6, -1, "WRITE(6)", kWrite, true, true, false, &C::ValidateBlockCommand, &C::RunWrite, 6, U6(0x0a, 0x1f, 0xff, 0xff, 0xff)},
    {op::kInquiry, -1, "INQUIRY", kAlways, false, false, true, &C::ValidateInquiry, &C::RunInquiry, 6, U6(0x12, 0x01, 0xff, 0xff, 0xff)},
    {op::kModeSelect6, -1, "MODE SELECT(6)", kOther, false, true, false, &C::ValidateModeSelect, &C::RunModeSelect, 6, U6(0x15, 0x11, 0, 0, 0xff)},
    {op::kReserve6, -1, "RESERVE(6)", kOther, false, true, false, nullptr, &C::RunReserve6, 6, U6(0x16, 0, 0, 0, 0)},
    {op::kRelease6, -1, "RELEASE(6)", kOther, false, true, true, nullptr, &C::RunRelease6, 6, U6(0x17, 0, 0, 0, 0)},
    {op::kModeSense6, -1, "MODE SENSE(6)", kOther, false, true, false, &C::ValidateModeSense, &C::RunModeSense, 6, U6(0x1a, 0x08, 0xff, 0xff, 0xff)},
    {op::kStartStopUnit, -1, "START STOP UNIT", kOther, false, true, false, &C::ValidateStartStopUnit, &C::RunNothing, 6, U6(0x1b, 0x01, 0, 0x0f, 0xf7)},
    {op::kPreventAllowMediumRemoval, -1, "PREVENT ALLOW MEDIUM REMOVAL", kOther, false, true, false, &C::ValidatePreventAllow, &C::RunNothing, 6, U6(0x1e, 0, 0, 0, 0x03)},
    {op::kReadCapacity10, -1, "READ CAPACITY(10)", kAlways, false, true, false, nullptr, &C::RunReadCapacity10, 10, {0x25, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, 0x07}},
    {op::kRead10, -1, "READ(10)", kRead, false, true, false, &C::ValidateBlockCommand, &C::RunRead, 10, U10(0x28, 0x18)},
    {op::kWrite10, -1, "WRITE(10)", kWrite, true, true, false, &C::ValidateBlockCommand, &C::RunWrite, 10, U10(0x2a, 0x18)},
    {op::kWriteAndVerify10, -1, "WRITE AND VERIFY(10)", kWrite, true, true, false, &C::ValidateBlockCommand, &C::RunWriteAndVerify, 10, U10(0x2e, 0x12)},
    {op::kVerify10, -1, "VERIFY(10)", kRead, false, true, false, &C::ValidateBlockCommand, &C::RunVerify, 10, U10(0x2f, 0x16)},
    {op::kPreFetch10, -1, "PRE-FETCH(10)", kRead, false, true, false, &C::ValidateBlockCommand, &C::RunPreFetch, 10, U10(0x34, 0x02)},
    {op::kSynchronizeCache10, -1, "SYNCHRONIZE CACHE(10)", kWrite, false, true, false, &C::ValidateBlockCommand, &C::RunSynchronizeCache, 10, U10(0x35, 0x02)},
    {op::kWriteSame10, -1, "WRITE SAME(10)", kWrite, true, true, false, &C::ValidateBlockCommand, &C::RunWriteSame, 10, U10(0x41, 0x08)},
    {op::kUnmap, -1, "UNMAP", kWrite, true, true, false, &C::ValidateUnmap, &C::RunUnmap, 10, {0x42, 0x01, 0, 0, 0, 0, 0x3f, 0xff, 0xff, 0x07}},
    {op::kModeSelect10, -1, "MODE SELECT(10)", kOther, false, true, false, &C::ValidateModeSelect, &C::RunModeSelect, 10, {0x55, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, 0x07}},
    {op::kModeSense10, -1, "MODE SENSE(10)", kOther, false, true, false, &C::ValidateModeSense, &C::RunModeSense, 10, {0x5a, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0x07}},
    {op::kPersistentReserveIn, -1, "PERSISTENT RESERVE IN", kAlways, false, true, false, nullptr, &C::RunPrIn, 10, {0x5e, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0x07}},
    {op::kPersistentReserveOut, -1, "PERSISTENT RESERVE OUT", kAlways, false, true, false, &C::ValidatePrOut, &C::RunPrOut, 10, {0x5f, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x07}},
    {op::kVariableLength, -1, "WRITE ATOMIC(32)", kWrite, true, true, false, &C::ValidateWriteAtomic32, &C::RunNothing, 32, {}},
    {op::kRead16, -1, "READ(16)", kRead, false, true, false, &C::ValidateBlockCommand, &C::RunRead, 16, U16(0x88, 0x18)},
    {op::kCompareAndWrite, -1, "COMPARE AND WRITE", kWrite, true, true, false, &C::ValidateBlockCommand, &C::RunCompareAndWrite, 16, {0x89, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0xff, 0x3f, 0x07}},
    {op::kWrite16, -1, "WRITE(16)", kWrite, true, true, false, &C::ValidateBlockCommand, &C::RunWrite, 16, U16(0x8a, 0x18)},
    {op::kOrWrite16, -1, "ORWRITE(16)", kWrite, true, true, false, &C::ValidateBlockCommand, &C::RunOrWrite, 16, U16(0x8b, 0x18)},
    {op::kWriteAndVerify16, -1, "WRITE AND VERIFY(16)", kWrite, true, true, false, &C::ValidateBlockCommand, &C::RunWriteAndVerify, 16, U16(0x8e, 0x12)},
    {op::kVerify16, -1, "VERIFY(16)", kRead, false, true, false, &C::ValidateBlockCommand, &C::RunVerify, 16, U16(0x8f, 0x16)},
    {op::kPreFetch16, -1, "PRE-FETCH(16)", kRead, false, true, false, &C::ValidateBlockCommand, &C::RunPreFetch, 16, U16(0x90, 0x02)},
    {op::kSynchronizeCache16, -1, "SYNCHRONIZE CACHE(16)", kWrite, false, true, false, &C::ValidateBlockCommand, &C::RunSynchronizeCache, 16, U16(0x91, 0x02)},
    {op::kWriteSame16, -1, "WRITE SAME(16)", kWrite, true, true, false, &C::ValidateBlockCommand, &C::RunWriteSame, 16, U16(0x93, 0x09)},
    {op::kWriteAtomic16, -1, "WRITE ATOMIC(16)", kWrite, true, true, false, &C::ValidateBlockCommand, &C::RunWriteAtomic, 16, {0x9c, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, 0x07}},
    {op::kServiceActionIn16, op::kSaReadCapacity16, "READ CAPACITY(16)", kAlways, false, true, false, nullptr, &C::RunServiceActionIn16, 16, {0x9e, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x07}},
    {op::kServiceActionIn16, op::kSaGetLbaStatus, "GET LBA STATUS", kRead, false, true, false, nullptr, &C::RunGetLbaStatus, 16, {0x9e, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x07}},
    {op::kReportLuns, -1, "REPORT LUNS", kAlways, false, false, true, nullptr, &C::RunReportLuns, 12, {0xa0, 0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x07}},
    {op::kMaintenanceIn, op::kSaReportSupportedOpcodes, "REPORT SUPPORTED OPERATION CODES", kAlways, false, true, true, &C::ValidateMaintenanceIn, &C::RunMaintenanceIn, 12, {0xa3, 0x0c, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x07}},
    {op::kRead12, -1, "READ(12)", kRead, false, true, false, &C::ValidateBlockCommand, &C::RunRead, 12, U12(0xa8, 0x18)},
    {op::kWrite12, -1, "WRITE(12)", kWrite, true, true, false, &C::ValidateBlockCommand, &C::RunWrite, 12, U12(0xaa, 0x18)},
    {op::kWriteAndVerify12, -1, "WRITE AND VERIFY(12)", kWrite, true, true, false, &C::ValidateBlockCommand, &C::RunWriteAndVerify, 12, U12(0xae, 0x12)},
    {op::kVerify12, -1, "VERIFY(12)", kRead, false, true, false, &C::ValidateBlockCommand, &C::RunVerify, 12, U12(0xaf, 0x16)},
      // clang-format on
  };
  return kCommands;
}

LogicalUnit::LogicalUnit(const config::Lun& lun, const std::string& target_iqn,
                         std::unique_ptr<storage::BlockStore> store, Metrics* metrics)
    : id_(lun.id),
      store_(std::move(store)),
      metrics_(metrics),
      labels_{{"target", target_iqn}, {"lun", std::to_string(lun.id)}},
      good_counters_(new std::atomic<std::atomic<int64_t>*>[Commands().size()]()),
      read_bytes_(metrics->Get("untorn_read_bytes_total", labels_, "Bytes read by initiators")),
      written_bytes_(
          metrics->Get("untorn_written_bytes_total", labels_, "Bytes written by initiators")),
      atomic_writes_(metrics->Get("untorn_atomic_writes_total", labels_,
                                  "WRITE ATOMIC(16) commands completed")),
      atomic_bytes_(
          metrics->Get("untorn_atomic_written_bytes_total", labels_, "Bytes written atomically")),
      latency_(metrics->GetHistogram(
          "untorn_command_latency_seconds", labels_,
          "Time from a SCSI command's arrival to its response being queued, per LUN")),
      write_cache_(lun.write_cache) {
  disk_.serial = lun.serial;
  const uint64_t h = std::hash<std::string>{}(target_iqn + "/" + std::to_string(lun.id));
  if (disk_.serial.empty()) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    disk_.serial = buf;
  }
  disk_.naa_id = h;
  disk_.target_name = target_iqn;
  disk_.block_size = lun.block_size;
  disk_.physical_exponent =
      static_cast<uint8_t>(std::countr_zero(lun.physical_block_size / lun.block_size));
  disk_.block_count = store_->size_bytes() / lun.block_size;
  block_count_.store(disk_.block_count);
  disk_.write_cache = lun.write_cache;
  disk_.read_only = lun.read_only;
  disk_.dpofua = true;
  disk_.thin = lun.thin;
  disk_.max_transfer_length = lun.max_transfer_length;
  disk_.optimal_transfer_length = std::min<uint32_t>(lun.max_transfer_length, 2048);
  disk_.max_unmap_lba_count = lun.thin ? 1u << 20 : 0;
  disk_.max_unmap_descriptors = lun.thin ? 256 : 0;
  disk_.max_write_same_length = lun.max_transfer_length;
  disk_.max_compare_and_write = 255;
  disk_.atomic = {lun.atomic.max_transfer_length, lun.atomic.alignment, lun.atomic.granularity,
                  lun.atomic.max_transfer_length_with_boundary, lun.atomic.max_boundary_size};
}

const LogicalUnit::Command* LogicalUnit::Find(Bytes cdb) const {
  const Command* opcode_match = nullptr;
  for (const Command& c : Commands()) {
    if (c.opcode != cdb[0]) continue;
    if (c.service_action < 0 || (cdb.size() > 1 && (cdb[1] & 0x1f) == c.service_action)) return &c;
    opcode_match = &c;
  }
  return opcode_match;
}

std::optional<protocol::Sense> LogicalUnit::TakeUnitAttention(uint64_t nexus_id) {
  std::lock_guard lk(state_mu_);
  auto it = unit_attentions_.find(nexus_id);
  if (it == unit_attentions_.end() || it->second.empty()) return std::nullopt;
  protocol::Sense s = it->second.front();
  it->second.pop_front();
  return s;
}

void LogicalUnit::EstablishUnitAttention(const protocol::Sense& s, uint64_t except) {
  std::lock_guard lk(state_mu_);
  for (auto& [nexus, queue] : unit_attentions_) {
    if (nexus == except) continue;
    if (std::find(queue.begin(), queue.end(), s) == queue.end() && queue.size() < 16) {
      queue.push_back(s);
    }
  }
}

void LogicalUnit::AddNexus(const Nexus& nexus) {
  std::lock_guard lk(state_mu_);
  unit_attentions_.try_emplace(nexus.id);
  // A registrant of before a restart is back: its restored registration is its own again.
  const std::string tid = nexus.TransportId();
  transport_ids_[nexus.id] = tid;
  pr_.Bind(nexus.id, tid);
}

storage::Status LogicalUnit::KeepReservationsIn(std::string path, storage::FileSystem* fs) {
  std::lock_guard lk(state_mu_);
  pr_fs_ = fs != nullptr ? fs : storage::PosixFileSystem();
  pr_path_ = std::move(path);
  std::vector<uint8_t> bytes;
  const storage::Status s = storage::ReadWholeFile(*pr_fs_, pr_path_, &bytes);
  if (s.code() == storage::Status::Code::kOutOfRange) return storage::Status::Ok();  // none kept
  if (!s.ok()) return s;
  std::string error;
  if (!pr_.Decode(std::string(bytes.begin(), bytes.end()), &error)) {
    return storage::Status::Error(
        storage::Status::Code::kInvalid,
        pr_path_ + ": " + error +
            " (the LUN's persistent reservations; remove the file to start without them)");
  }
  return storage::Status::Ok();
}

void LogicalUnit::NexusLost(const Nexus& nexus) {
  std::lock_guard lk(state_mu_);
  if (reserve6_holder_ == nexus.id) reserve6_holder_.reset();
  unit_attentions_.erase(nexus.id);
}

void LogicalUnit::SetTargetLuns(std::vector<uint16_t> luns) {
  std::lock_guard lk(state_mu_);
  target_luns_ = std::move(luns);
}

protocol::DiskDescription LogicalUnit::Describe() const {
  protocol::DiskDescription d = disk_;
  d.block_count = BlockCount();
  return d;
}

storage::Status LogicalUnit::Resize(uint64_t bytes, bool allow_shrink) {
  std::lock_guard lk(resize_mu_);
  const uint64_t now = BlockCount() * disk_.block_size;
  if (disk_.read_only) {
    return storage::Status::Error(storage::Status::Code::kReadOnly, "the LUN is read-only");
  }
  if (bytes == 0 || bytes % disk_.block_size != 0) {
    return storage::Status::Error(
        storage::Status::Code::kInvalid,
        "size must be a non-zero multiple of the block size " + std::to_string(disk_.block_size));
  }
  if (bytes < now && !allow_shrink) {
    return storage::Status::Error(storage::Status::Code::kInvalid,
                                  "shrinking from " + std::to_string(now) + " to " +
                                      std::to_string(bytes) +
                                      " bytes loses the data past the new end: ask with force");
  }
  if (disk_.atomic.alignment > 1 && (bytes / disk_.block_size) % disk_.atomic.alignment != 0) {
    return storage::Status::Error(storage::Status::Code::kInvalid,
                                  "the block count must stay a multiple of the atomic alignment " +
                                      std::to_string(disk_.atomic.alignment));
  }
  if (bytes == now) return storage::Status::Ok();
  // The capacity commands are checked against is never larger than the store: it goes down
  // before a shrink (commands already past the check finish first: the store waits for them),
  // and up after a grow.
  if (bytes < now) block_count_.store(bytes / disk_.block_size);
  if (storage::Status s = store_->Resize(bytes); !s.ok()) {
    block_count_.store(store_->size_bytes() / disk_.block_size);
    return s;
  }
  block_count_.store(bytes / disk_.block_size);
  EstablishUnitAttention(sense::CapacityDataChanged(), 0);
  return storage::Status::Ok();
}

void LogicalUnit::Reset(const Nexus& by) {
  {
    std::lock_guard lk(state_mu_);
    reserve6_holder_.reset();
  }
  EstablishUnitAttention(sense::PowerOnOrReset(), by.id);
}

storage::Durability LogicalUnit::DurabilityFor(bool fua) const {
  return fua || !WriteCacheEnabled() ? storage::Durability::kDurable : storage::Durability::kCached;
}

std::optional<ScsiOutcome> LogicalUnit::CheckLbaRange(uint64_t lba, uint64_t blocks) const {
  // Written so it cannot overflow: lba may be anything up to 2^64 - 1.
  const uint64_t count = BlockCount();  // loaded once: a Resize may change it meanwhile
  if (lba >= count || blocks > count - lba) {
    return ScsiOutcome::Check(sense::LbaOutOfRange());
  }
  return std::nullopt;
}

CommandPlan LogicalUnit::Prepare(const Nexus& nexus, Bytes cdb) {
  CommandPlan plan;
  const Command* c = cdb.empty() ? nullptr : Find(cdb);
  if (c == nullptr) {
    plan.done = ScsiOutcome::Check(sense::InvalidOpcode());
  } else if (cdb.size() < c->cdb_length) {
    // Shorter than the opcode's CDB: over iSCSI only a variable-length CDB without its
    // Extended CDB AHS can be, so the field at fault is its ADDITIONAL CDB LENGTH.
    plan.done = ScsiOutcome::Check(
        sense::InvalidFieldInCdb(c->opcode == protocol::op::kVariableLength ? 7 : 0));
  } else if (c->service_action >= 0 && (cdb[1] & 0x1f) != c->service_action) {
    plan.done = ScsiOutcome::Check(sense::InvalidFieldInCdb(1, 4));
  } else if (auto bad = protocol::CheckControlByte(cdb)) {
    plan.done = ScsiOutcome::Check(*bad);
  } else if (auto ua = c->reports_ua ? TakeUnitAttention(nexus.id) : std::nullopt) {
    plan.done = ScsiOutcome::Check(*ua);
  } else {
    bool conflict = false;
    {
      std::lock_guard lk(state_mu_);
      conflict =
          (reserve6_holder_ && *reserve6_holder_ != nexus.id && !c->allowed_under_reserve6) ||
          pr_.Conflicts(nexus.id, c->access) ||
          (c->opcode == op::kReserve6 && pr_.HasReservation());
    }
    if (conflict) {
      plan.done = ScsiOutcome::WithStatus(ScsiStatus::kReservationConflict);
    } else if (c->modifies_medium && disk_.read_only) {
      plan.done = ScsiOutcome::Check(sense::WriteProtected());
    } else if (c->validate != nullptr) {
      plan.done = (this->*(c->validate))(nexus, cdb, plan);
    }
  }
  if (plan.done) {
    const char* name = c ? c->name : "UNSUPPORTED";
    metrics_->Add("untorn_scsi_commands_total",
                  {{"target", labels_.at("target")},
                   {"lun", labels_.at("lun")},
                   {"command", name},
                   {"outcome", SenseLabel(plan.done->sense, plan.done->status)}},
                  "SCSI commands by command and outcome");
  }
  return plan;
}

ScsiOutcome LogicalUnit::Execute(const Nexus& nexus, Bytes cdb, std::vector<uint8_t> data_out,
                                 DataInMode mode) {
  const Command* c = Find(cdb);
  if (c == nullptr) return ScsiOutcome::Check(sense::InvalidOpcode());
  std::optional<ScsiOutcome> mapped;
  if (mode == DataInMode::kMayMap && c->run == &LogicalUnit::RunRead) mapped = RunMappedRead(cdb);
  ScsiOutcome o = mapped ? std::move(*mapped) : (this->*(c->run))(nexus, cdb, data_out);
  Count(*c, o);
  return o;
}

bool LogicalUnit::TryStart(const Nexus&, Bytes cdb, std::vector<uint8_t>& data_out,
                           const Completion& done) {
  // Up to 128 KiB: a copy of that size costs less than the two thread hand-offs it saves,
  // while a large copy here would hold up the other connections this network thread serves
  // (1 MiB sequential reads measured slower inline).
  constexpr uint64_t kInlineLimit = 128 << 10;
  const Command* c = Find(cdb);
  if (c == nullptr) return false;
  const bool read = c->run == &LogicalUnit::RunRead;
  const bool write = c->run == &LogicalUnit::RunWrite;
  const bool atomic = c->run == &LogicalUnit::RunWriteAtomic;
  if (!read && !write && !atomic) return false;
  const auto b = protocol::DecodeBlockCdb(cdb);
  if (!b) return false;
  const uint64_t offset = b->lba * disk_.block_size;
  const uint64_t bytes = uint64_t{b->blocks} * disk_.block_size;
  if (bytes == 0 || bytes > kInlineLimit) return false;
  if (read) {
    DataInBuffer data(bytes);
    const auto s = store_->TryReadNoWait(offset, data);
    if (!s) return false;
    ScsiOutcome o = ReadOutcome(*s, std::move(data));
    Count(*c, o);
    done(std::move(o));
    return true;
  }
  if (data_out.size() != bytes) return false;  // a cut-short transfer: Execute handles it
  const auto kind = atomic ? storage::WriteKind::kAtomic : storage::WriteKind::kPlain;
  {
    std::lock_guard lk(started_mu_);
    ++started_writes_;
  }
  const auto finished = [this] {
    std::lock_guard lk(started_mu_);
    if (--started_writes_ == 0) started_cv_.notify_all();
  };
  // The data travels with the completion: the store writes from it until `done` runs.
  auto data = std::make_shared<std::vector<uint8_t>>(std::move(data_out));
  const bool started =
      store_->TryStartWrite(offset, *data, kind, DurabilityFor(b->fua),
                            [this, c, data, kind, done, finished](const storage::Status& s) {
                              ScsiOutcome o = WriteOutcome(s, data->size(), kind);
                              Count(*c, o);
                              done(std::move(o));
                              finished();
                            });
  if (!started) {
    data_out = std::move(*data);
    finished();
  }
  return started;
}

storage::Status LogicalUnit::Flush() {
  {
    std::unique_lock lk(started_mu_);
    started_cv_.wait(lk, [&] { return started_writes_ == 0; });
  }
  return store_->Flush();
}

LogicalUnit::~LogicalUnit() {
  std::unique_lock lk(started_mu_);
  started_cv_.wait(lk, [&] { return started_writes_ == 0; });
}

void LogicalUnit::Count(const Command& c, const ScsiOutcome& o) {
  const auto series = [&] {
    return &metrics_->Get("untorn_scsi_commands_total",
                          {{"target", labels_.at("target")},
                           {"lun", labels_.at("lun")},
                           {"command", c.name},
                           {"outcome", SenseLabel(o.sense, o.status)}},
                          "SCSI commands by command and outcome");
  };
  if (o.status != ScsiStatus::kGood || o.sense) {
    series()->fetch_add(1, std::memory_order_relaxed);
    return;
  }
  auto& cached = good_counters_[static_cast<size_t>(&c - Commands().data())];
  std::atomic<int64_t>* counter = cached.load(std::memory_order_acquire);
  if (counter == nullptr) {
    counter = series();
    cached.store(counter, std::memory_order_release);
  }
  counter->fetch_add(1, std::memory_order_relaxed);
}

std::string Nexus::TransportId() const {
  char buf[32];
  std::snprintf(buf, sizeof buf, ",i,0x%012llx", static_cast<unsigned long long>(isid));
  return initiator + buf;
}

// REPORT SUPPORTED OPERATION CODES (SPC-4 §6.35), built from the command table.
std::optional<ScsiOutcome> LogicalUnit::ValidateMaintenanceIn(const Nexus&, Bytes cdb,
                                                              CommandPlan&) {
  std::optional<ScsiOutcome> err;
  (void)SupportedOpcodes(cdb, &err);
  return err;
}

ScsiOutcome LogicalUnit::RunMaintenanceIn(const Nexus&, Bytes cdb, std::vector<uint8_t>&) {
  std::optional<ScsiOutcome> err;
  std::vector<uint8_t> data = SupportedOpcodes(cdb, &err);
  if (err) return *err;
  const uint32_t alloc = protocol::LoadBe32(cdb, 6);
  if (data.size() > alloc) data.resize(alloc);
  return ScsiOutcome::Data(std::move(data));
}

std::vector<uint8_t> LogicalUnit::SupportedOpcodes(Bytes cdb,
                                                   std::optional<ScsiOutcome>* err) const {
  const bool rctd = (cdb[2] & 0x80) != 0;
  const uint8_t options = cdb[2] & 0x07;
  const uint8_t req_op = cdb[3];
  const uint16_t req_sa = protocol::LoadBe16(cdb, 4);
  // Command timeouts descriptor (§6.35.4): length 0Ah, no timeouts reported.
  const auto timeouts = [] {
    std::vector<uint8_t> t(12, 0);
    protocol::StoreBe16(t, 0, 0x0a);
    return t;
  };
  const auto listed = [](const Command& c) { return c.usage[0] != 0; };
  if (options == 0) {
    std::vector<uint8_t> b(4, 0);
    for (const Command& c : Commands()) {
      if (!listed(c)) continue;
      std::vector<uint8_t> d(8, 0);
      d[0] = c.opcode;
      if (c.service_action >= 0) {
        protocol::StoreBe16(d, 2, static_cast<uint16_t>(c.service_action));
        d[5] |= 0x01;  // SERVACTV
      }
      if (rctd) d[5] |= 0x02;  // CTDP
      protocol::StoreBe16(d, 6, c.cdb_length);
      b.insert(b.end(), d.begin(), d.end());
      if (rctd) {
        auto t = timeouts();
        b.insert(b.end(), t.begin(), t.end());
      }
    }
    protocol::StoreBe32(b, 0, static_cast<uint32_t>(b.size() - 4));
    return b;
  }
  if (options > 3) {
    *err = ScsiOutcome::Check(sense::InvalidFieldInCdb(2, 2));
    return {};
  }
  const Command* found = nullptr;
  bool opcode_has_sa = false;
  for (const Command& c : Commands()) {
    if (c.opcode != req_op || !listed(c)) continue;
    opcode_has_sa = c.service_action >= 0;
    if (c.service_action < 0 || c.service_action == req_sa) found = &c;
  }
  // Options 1 ask about an opcode without service actions, 2 about one with them.
  if ((options == 1 && opcode_has_sa) || (options == 2 && !opcode_has_sa && found)) {
    *err = ScsiOutcome::Check(sense::InvalidFieldInCdb(2, 2));
    return {};
  }
  std::vector<uint8_t> b(4, 0);
  if (found == nullptr) {
    b[1] = 0x01;  // SUPPORT: not supported
    return b;
  }
  b[1] = static_cast<uint8_t>(0x03 | (rctd ? 0x80 : 0));  // supported as the standard says
  protocol::StoreBe16(b, 2, found->cdb_length);
  b.insert(b.end(), found->usage.begin(), found->usage.begin() + found->cdb_length);
  if (found->opcode == op::kWriteAtomic16 || (found->usage[1] & 0x18) != 0) {
    // DPO/FUA bits are honoured only when MODE SENSE advertises DPOFUA.
    if (!disk_.dpofua) b[5] &= static_cast<uint8_t>(~0x18);
  }
  if (rctd) {
    auto t = timeouts();
    b.insert(b.end(), t.begin(), t.end());
  }
  return b;
}

ScsiOutcome OutcomeFromStorage(const storage::Status& s, bool writing) {
  using Code = storage::Status::Code;
  switch (s.code()) {
    case Code::kOk:
      return ScsiOutcome::Good();
    case Code::kOutOfRange:
      return ScsiOutcome::Check(sense::LbaOutOfRange());
    case Code::kInvalid:
      return ScsiOutcome::Check(sense::InvalidFieldInCdb(0));
    case Code::kIoError:
      UNTORN_LOG_ERROR("storage: ", s.message());
      return ScsiOutcome::Check(writing ? sense::WriteError() : sense::UnrecoveredReadError());
    case Code::kSyncFailed:
      UNTORN_LOG_ERROR("storage: ", s.message());
      return ScsiOutcome::Check(sense::WriteError());
    case Code::kReadOnly:
      return ScsiOutcome::Check(sense::InternalTargetFailure());
    case Code::kNoSpace: {
      // Every write fails while the file system is full: say so now and then, not each time.
      static std::atomic<int64_t> last_logged{-1};  // steady-clock seconds; -1: never
      const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::steady_clock::now().time_since_epoch())
                              .count();
      int64_t last = last_logged.load();
      if ((last < 0 || now - last >= 10) && last_logged.compare_exchange_strong(last, now)) {
        UNTORN_LOG_WARN("storage: ", s.message(),
                        "; writes get SPACE ALLOCATION FAILED WRITE PROTECT until there is room");
      }
      return ScsiOutcome::Check(sense::SpaceAllocationFailedWriteProtect());
    }
  }
  return ScsiOutcome::Check(sense::InternalTargetFailure());
}

}  // namespace untorn::target
