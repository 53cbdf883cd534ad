// libFuzzer target: journal decoding and the recovery scan on an arbitrary journal file. The
// first 64 bytes are the superblock (its CRC recomputed half the time, so the scan is reached),
// the rest is the journal; the scan must stop by itself and visit only records that decode.
#include <cstddef>
#include <cstdint>

#include "protocol/crc32c.h"
#include "storage/journal_format.h"
#include "storage/journal_scan.h"
#include "storage/mem_file_system.h"

using namespace untorn::storage;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < journal::kSuperSize) return 0;
  std::vector<uint8_t> super(data, data + journal::kSuperSize);
  if (super[0] & 1) {
    untorn::protocol::StoreLe32(super, 60,
                                untorn::protocol::Crc32c(untorn::protocol::Bytes(super).first(60)));
  }
  std::string why;
  auto sb = journal::DecodeSuperblock(super, &why);
  const untorn::protocol::Bytes rest(data + journal::kSuperSize, size - journal::kSuperSize);
  journal::Invalid invalid;
  if (rest.size() >= journal::kHeaderSize) {
    if (auto h = journal::DecodeHeader(rest.first(journal::kHeaderSize), &invalid)) {
      const size_t n = std::min<size_t>(h->length, rest.size() - journal::kHeaderSize);
      (void)journal::CheckCrc(*h, rest.first(journal::kHeaderSize),
                              rest.subspan(journal::kHeaderSize, n));
    }
  }
  if (!sb) return 0;
  // A superblock that decodes encodes back to the same fields.
  const auto again = journal::DecodeSuperblock(journal::EncodeSuperblock(*sb), &why);
  if (!again || again->epoch != sb->epoch || again->applied_sequence != sb->applied_sequence ||
      again->start_offset != sb->start_offset || again->record_align != sb->record_align ||
      again->journal_size != sb->journal_size) {
    __builtin_trap();
  }
  MemFileSystem fs;
  std::unique_ptr<File> f;
  if (!fs.Open("/j", true, false, &f).ok()) __builtin_trap();
  if (!f->PWrite(0, rest).ok()) __builtin_trap();
  journal::ScanResult result;
  uint64_t visited = 0;
  const Status s = journal::Scan(
      *f, *sb, 1 << 20,
      [&](const journal::RecordHeader& h, uint64_t pos, untorn::protocol::Bytes payload) {
        if (payload.size() != h.length ||
            pos + journal::RecordSpan(h.length, sb->record_align) > rest.size() ||
            pos % sb->record_align != 0) {
          __builtin_trap();
        }
        ++visited;
        return Status::Ok();
      },
      &result);
  if (!s.ok() || visited != result.records) __builtin_trap();
  return 0;
}
