// RFC 1982 serial number arithmetic on 32 bits, as iSCSI's CmdSN, StatSN and DataSN use it
// (RFC 7143 §4.2.2.1): a precedes b when b is less than 2^31 ahead of it, across the wrap.
#pragma once

#include <cstdint>

namespace untorn::protocol {

inline bool SerialLess(uint32_t a, uint32_t b) {
  return a != b && static_cast<int32_t>(a - b) < 0;
}

}  // namespace untorn::protocol
