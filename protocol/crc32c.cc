#include "protocol/crc32c.h"

#include <isa-l/crc.h>

#include <climits>

namespace untorn::protocol {

uint32_t Crc32cExtend(uint32_t state, Bytes data) {
  // crc32_iscsi takes an int length and a non-const pointer it does not write through.
  auto* p = const_cast<uint8_t*>(data.data());
  size_t left = data.size();
  while (left > 0) {
    const int n = left > static_cast<size_t>(INT_MAX / 2) ? INT_MAX / 2 : static_cast<int>(left);
    state = crc32_iscsi(p, n, state);
    p += n;
    left -= static_cast<size_t>(n);
  }
  return state;
}

}  // namespace untorn::protocol
