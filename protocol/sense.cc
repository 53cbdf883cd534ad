#include "protocol/sense.h"

#include "protocol/byte_order.h"

namespace untorn::protocol {

std::vector<uint8_t> EncodeFixedSense(const Sense& s) {
  std::vector<uint8_t> b(18, 0);
  b[0] = 0x70;  // current error, fixed format
  b[2] = static_cast<uint8_t>(s.key);
  if (s.information) {
    b[0] |= 0x80;  // VALID
    StoreBe32(b, 3, *s.information);
  }
  b[7] = 10;  // ADDITIONAL SENSE LENGTH
  b[12] = s.asc;
  b[13] = s.ascq;
  if (s.field) {
    b[15] = 0x80;                                                                    // SKSV
    if (s.field->in_cdb) b[15] |= 0x40;                                              // C/D
    if (s.field->bit) b[15] |= static_cast<uint8_t>(0x08 | (*s.field->bit & 0x07));  // BPV
    StoreBe16(b, 16, s.field->byte);
  }
  return b;
}

}  // namespace untorn::protocol
