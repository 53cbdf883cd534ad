// libFuzzer target: the SCSI disk on arbitrary CDBs and data-out. A logical unit with atomic
// limits over a journaled store on the in-memory file system; the first input byte picks the
// CDB length (6..32), then come the CDB and the data-out. Every CDB decoder and command
// handler that a CDB can reach runs; a command the shared checks accept is executed.
#include <cstddef>
#include <cstdint>

#include "config/config.h"
#include "storage/journaled_store.h"
#include "storage/mem_file_system.h"
#include "target/scsi/logical_unit.h"

using namespace untorn;

namespace {
struct Disk {
  storage::MemFileSystem fs;
  target::Metrics metrics;
  std::unique_ptr<target::LogicalUnit> lu;
  target::Nexus nexus{1, "iqn.2026-11.org.untorn:fuzz", 1};
  Disk() {
    config::Lun l;
    l.size = 1 << 20;
    l.block_size = 512;
    l.physical_block_size = 4096;
    l.max_transfer_length = 2048;
    l.atomic = {256, 8, 8, 64, 64, true};
    storage::JournaledStore::Options o;
    o.data_path = "/fuzz.img";
    o.size_bytes = l.size;
    o.journal_bytes = 4 << 20;
    o.fs = &fs;
    o.background_checkpoint = false;
    std::unique_ptr<storage::JournaledStore> store;
    if (!storage::JournaledStore::Open(o, &store, nullptr).ok()) __builtin_trap();
    lu = std::make_unique<target::LogicalUnit>(l, "iqn.2026-11.org.untorn:fuzz", std::move(store),
                                               &metrics);
    lu->SetTargetLuns({0});
    lu->AddNexus(nexus);
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Disk disk;
  // The crash simulator's event log would otherwise grow without bound; restarting it copies
  // the files, so not every time.
  static unsigned runs = 0;
  if (++runs % 512 == 0) disk.fs.RestartLog();
  if (size < 1) return 0;
  const size_t cdb_length = 6 + data[0] % 27;
  if (size < 1 + cdb_length) return 0;
  const protocol::Bytes cdb(data + 1, cdb_length);
  const target::CommandPlan plan = disk.lu->Prepare(disk.nexus, cdb);
  // CHECK CONDITION always carries sense data, and only it does (the one mapping to sense).
  const auto consistent = [](const target::ScsiOutcome& o) {
    return (o.status == protocol::ScsiStatus::kCheckCondition) == o.sense.has_value();
  };
  if (plan.done) {
    if (!consistent(*plan.done)) __builtin_trap();
    return 0;
  }
  std::vector<uint8_t> out(data + 1 + cdb_length, data + size);
  out.resize(plan.data_out_length, 0);
  const target::ScsiOutcome o = disk.lu->Execute(disk.nexus, cdb, std::move(out));
  if (!consistent(o)) __builtin_trap();
  // A READ returns exactly what its plan said it would.
  if (o.status == protocol::ScsiStatus::kGood && plan.data_in_length != 0 &&
      o.data_in_size() != plan.data_in_length) {
    __builtin_trap();
  }
  return 0;
}
