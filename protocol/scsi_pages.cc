#include "protocol/scsi_pages.h"

#include <algorithm>

#include "protocol/byte_order.h"

namespace untorn::protocol {
namespace {

void PutPadded(std::vector<uint8_t>& b, size_t off, const std::string& s, size_t len) {
  for (size_t i = 0; i < len; ++i) b[off + i] = i < s.size() ? static_cast<uint8_t>(s[i]) : ' ';
}

std::vector<uint8_t> VpdHeader(uint8_t page, size_t length) {
  std::vector<uint8_t> b(4 + length, 0);
  b[1] = page;
  StoreBe16(b, 2, static_cast<uint16_t>(length));
  return b;
}

void AppendDesignator(std::vector<uint8_t>& out, uint8_t code_set, uint8_t assoc_type,
                      const std::vector<uint8_t>& id) {
  out.push_back(code_set);  // PROTOCOL IDENTIFIER 0 / CODE SET
  out.push_back(assoc_type);
  out.push_back(0);
  out.push_back(static_cast<uint8_t>(id.size()));
  out.insert(out.end(), id.begin(), id.end());
}

std::vector<uint8_t> DeviceIdentification(const DiskDescription& d) {
  std::vector<uint8_t> body;
  // NAA 6 (IEEE registered extended), SPC-4 §7.8.6.6.6: 16 bytes, binary, LU association.
  std::vector<uint8_t> naa(16, 0);
  StoreBe64(naa, 0, (uint64_t{0x6} << 60) | (d.naa_id & 0x0fffffffffffffffULL));
  StoreBe64(naa, 8, d.naa_id * 0x9e3779b97f4a7c15ULL);
  AppendDesignator(body, 0x01, 0x03, naa);
  // T10 vendor ID based (type 1), ASCII: vendor (8) + serial.
  std::vector<uint8_t> t10(8 + d.serial.size(), ' ');
  PutPadded(t10, 0, d.vendor, 8);
  std::copy(d.serial.begin(), d.serial.end(), t10.begin() + 8);
  AppendDesignator(body, 0x02, 0x01, t10);
  // Relative target port (type 4), target port association, iSCSI protocol.
  std::vector<uint8_t> rel(4, 0);
  StoreBe16(rel, 2, d.relative_port);
  AppendDesignator(body, 0x51, 0x94, rel);
  // SCSI name string of the target device (type 8, association 2), UTF-8, NUL padded to 4.
  if (!d.target_name.empty()) {
    std::vector<uint8_t> name(d.target_name.begin(), d.target_name.end());
    name.resize((name.size() + 4) & ~size_t{3}, 0);
    AppendDesignator(body, 0x53, 0xa8, name);
  }
  auto b = VpdHeader(0x83, body.size());
  std::copy(body.begin(), body.end(), b.begin() + 4);
  return b;
}

std::vector<uint8_t> BlockLimits(const DiskDescription& d) {  // SBC-4 §6.6.4, table 236
  auto b = VpdHeader(0xb0, 0x3c);
  b[4] = 0x01;  // WSNZ: WRITE SAME with 0 blocks is not supported
  b[5] = d.max_compare_and_write;
  StoreBe16(b, 6, static_cast<uint16_t>(1u << d.physical_exponent));
  StoreBe32(b, 8, d.max_transfer_length);
  StoreBe32(b, 12, d.optimal_transfer_length);
  StoreBe32(b, 16, 0);  // MAXIMUM PREFETCH LENGTH
  if (d.thin) {
    StoreBe32(b, 20, d.max_unmap_lba_count);
    StoreBe32(b, 24, d.max_unmap_descriptors);
    StoreBe32(b, 28, 1u << d.physical_exponent);  // OPTIMAL UNMAP GRANULARITY
  }
  StoreBe64(b, 36, d.max_write_same_length);
  StoreBe32(b, 44, d.atomic.max_transfer_length);
  StoreBe32(b, 48, d.atomic.alignment);
  StoreBe32(b, 52, d.atomic.granularity);
  StoreBe32(b, 56, d.atomic.max_transfer_length_with_boundary);
  StoreBe32(b, 60, d.atomic.max_boundary_size);
  return b;
}

}  // namespace

std::vector<uint8_t> StandardInquiry(const DiskDescription& d) {  // SPC-4 §6.6.2, table 142
  std::vector<uint8_t> b(96, 0);
  b[0] = 0x00;  // peripheral qualifier 0, direct-access block device
  b[2] = 0x06;  // VERSION: SPC-4
  b[3] = 0x12;  // HISUP, RESPONSE DATA FORMAT 2
  b[4] = static_cast<uint8_t>(b.size() - 5);
  b[5] = 0x00;
  b[6] = 0x00;
  b[7] = 0x02;  // CMDQUE
  PutPadded(b, 8, d.vendor, 8);
  PutPadded(b, 16, d.product, 16);
  PutPadded(b, 32, d.revision, 4);
  // Version descriptors (SPC-4 table 145): SAM-5, iSCSI, SPC-4, SBC-3.
  StoreBe16(b, 58, 0x00a0);
  StoreBe16(b, 60, 0x0960);
  StoreBe16(b, 62, 0x0460);
  StoreBe16(b, 64, 0x04c0);
  return b;
}

std::vector<uint8_t> VpdPage(const DiskDescription& d, uint8_t page) {
  switch (page) {
    case 0x00: {  // Supported VPD pages
      static constexpr uint8_t kPages[] = {0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2};
      auto b = VpdHeader(0x00, sizeof(kPages));
      std::copy(std::begin(kPages), std::end(kPages), b.begin() + 4);
      return b;
    }
    case 0x80: {  // Unit Serial Number
      auto b = VpdHeader(0x80, d.serial.size());
      std::copy(d.serial.begin(), d.serial.end(), b.begin() + 4);
      return b;
    }
    case 0x83:
      return DeviceIdentification(d);
    case 0xb0:
      return BlockLimits(d);
    case 0xb1: {  // Block Device Characteristics, SBC-4 §6.6.2
      auto b = VpdHeader(0xb1, 0x3c);
      StoreBe16(b, 4, 0x0001);  // MEDIUM ROTATION RATE: non-rotating
      b[7] = 0x05;              // NOMINAL FORM FACTOR: less than 1.8 inch
      return b;
    }
    case 0xb2: {  // Logical Block Provisioning, SBC-4 §6.6.5
      auto b = VpdHeader(0xb2, 4);
      b[4] = 0;                                      // THRESHOLD EXPONENT
      if (d.thin) b[5] = 0x80 | 0x40 | 0x20 | 0x04;  // LBPU, LBPWS, LBPWS10, LBPRZ
      b[6] = d.thin ? 0x02 : 0x00;                   // PROVISIONING TYPE: thin
      return b;
    }
    default:
      return {};
  }
}

std::vector<uint8_t> ReadCapacity10(const DiskDescription& d) {
  std::vector<uint8_t> b(8, 0);
  const uint64_t last = d.block_count - 1;
  StoreBe32(b, 0, last > 0xfffffffeULL ? 0xffffffffu : static_cast<uint32_t>(last));
  StoreBe32(b, 4, d.block_size);
  return b;
}

std::vector<uint8_t> ReadCapacity16(const DiskDescription& d) {  // SBC-4 §5.20.2
  std::vector<uint8_t> b(32, 0);
  StoreBe64(b, 0, d.block_count - 1);
  StoreBe32(b, 8, d.block_size);
  b[13] = d.physical_exponent & 0x0f;
  if (d.thin) b[14] = 0x80 | 0x40;  // LBPME, LBPRZ
  return b;
}

std::vector<uint8_t> ReportLuns(const std::vector<uint16_t>& luns) {
  std::vector<uint8_t> b(8 + 8 * luns.size(), 0);
  StoreBe32(b, 0, static_cast<uint32_t>(8 * luns.size()));
  for (size_t i = 0; i < luns.size(); ++i) StoreBe64(b, 8 + 8 * i, EncodeLun(luns[i]));
  return b;
}

uint64_t EncodeLun(uint16_t lun) {
  if (lun < 256) return uint64_t{lun} << 48;
  return (uint64_t{0x4000u | (lun & 0x3fffu)}) << 48;  // flat space addressing
}

uint16_t DecodeLun(uint64_t field) {
  const auto first = static_cast<uint16_t>(field >> 48);
  if ((field & 0x0000ffffffffffffULL) != 0) return 0xffff;
  switch (first >> 14) {
    case 0:
      return (first >> 8) == 0 ? static_cast<uint16_t>(first & 0xff) : 0xffff;
    case 1:
      return first & 0x3fff;
    default:
      return 0xffff;
  }
}

}  // namespace untorn::protocol
