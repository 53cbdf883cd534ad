// untorn-verify: reads a range back (READ(16), in pieces within the LUN's maximum transfer
// length) and checks every block against the pattern untorn-write wrote.
//
//   untorn-verify URL --lba N --blocks N [--pattern stamp[:SEED]|0xNN|zero]
#include <algorithm>
#include <cstdio>
#include <string>

#include "tools/cli.h"
#include "tools/client.h"

namespace {

constexpr const char* kUsage =
    "usage: untorn-verify URL --lba N --blocks N [--pattern P] [--initiator IQN]\n"
    "  URL  iscsi://[user[%secret]@]host[:port]/target-iqn/lun\n"
    "  P    the pattern given to untorn-write: stamp[:SEED] (default), 0xNN, zero\n"
    "Exit status: 0 every block matches, 1 a mismatch or a failed read, 2 usage.\n";

int Usage(const std::string& why = {}) { return untorn::tools::BadUsage("untorn-verify", why); }

}  // namespace

int main(int argc, char** argv) {
  if (int rc = untorn::tools::HelpOrVersion(argc, argv, "untorn-verify", kUsage); rc >= 0)
    return rc;
  untorn::tools::Options o;
  std::string error;
  if (!untorn::tools::ParseCommandLine("untorn-verify", argc, argv,
                                       {{"lba", true},
                                        {"blocks", true},
                                        {"pattern", true},
                                        {"initiator", true},
                                        {"help", false}},
                                       1, &o)) {
    return Usage();
  }
  const auto lba = untorn::tools::ParseCount(o.Get("lba"));
  const auto blocks = untorn::tools::ParseCount(o.Get("blocks"));
  if (!lba || !blocks) return Usage("--lba N and --blocks N are required");
  const auto pattern = untorn::tools::ParsePattern(o.Get("pattern", "stamp"), &error);
  if (!pattern) {
    std::fprintf(stderr, "untorn-verify: %s\n", error.c_str());
    return 2;
  }
  auto session = untorn::tools::ConnectFromOptions("untorn-verify", o);
  if (!session) return 1;
  if (*lba > session->blocks || *blocks > session->blocks - *lba) {
    std::fprintf(stderr, "untorn-verify: LBA %llu + %llu blocks is past the LUN's %llu blocks\n",
                 static_cast<unsigned long long>(*lba), static_cast<unsigned long long>(*blocks),
                 static_cast<unsigned long long>(session->blocks));
    return 1;
  }
  const uint32_t bs = session->block_size;
  const uint64_t piece = std::max<uint64_t>(1, (1u << 20) / bs);  // 1 MiB reads
  uint64_t bad = 0, first_bad = 0;
  int64_t first_offset = -1;
  for (uint64_t done = 0; done < *blocks;) {
    const uint64_t n = std::min(piece, *blocks - done);
    const uint64_t at = *lba + done;
    untorn::tools::Task t(iscsi_read16_sync(session->context.get(), session->lun, at,
                                            static_cast<uint32_t>(n * bs), bs, 0, 0, 0, 0, 0));
    if (!t || t->status != SCSI_STATUS_GOOD || t->datain.size != static_cast<int>(n * bs)) {
      std::fprintf(
          stderr, "untorn-verify: READ(16) LBA %llu, %llu block(s): %s\n",
          static_cast<unsigned long long>(at), static_cast<unsigned long long>(n),
          t ? untorn::tools::DescribeStatus(*t).c_str() : iscsi_get_error(session->context.get()));
      return 1;
    }
    for (uint64_t i = 0; i < n; ++i) {
      const int64_t off = FirstMismatch(*pattern, at + i, t->datain.data + i * bs, bs);
      if (off < 0) continue;
      if (bad++ == 0) {
        first_bad = at + i;
        first_offset = off;
      }
    }
    done += n;
  }
  if (bad != 0) {
    std::printf("%llu of %llu block(s) differ from the pattern; first at LBA %llu, byte %lld\n",
                static_cast<unsigned long long>(bad), static_cast<unsigned long long>(*blocks),
                static_cast<unsigned long long>(first_bad), static_cast<long long>(first_offset));
    return 1;
  }
  std::printf("%llu block(s) from LBA %llu match the pattern\n",
              static_cast<unsigned long long>(*blocks), static_cast<unsigned long long>(*lba));
  return 0;
}
