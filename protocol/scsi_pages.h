// Builders for the SCSI data-in pages a disk returns (SPC-4 / SBC-4): standard INQUIRY, VPD pages,
// READ CAPACITY, mode pages, REPORT LUNS. Pure functions of a DiskDescription; each returns the
// full page, and the caller truncates to the allocation length.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace untorn::protocol {

// SBC-4 Block Limits atomic fields (§6.6.4), in logical blocks.
struct AtomicLimits {
  uint32_t max_transfer_length = 0;
  uint32_t alignment = 0;
  uint32_t granularity = 0;
  uint32_t max_transfer_length_with_boundary = 0;
  uint32_t max_boundary_size = 0;
};

struct DiskDescription {
  std::string vendor = "UNTORN";        // 8 bytes, space padded
  std::string product = "untorn disk";  // 16 bytes
  std::string revision = "0001";        // 4 bytes
  std::string serial;                   // unit serial number (VPD 80h)
  uint64_t naa_id = 0;                  // low 60 bits of an NAA 6 designator's vendor part
  std::string target_name;              // SCSI name string designator (VPD 83h)
  uint16_t relative_port = 1;
  uint32_t block_size = 512;
  uint8_t physical_exponent = 0;  // log2(physical / logical block)
  uint64_t block_count = 0;
  bool write_cache = true;
  bool read_only = false;
  bool dpofua = true;
  bool thin = true;                  // LBPME: UNMAP / WRITE SAME UNMAP supported
  uint32_t max_transfer_length = 0;  // blocks
  uint32_t optimal_transfer_length = 0;
  uint32_t max_unmap_lba_count = 0;
  uint32_t max_unmap_descriptors = 0;
  uint64_t max_write_same_length = 0;
  uint8_t max_compare_and_write = 0;
  AtomicLimits atomic;
};

[[nodiscard]] std::vector<uint8_t> StandardInquiry(const DiskDescription& d);
// VPD page by code; empty if unsupported.
[[nodiscard]] std::vector<uint8_t> VpdPage(const DiskDescription& d, uint8_t page);
[[nodiscard]] std::vector<uint8_t> ReadCapacity10(const DiskDescription& d);
[[nodiscard]] std::vector<uint8_t> ReadCapacity16(const DiskDescription& d);
[[nodiscard]] std::vector<uint8_t> ReportLuns(const std::vector<uint16_t>& luns);

// SAM-5 single-level LUN encoding for the 8-byte LUN field (peripheral or flat addressing).
[[nodiscard]] uint64_t EncodeLun(uint16_t lun);
// Decodes an 8-byte LUN field; values it cannot represent decode to 0xFFFF.
[[nodiscard]] uint16_t DecodeLun(uint64_t field);

}  // namespace untorn::protocol
