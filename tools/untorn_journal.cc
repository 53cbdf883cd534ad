// untorn-journal: inspect and recover a journaled LUN offline (docs/journal-format.md).
//   untorn-journal dump DATA_FILE       superblock and records, and where the scan stops
//   untorn-journal check DATA_FILE      exit 0 if the superblock and journal are readable
//   untorn-journal recover DATA_FILE --size BYTES [--block-size N]   replay and checkpoint
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "storage/file_system.h"
#include "storage/journal_format.h"
#include "storage/journal_scan.h"
#include "storage/journaled_store.h"
#include "tools/cli.h"

namespace {

using untorn::storage::File;
using untorn::storage::JournaledStore;
namespace journal = untorn::storage::journal;

constexpr const char* kUsage =
    "usage: untorn-journal dump DATA_FILE\n"
    "       untorn-journal check DATA_FILE\n"
    "       untorn-journal recover DATA_FILE [--size BYTES] [--block-size N]\n"
    "\n"
    "Inspects (dump: every record; check: a summary) or recovers (replays into the data file)\n"
    "the journal beside a journaled LUN's DATA_FILE. recover takes the size from the\n"
    "superblock when --size is not given.\n";

int Usage(const std::string& why) { return untorn::tools::BadUsage("untorn-journal", why); }

bool ReadSuper(const std::string& data, journal::Superblock* sb, std::string* why) {
  auto* fs = untorn::storage::PosixFileSystem();
  const std::string path = JournaledStore::SuperPath(data);
  std::unique_ptr<File> f;
  if (!fs->Open(path, false, true, &f).ok()) {
    *why = path + ": cannot open";
    return false;
  }
  std::vector<uint8_t> b(journal::kSuperSize);
  if (!f->PRead(0, b).ok()) {
    *why = path + ": cannot read";
    return false;
  }
  auto s = journal::DecodeSuperblock(b, why);
  if (!s) return false;
  *sb = *s;
  return true;
}

// Scans exactly as recovery does, printing each record it would replay.
uint64_t Scan(const std::string& data, const journal::Superblock& sb, bool print,
              std::string* stop) {
  auto* fs = untorn::storage::PosixFileSystem();
  std::unique_ptr<File> j;
  if (!fs->Open(JournaledStore::JournalPath(data), false, true, &j).ok()) {
    *stop = "no journal file";
    return 0;
  }
  journal::ScanResult r;
  const auto s = journal::Scan(
      *j, sb, sb.lun_size,
      [&](const journal::RecordHeader& h, uint64_t pos, untorn::protocol::Bytes) {
        if (print) {
          std::printf(
              "record %llu at %llu: %s, %u bytes to LUN offset %llu (block %llu)\n",
              static_cast<unsigned long long>(h.sequence), static_cast<unsigned long long>(pos),
              h.kind == journal::RecordKind::kAtomic ? "atomic" : "ordered", h.length,
              static_cast<unsigned long long>(h.offset),
              static_cast<unsigned long long>(h.offset / (sb.block_size ? sb.block_size : 512)));
        }
        return untorn::storage::Status::Ok();
      },
      &r);
  *stop = s.ok() ? r.stop_reason : s.message();
  return r.records;
}

}  // namespace

int main(int argc, char** argv) {
  if (int rc = untorn::tools::HelpOrVersion(argc, argv, "untorn-journal", kUsage); rc >= 0) {
    return rc;
  }
  if (argc < 3) return Usage("needs a command and a DATA_FILE");
  const std::string cmd = argv[1], data = argv[2];
  if (cmd == "dump" || cmd == "check") {
    journal::Superblock sb;
    std::string why;
    if (!ReadSuper(data, &sb, &why)) {
      std::fprintf(stderr, "untorn-journal: %s\n", why.c_str());
      return 1;
    }
    std::string stop;
    const uint64_t n = Scan(data, sb, cmd == "dump", &stop);
    std::printf(
        "superblock: epoch %llu, applied sequence %llu, next record at %llu, journal %llu "
        "bytes, LUN %llu bytes in %u-byte blocks\n",
        static_cast<unsigned long long>(sb.epoch),
        static_cast<unsigned long long>(sb.applied_sequence),
        static_cast<unsigned long long>(sb.start_offset),
        static_cast<unsigned long long>(sb.journal_size),
        static_cast<unsigned long long>(sb.lun_size), sb.block_size);
    std::printf("%llu record(s) to replay; scan stopped: %s\n", static_cast<unsigned long long>(n),
                stop.c_str());
    return 0;
  }
  if (cmd == "recover") {
    uint64_t size = 0;
    uint32_t block = 512;
    for (int i = 3; i + 1 < argc; i += 2) {
      if (std::strcmp(argv[i], "--size") == 0)
        size = std::strtoull(argv[i + 1], nullptr, 0);
      else if (std::strcmp(argv[i], "--block-size") == 0)
        block = static_cast<uint32_t>(std::strtoul(argv[i + 1], nullptr, 0));
      else
        return Usage(std::string("unknown option ") + argv[i]);
    }
    journal::Superblock sb;
    std::string why;
    if (size == 0 && ReadSuper(data, &sb, &why)) {
      size = sb.lun_size;
      block = sb.block_size;
    }
    if (size == 0) return Usage("no superblock to take the size from: give --size");
    JournaledStore::Options o;
    o.data_path = data;
    o.size_bytes = size;
    o.block_size = block;
    if (ReadSuper(data, &sb, &why)) o.journal_bytes = sb.journal_size;
    o.background_checkpoint = false;
    std::unique_ptr<JournaledStore> store;
    JournaledStore::RecoveryReport r;
    const auto s = JournaledStore::Open(o, &store, &r);
    if (!s.ok()) {
      std::fprintf(stderr, "untorn-journal: %s\n", s.message().c_str());
      return 1;
    }
    std::printf(
        "recovered: %llu record(s), %llu bytes replayed in %.3f s; scan stopped: %s; now "
        "epoch %llu\n",
        static_cast<unsigned long long>(r.records_replayed),
        static_cast<unsigned long long>(r.bytes_replayed), r.seconds, r.stop_reason.c_str(),
        static_cast<unsigned long long>(r.epoch));
    return 0;
  }
  return Usage("unknown command " + cmd);
}
