// untorn-write: one WRITE ATOMIC(16) or WRITE(16) of a block pattern, with every CDB field
// settable, and the target's answer in words.
//
//   untorn-write URL --lba N --blocks N [--atomic [--boundary N]] [--fua] [--dpo]
//                [--wrprotect N] [--group N] [--pattern stamp[:SEED]|0xNN|zero]
#include <cstdio>
#include <string>
#include <vector>

#include "protocol/byte_order.h"
#include "tools/cli.h"
#include "tools/client.h"

namespace {

using untorn::tools::ParseCount;

constexpr const char* kUsage =
    "usage: untorn-write URL --lba N --blocks N [--atomic [--boundary N]] [--fua] [--dpo]\n"
    "                    [--wrprotect N] [--group N] [--pattern P] [--initiator IQN]\n"
    "  URL      iscsi://[user[%secret]@]host[:port]/target-iqn/lun\n"
    "  --atomic WRITE ATOMIC(16) (9Ch) instead of WRITE(16) (8Ah)\n"
    "  P        stamp[:SEED] (default stamp:0; each block names its LBA), 0xNN, zero;\n"
    "           untorn-verify with the same pattern checks it back\n"
    "Exit status: 0 GOOD, 1 any other status (described on stderr), 2 usage.\n";

int Usage(const std::string& why = {}) { return untorn::tools::BadUsage("untorn-write", why); }

bool Number(const untorn::tools::Options& o, const char* name, uint64_t max, uint64_t* out) {
  if (!o.Has(name)) return true;
  const auto v = ParseCount(o.Get(name));
  if (!v || *v > max) {
    std::fprintf(stderr, "untorn-write: --%s: expected a number up to %llu\n", name,
                 static_cast<unsigned long long>(max));
    return false;
  }
  *out = *v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (int rc = untorn::tools::HelpOrVersion(argc, argv, "untorn-write", kUsage); rc >= 0) return rc;
  untorn::tools::Options o;
  std::string error;
  if (!untorn::tools::ParseCommandLine("untorn-write", argc, argv,
                                       {{"lba", true},
                                        {"blocks", true},
                                        {"atomic", false},
                                        {"boundary", true},
                                        {"fua", false},
                                        {"dpo", false},
                                        {"wrprotect", true},
                                        {"group", true},
                                        {"pattern", true},
                                        {"initiator", true},
                                        {"help", false}},
                                       1, &o)) {
    return Usage();
  }
  uint64_t lba = 0, blocks = 0, boundary = 0, wrprotect = 0, group = 0;
  if (!o.Has("lba") || !o.Has("blocks")) return Usage("--lba and --blocks are required");
  if (!Number(o, "lba", UINT64_MAX, &lba) || !Number(o, "blocks", 0xffff, &blocks) ||
      !Number(o, "boundary", 0xffff, &boundary) || !Number(o, "wrprotect", 7, &wrprotect) ||
      !Number(o, "group", 0x3f, &group)) {
    return 2;
  }
  const bool atomic = o.Has("atomic");
  if (boundary != 0 && !atomic) {
    std::fprintf(stderr, "untorn-write: --boundary is a field of WRITE ATOMIC(16) (--atomic)\n");
    return 2;
  }
  const auto pattern = untorn::tools::ParsePattern(o.Get("pattern", "stamp"), &error);
  if (!pattern) {
    std::fprintf(stderr, "untorn-write: %s\n", error.c_str());
    return 2;
  }
  auto session = untorn::tools::ConnectFromOptions("untorn-write", o);
  if (!session) return 1;
  const uint32_t bs = session->block_size;
  std::vector<uint8_t> data(blocks * bs);
  for (uint64_t i = 0; i < blocks; ++i) FillBlock(*pattern, lba + i, data.data() + i * bs, bs);

  // SBC-4: WRITE(16) and WRITE ATOMIC(16) share bytes 0-9 and 14-15; bytes 10-13 are
  // TRANSFER LENGTH (32) for WRITE(16), ATOMIC BOUNDARY (16) + TRANSFER LENGTH (16) for 9Ch.
  std::vector<uint8_t> cdb(16, 0);
  cdb[0] = atomic ? 0x9c : 0x8a;
  cdb[1] =
      static_cast<uint8_t>(wrprotect << 5 | (o.Has("dpo") ? 0x10 : 0) | (o.Has("fua") ? 0x08 : 0));
  untorn::protocol::StoreBe64(cdb, 2, lba);
  if (atomic) {
    untorn::protocol::StoreBe16(cdb, 10, static_cast<uint16_t>(boundary));
    untorn::protocol::StoreBe16(cdb, 12, static_cast<uint16_t>(blocks));
  } else {
    untorn::protocol::StoreBe32(cdb, 10, static_cast<uint32_t>(blocks));
  }
  cdb[14] = static_cast<uint8_t>(group);
  auto task = untorn::tools::RawTask(cdb, SCSI_XFER_WRITE, static_cast<uint32_t>(data.size()));
  iscsi_data out{static_cast<size_t>(data.size()), data.data()};
  scsi_task* done = iscsi_scsi_command_sync(session->context.get(), session->lun, task.get(),
                                            data.empty() ? nullptr : &out);
  const char* name = atomic ? "WRITE ATOMIC(16)" : "WRITE(16)";
  if (done == nullptr) {
    std::fprintf(stderr, "untorn-write: %s failed: %s\n", name,
                 iscsi_get_error(session->context.get()));
    return 1;
  }
  const std::string status = untorn::tools::DescribeStatus(*task);
  std::printf("%s LBA %llu, %llu block(s) of %u B%s: %s\n", name,
              static_cast<unsigned long long>(lba), static_cast<unsigned long long>(blocks), bs,
              o.Has("fua") ? " (FUA)" : "", status.c_str());
  return task->status == SCSI_STATUS_GOOD ? 0 : 1;
}
