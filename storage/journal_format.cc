#include "storage/journal_format.h"

#include <algorithm>

#include "protocol/crc32c.h"

namespace untorn::storage::journal {

using protocol::LoadLe32;
using protocol::LoadLe64;
using protocol::StoreLe32;
using protocol::StoreLe64;

namespace {

uint16_t LoadLe16(Bytes b, size_t off) { return static_cast<uint16_t>(b[off] | (b[off + 1] << 8)); }
void StoreLe16(std::span<uint8_t> b, size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v);
  b[off + 1] = static_cast<uint8_t>(v >> 8);
}

uint32_t Crc(Bytes header, Bytes payload) {
  uint8_t h[kHeaderSize];
  std::copy_n(header.begin(), kHeaderSize, h);
  StoreLe32(h, 40, 0);
  uint32_t s = protocol::Crc32cExtend(protocol::kCrc32cInit, Bytes(h, kHeaderSize));
  s = protocol::Crc32cExtend(s, payload);
  return protocol::Crc32cFinish(s);
}

}  // namespace

std::array<uint8_t, kHeaderSize> EncodeRecordHeader(RecordKind kind, uint64_t epoch,
                                                    uint64_t sequence, uint64_t offset,
                                                    Bytes payload) {
  std::array<uint8_t, kHeaderSize> h{};
  StoreLe32(h, 0, kRecordMagic);
  StoreLe16(h, 4, kVersion);
  StoreLe16(h, 6, static_cast<uint16_t>(kind));
  StoreLe64(h, 8, epoch);
  StoreLe64(h, 16, sequence);
  StoreLe64(h, 24, offset);
  StoreLe32(h, 32, static_cast<uint32_t>(payload.size()));
  StoreLe32(h, 40, Crc(h, payload));
  return h;
}

std::vector<uint8_t> EncodeRecord(RecordKind kind, uint64_t epoch, uint64_t sequence,
                                  uint64_t offset, Bytes payload) {
  std::vector<uint8_t> r(RecordSpan(static_cast<uint32_t>(payload.size())), 0);
  const auto h = EncodeRecordHeader(kind, epoch, sequence, offset, payload);
  std::copy(h.begin(), h.end(), r.begin());
  std::copy(payload.begin(), payload.end(), r.begin() + kHeaderSize);
  return r;
}

const char* InvalidName(Invalid v) {
  switch (v) {
    case Invalid::kNone:
      return "none";
    case Invalid::kMagic:
      return "bad magic (end of journal or torn header)";
    case Invalid::kUnknownVersion:
      return "unknown version";
    case Invalid::kKind:
      return "unknown record kind";
    case Invalid::kLength:
      return "impossible length";
    case Invalid::kChecksum:
      return "checksum mismatch (torn or corrupt record)";
  }
  return "?";
}

std::optional<RecordHeader> DecodeHeader(Bytes header, Invalid* why) {
  *why = Invalid::kNone;
  if (header.size() < kHeaderSize || LoadLe32(header, 0) != kRecordMagic) {
    *why = Invalid::kMagic;
    return std::nullopt;
  }
  if (LoadLe16(header, 4) != kVersion) {
    *why = Invalid::kUnknownVersion;
    return std::nullopt;
  }
  RecordHeader h;
  const uint16_t kind = LoadLe16(header, 6);
  if (kind != static_cast<uint16_t>(RecordKind::kAtomic) &&
      kind != static_cast<uint16_t>(RecordKind::kOrdered)) {
    *why = Invalid::kKind;
    return std::nullopt;
  }
  h.kind = static_cast<RecordKind>(kind);
  h.epoch = LoadLe64(header, 8);
  h.sequence = LoadLe64(header, 16);
  h.offset = LoadLe64(header, 24);
  h.length = LoadLe32(header, 32);
  h.crc = LoadLe32(header, 40);
  if (h.length == 0 || h.length % 512 != 0 || h.offset % 512 != 0 || LoadLe32(header, 36) != 0 ||
      LoadLe32(header, 44) != 0) {
    *why = Invalid::kLength;
    return std::nullopt;
  }
  return h;
}

bool CheckCrc(const RecordHeader& h, Bytes header, Bytes payload) {
  return payload.size() == h.length && Crc(header, payload) == h.crc;
}

std::vector<uint8_t> EncodeSuperblock(const Superblock& s) {
  std::vector<uint8_t> b(kSuperSize, 0);
  StoreLe32(b, 0, kSuperMagic);
  StoreLe32(b, 4, kVersion);
  StoreLe64(b, 8, s.epoch);
  StoreLe64(b, 16, s.applied_sequence);
  StoreLe64(b, 24, s.journal_size);
  StoreLe64(b, 32, s.lun_size);
  StoreLe32(b, 40, s.block_size);
  StoreLe32(b, 44, s.record_align);
  StoreLe64(b, 48, s.start_offset);
  StoreLe32(b, 60, protocol::Crc32c(Bytes(b).first(60)));
  return b;
}

std::optional<Superblock> DecodeSuperblock(Bytes b, std::string* why) {
  if (b.size() < kSuperSize || LoadLe32(b, 0) != kSuperMagic) {
    *why = "not an untorn superblock";
    return std::nullopt;
  }
  if (LoadLe32(b, 60) != protocol::Crc32c(b.first(60))) {
    *why = "superblock checksum mismatch";
    return std::nullopt;
  }
  if (LoadLe32(b, 4) != kVersion) {
    *why = "unknown superblock version " + std::to_string(LoadLe32(b, 4));
    return std::nullopt;
  }
  Superblock s;
  s.epoch = LoadLe64(b, 8);
  s.applied_sequence = LoadLe64(b, 16);
  s.journal_size = LoadLe64(b, 24);
  s.lun_size = LoadLe64(b, 32);
  s.block_size = LoadLe32(b, 40);
  s.start_offset = LoadLe64(b, 48);
  const uint32_t align = LoadLe32(b, 44);
  s.record_align = align == 0 ? kRecordAlign : align;  // 0: written before the field existed
  if (s.record_align < kRecordAlign || s.record_align > kMaxRecordAlign ||
      (s.record_align & (s.record_align - 1)) != 0) {
    *why = "superblock record alignment " + std::to_string(align) + " is not a power of two " +
           "from 512 to 65536";
    return std::nullopt;
  }
  if (s.start_offset % s.record_align != 0 ||
      (s.journal_size != 0 && s.start_offset >= s.journal_size)) {
    *why =
        "superblock start offset " + std::to_string(s.start_offset) + " is not a record position";
    return std::nullopt;
  }
  return s;
}

}  // namespace untorn::storage::journal
