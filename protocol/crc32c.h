// CRC32C (Castagnoli), as used by iSCSI header/data digests (RFC 7143 §13.1, appendix B.4) and
// by the journal. Backed by ISA-L's crc32_iscsi, which selects the fastest kernel at run time.
#pragma once

#include <cstdint>

#include "protocol/byte_order.h"

namespace untorn::protocol {

// Running CRC: start from kCrc32cInit, feed pieces with Crc32cExtend, finish with Crc32cFinish.
inline constexpr uint32_t kCrc32cInit = 0xFFFFFFFFu;
[[nodiscard]] uint32_t Crc32cExtend(uint32_t state, Bytes data);
[[nodiscard]] inline uint32_t Crc32cFinish(uint32_t state) { return ~state; }

// One-shot CRC32C of `data` (check value of "123456789" is 0xE3069283).
[[nodiscard]] inline uint32_t Crc32c(Bytes data) {
  return Crc32cFinish(Crc32cExtend(kCrc32cInit, data));
}

}  // namespace untorn::protocol
