// On-disk format of the write-ahead journal and its superblock (docs/journal-format.md), shared
// by the writer (JournaledStore), recovery and the offline tool. Pure encoders and decoders;
// all integers little-endian.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "protocol/byte_order.h"

namespace untorn::storage::journal {

using protocol::Bytes;

inline constexpr uint32_t kRecordMagic = 0x524a5455;  // "UTJR"
inline constexpr uint32_t kSuperMagic = 0x42535455;   // "UTSB"
inline constexpr uint16_t kVersion = 1;
inline constexpr size_t kHeaderSize = 48;
inline constexpr size_t kSuperSize = 64;
// Records start on boundaries of the superblock's record alignment: a power of two from 512
// (the default, and what superblocks written before the field existed mean) to 64 KiB, the
// journal device's physical block size when it was started (docs/journal-format.md).
inline constexpr uint64_t kRecordAlign = 512;
inline constexpr uint64_t kMaxRecordAlign = 64 << 10;

enum class RecordKind : uint16_t {
  kAtomic = 1,   // WRITE ATOMIC(16) / COMPARE AND WRITE payload: all or nothing
  kOrdered = 2,  // a plain write journaled to keep its order after an atomic write
};

struct RecordHeader {
  RecordKind kind = RecordKind::kAtomic;
  uint64_t epoch = 0;
  uint64_t sequence = 0;
  uint64_t offset = 0;  // byte offset in the LUN
  uint32_t length = 0;  // payload bytes
  uint32_t crc = 0;     // CRC32C of the header (crc field zero) and the payload
};

// Size a record occupies in the journal, header and padding included.
[[nodiscard]] inline uint64_t RecordSpan(uint32_t payload, uint64_t align = kRecordAlign) {
  return (kHeaderSize + payload + align - 1) / align * align;
}

// The header of a record carrying `payload`, CRC filled in; the record on disk is this, the
// payload, then zeros to RecordSpan(payload.size()).
[[nodiscard]] std::array<uint8_t, kHeaderSize> EncodeRecordHeader(RecordKind kind, uint64_t epoch,
                                                                  uint64_t sequence,
                                                                  uint64_t offset, Bytes payload);
// The whole record, padded to RecordSpan(payload.size()), CRC filled in.
[[nodiscard]] std::vector<uint8_t> EncodeRecord(RecordKind kind, uint64_t epoch, uint64_t sequence,
                                                uint64_t offset, Bytes payload);

// Why a header or record does not decode (recovery stops there).
enum class Invalid { kNone, kMagic, kUnknownVersion, kKind, kLength, kChecksum };
[[nodiscard]] const char* InvalidName(Invalid v);

// Decodes and checks the fixed fields of a header (not the CRC, which needs the payload).
[[nodiscard]] std::optional<RecordHeader> DecodeHeader(Bytes header, Invalid* why);
// True if the CRC in `h` matches `header` bytes and `payload`.
[[nodiscard]] bool CheckCrc(const RecordHeader& h, Bytes header, Bytes payload);

struct Superblock {
  uint64_t epoch = 0;             // records of the live journal carry this epoch
  uint64_t applied_sequence = 0;  // every record up to here is in the data file, durably
  uint64_t journal_size = 0;
  uint64_t lun_size = 0;
  uint32_t block_size = 0;
  uint64_t start_offset = 0;  // journal offset of record applied_sequence + 1 (the live region)
  uint32_t record_align = kRecordAlign;  // records of this epoch start on multiples of this
};
[[nodiscard]] std::vector<uint8_t> EncodeSuperblock(const Superblock& s);
[[nodiscard]] std::optional<Superblock> DecodeSuperblock(Bytes b, std::string* why);

}  // namespace untorn::storage::journal
