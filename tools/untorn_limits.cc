// untorn-limits: a LUN's atomic-write limits (Block Limits VPD, B0h) and what a Linux 6.11+
// initiator over iscsi_tcp will make of them.
//
//   untorn-limits [--initiator IQN] iscsi://[user[%secret]@]host[:port]/target-iqn/lun
#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <string>

#include "config/config.h"
#include "tools/cli.h"
#include "tools/client.h"

namespace {

using untorn::tools::Task;

std::string Bytes(uint64_t n) {
  char buf[64];
  if (n >= (1ull << 30) && n % (1ull << 30) == 0) {
    std::snprintf(buf, sizeof buf, "%llu GiB", static_cast<unsigned long long>(n >> 30));
  } else if (n >= (1ull << 20) && n % (1ull << 20) == 0) {
    std::snprintf(buf, sizeof buf, "%llu MiB", static_cast<unsigned long long>(n >> 20));
  } else if (n >= 1024 && n % 1024 == 0) {
    std::snprintf(buf, sizeof buf, "%llu KiB", static_cast<unsigned long long>(n >> 10));
  } else {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  }
  return buf;
}

void Row(const char* name, uint32_t blocks, uint32_t block_size) {
  std::printf("  %-52s %10u", name, blocks);
  if (blocks != 0 && block_size != 0) {
    std::printf("  (%s)", Bytes(uint64_t{blocks} * block_size).c_str());
  }
  std::printf("\n");
}

// The largest I/O the Linux block layer guarantees in one bio, as in 6.12's
// blk_queue_max_guaranteed_bio(): two blocks that may straddle pages, then whole pages, over at
// most BIO_MAX_VECS (256) segments. iscsi_tcp allows 4096 segments and 0xFFFF sectors per
// command, so on x86-64 (4 KiB pages) this bio limit is what caps the atomic unit.
uint64_t LinuxUnitLimit(uint32_t block_size) {
  constexpr uint64_t kBioMaxVecs = 256, kPage = 4096, kIscsiTcpMaxSectors = 0xffff;
  const uint64_t bio = 2 * uint64_t{block_size} + (kBioMaxVecs - 2) * kPage;
  const uint64_t hw = kIscsiTcpMaxSectors * 512 / block_size * block_size;
  return std::bit_floor(std::min(bio, hw));
}

constexpr const char* kUsage =
    "usage: untorn-limits [--initiator IQN] "
    "iscsi://[user[%secret]@]host[:port]/target-iqn/lun\n"
    "Shows the LUN's Block Limits VPD page (B0h) atomic fields and the atomic write\n"
    "units a Linux 6.11+ initiator (sd over iscsi_tcp, x86-64) derives from them.\n";

int Usage(const std::string& why = {}) { return untorn::tools::BadUsage("untorn-limits", why); }

}  // namespace

int main(int argc, char** argv) {
  if (int rc = untorn::tools::HelpOrVersion(argc, argv, "untorn-limits", kUsage); rc >= 0)
    return rc;
  untorn::tools::Options opt;
  if (!untorn::tools::ParseCommandLine("untorn-limits", argc, argv,
                                       {{"initiator", true}, {"help", false}}, 1, &opt)) {
    return Usage();
  }
  const std::string url = opt.positional[0];
  auto session = untorn::tools::ConnectFromOptions("untorn-limits", opt);
  if (!session) return 1;
  iscsi_context* c = session->context.get();
  Task task(iscsi_inquiry_sync(c, session->lun, 1, SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS, 255));
  if (!task || task->status != SCSI_STATUS_GOOD) {
    std::fprintf(stderr, "untorn-limits: INQUIRY VPD B0h failed: %s\n",
                 task ? untorn::tools::DescribeStatus(*task).c_str() : iscsi_get_error(c));
    return 1;
  }
  const int page_length =
      task->datain.size >= 4 ? (task->datain.data[2] << 8 | task->datain.data[3]) + 4 : 0;
  auto* bl = static_cast<scsi_inquiry_block_limits*>(scsi_datain_unmarshall(task.get()));
  if (bl == nullptr) {
    std::fprintf(stderr, "untorn-limits: the Block Limits page does not parse\n");
    return 1;
  }
  const uint32_t bs = session->block_size;
  std::printf("%s\n  %llu blocks of %u B (%s), physical block %u B\n", url.c_str(),
              static_cast<unsigned long long>(session->blocks), bs,
              Bytes(session->blocks * bs).c_str(), session->physical_block_size);
  std::printf("Block Limits VPD (B0h), page length %d bytes:\n", page_length);
  Row("MAXIMUM TRANSFER LENGTH", bl->max_xfer_len, bs);
  Row("OPTIMAL TRANSFER LENGTH", bl->opt_xfer_len, bs);
  Row("MAXIMUM ATOMIC TRANSFER LENGTH", bl->max_atomic_xfer_len, bs);
  Row("ATOMIC ALIGNMENT", bl->atomic_align, 0);
  Row("ATOMIC TRANSFER LENGTH GRANULARITY", bl->atomic_gran, 0);
  Row("MAXIMUM ATOMIC TRANSFER LENGTH WITH ATOMIC BOUNDARY", bl->max_atomic_tl_with_atomic_boundary,
      bs);
  Row("MAXIMUM ATOMIC BOUNDARY SIZE", bl->max_atomic_boundary_size, bs);

  std::printf("Linux 6.11+ (sd over iscsi_tcp, x86-64):\n");
  if (page_length < 64) {
    std::printf("  atomic writes off: sd reads the atomic fields only from a 64-byte page\n");
    return 0;
  }
  untorn::config::AtomicLimits limits;
  limits.max_transfer_length = bl->max_atomic_xfer_len;
  limits.alignment = bl->atomic_align;
  limits.granularity = bl->atomic_gran;
  limits.max_transfer_length_with_boundary = bl->max_atomic_tl_with_atomic_boundary;
  limits.max_boundary_size = bl->max_atomic_boundary_size;
  const auto units = untorn::config::LinuxAtomicView(limits, bs, session->physical_block_size);
  if (units.unit_min == 0) {
    std::printf("  atomic writes off: %s\n", units.reason.c_str());
    std::printf("  atomic_write_unit_min_bytes  0\n  atomic_write_unit_max_bytes  0\n");
    return 0;
  }
  const uint64_t limit = LinuxUnitLimit(bs);
  const uint64_t unit_min = std::min<uint64_t>(uint64_t{units.unit_min} * bs, limit);
  const uint64_t unit_max = std::min<uint64_t>(uint64_t{units.unit_max} * bs, limit);
  const uint32_t max_blocks =
      bl->max_atomic_xfer_len != 0 ? bl->max_atomic_xfer_len : bl->max_atomic_boundary_size;
  const uint64_t max_bytes =
      std::min<uint64_t>(uint64_t{max_blocks} * bs, 0xffffull * 512 / bs * bs);
  std::printf("  atomic_write_unit_min_bytes  %10llu  (%s)\n",
              static_cast<unsigned long long>(unit_min), Bytes(unit_min).c_str());
  std::printf("  atomic_write_unit_max_bytes  %10llu  (%s%s)\n",
              static_cast<unsigned long long>(unit_max), Bytes(unit_max).c_str(),
              unit_max < uint64_t{units.unit_max} * bs ? ", capped by one bio" : "");
  std::printf("  atomic_write_max_bytes       %10llu  (%s)\n",
              static_cast<unsigned long long>(max_bytes), Bytes(max_bytes).c_str());
  std::printf("  RWF_ATOMIC writes: power-of-two lengths %s to %s, offset aligned to the length\n",
              Bytes(unit_min).c_str(), Bytes(unit_max).c_str());
  return 0;
}
