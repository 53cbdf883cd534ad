// Byte-order helpers: the only place where multi-byte wire and disk fields are read or written.
// SCSI and iSCSI are big-endian; the journal (storage/) is little-endian. Callers guarantee the
// span is large enough (all uses are on fixed-size headers checked by their decoder).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace untorn::protocol {

using Bytes = std::span<const uint8_t>;
using MutableBytes = std::span<uint8_t>;

inline uint16_t LoadBe16(Bytes b, size_t off) {
  return static_cast<uint16_t>((b[off] << 8) | b[off + 1]);
}
inline uint32_t LoadBe24(Bytes b, size_t off) {
  return (uint32_t{b[off]} << 16) | (uint32_t{b[off + 1]} << 8) | b[off + 2];
}
inline uint32_t LoadBe32(Bytes b, size_t off) {
  return (uint32_t{b[off]} << 24) | (uint32_t{b[off + 1]} << 16) | (uint32_t{b[off + 2]} << 8) |
         b[off + 3];
}
inline uint64_t LoadBe64(Bytes b, size_t off) {
  return (uint64_t{LoadBe32(b, off)} << 32) | LoadBe32(b, off + 4);
}
inline void StoreBe16(MutableBytes b, size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v >> 8);
  b[off + 1] = static_cast<uint8_t>(v);
}
inline void StoreBe24(MutableBytes b, size_t off, uint32_t v) {
  b[off] = static_cast<uint8_t>(v >> 16);
  b[off + 1] = static_cast<uint8_t>(v >> 8);
  b[off + 2] = static_cast<uint8_t>(v);
}
inline void StoreBe32(MutableBytes b, size_t off, uint32_t v) {
  b[off] = static_cast<uint8_t>(v >> 24);
  b[off + 1] = static_cast<uint8_t>(v >> 16);
  b[off + 2] = static_cast<uint8_t>(v >> 8);
  b[off + 3] = static_cast<uint8_t>(v);
}
inline void StoreBe64(MutableBytes b, size_t off, uint64_t v) {
  StoreBe32(b, off, static_cast<uint32_t>(v >> 32));
  StoreBe32(b, off + 4, static_cast<uint32_t>(v));
}

inline uint32_t LoadLe32(Bytes b, size_t off) {
  return (uint32_t{b[off + 3]} << 24) | (uint32_t{b[off + 2]} << 16) | (uint32_t{b[off + 1]} << 8) |
         b[off];
}
inline uint64_t LoadLe64(Bytes b, size_t off) {
  return (uint64_t{LoadLe32(b, off + 4)} << 32) | LoadLe32(b, off);
}
inline void StoreLe32(MutableBytes b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void StoreLe64(MutableBytes b, size_t off, uint64_t v) {
  for (int i = 0; i < 8; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace untorn::protocol
