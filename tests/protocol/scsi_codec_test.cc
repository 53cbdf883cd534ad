#include <gtest/gtest.h>

#include "protocol/cdb.h"
#include "protocol/scsi_pages.h"
#include "protocol/sense.h"

namespace untorn::protocol {
namespace {

TEST(Cdb, LengthFromGroupCode) {
  EXPECT_EQ(CdbLengthForOpcode(0x08), 6u);
  EXPECT_EQ(CdbLengthForOpcode(0x28), 10u);
  EXPECT_EQ(CdbLengthForOpcode(0x55), 10u);
  EXPECT_EQ(CdbLengthForOpcode(0x88), 16u);
  EXPECT_EQ(CdbLengthForOpcode(0xa8), 12u);
  EXPECT_EQ(CdbLengthForOpcode(0x7f), 0u);
}

// SBC-4 table 86: WRITE ATOMIC(16). WRPROTECT 0, DPO, FUA, LBA 0x0102030405060708,
// ATOMIC BOUNDARY 0x0010, TRANSFER LENGTH 0x0020, GROUP 5.
TEST(Cdb, DecodesWriteAtomic16) {
  const std::vector<uint8_t> cdb = {0x9c, 0x18, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
                                    0x07, 0x08, 0x00, 0x10, 0x00, 0x20, 0x05, 0x00};
  const auto c = DecodeBlockCdb(cdb);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->opcode, 0x9c);
  EXPECT_EQ(c->lba, 0x0102030405060708ULL);
  EXPECT_EQ(c->atomic_boundary, 0x10);
  EXPECT_EQ(c->blocks, 0x20u);
  EXPECT_EQ(c->group, 5);
  EXPECT_TRUE(c->dpo);
  EXPECT_TRUE(c->fua);
  EXPECT_EQ(c->wrprotect, 0);
  EXPECT_EQ(c->length_offset, 12);
}

TEST(Cdb, WriteAtomic16WrprotectBits) {
  const std::vector<uint8_t> cdb = {0x9c, 0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0};
  EXPECT_EQ(DecodeBlockCdb(cdb)->wrprotect, 5);
}

TEST(Cdb, Read6ZeroLengthMeans256) {
  const std::vector<uint8_t> cdb = {0x08, 0x1f, 0xff, 0xff, 0x00, 0x00};
  const auto c = DecodeBlockCdb(cdb);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->lba, 0x1fffffu);
  EXPECT_EQ(c->blocks, 256u);
}

TEST(Cdb, Read10Write12Read16Fields) {
  const std::vector<uint8_t> r10 = {0x28, 0x08, 0x00, 0x00, 0x10, 0x00, 0x03, 0x00, 0x80, 0x00};
  auto c = DecodeBlockCdb(r10);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->lba, 0x1000u);
  EXPECT_EQ(c->blocks, 0x80u);
  EXPECT_EQ(c->group, 3);
  EXPECT_TRUE(c->fua);
  const std::vector<uint8_t> w12 = {0xaa, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0};
  c = DecodeBlockCdb(w12);
  EXPECT_EQ(c->lba, 1u);
  EXPECT_EQ(c->blocks, 256u);
  const std::vector<uint8_t> r16 = {0x88, 0,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0,    0,    0,    1,    0,    0};
  c = DecodeBlockCdb(r16);
  EXPECT_EQ(c->lba, ~0ULL);
  EXPECT_EQ(c->blocks, 1u);
}

TEST(Cdb, CompareAndWriteUsesOneByteLength) {
  const std::vector<uint8_t> cdb = {0x89, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 4, 0, 0};
  const auto c = DecodeBlockCdb(cdb);
  EXPECT_EQ(c->lba, 9u);
  EXPECT_EQ(c->blocks, 4u);
}

TEST(Cdb, NonBlockCommandsAndShortCdbsDoNotDecode) {
  EXPECT_FALSE(DecodeBlockCdb(std::vector<uint8_t>{0x12, 0, 0, 0, 0, 0}));
  EXPECT_FALSE(DecodeBlockCdb(std::vector<uint8_t>{0x88, 0, 0}));
}

TEST(Cdb, ControlByteNacaAndLinkAreRefused) {
  std::vector<uint8_t> cdb(10, 0);
  cdb[0] = 0x28;
  EXPECT_FALSE(CheckControlByte(cdb));
  cdb[9] = 0x04;
  auto s = CheckControlByte(cdb);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->asc, 0x24);
  EXPECT_EQ(s->field->byte, 9);
  EXPECT_EQ(*s->field->bit, 2);
}

// SPC-4 table 48: fixed format sense with a sense-key specific field pointer.
TEST(Sense, FixedFormatWithFieldPointer) {
  const auto b = EncodeFixedSense(sense::InvalidFieldInCdb(12));
  ASSERT_EQ(b.size(), 18u);
  EXPECT_EQ(b[0], 0x70);
  EXPECT_EQ(b[2], 0x05);
  EXPECT_EQ(b[7], 10);
  EXPECT_EQ(b[12], 0x24);
  EXPECT_EQ(b[13], 0x00);
  EXPECT_EQ(b[15], 0xc0);  // SKSV | C/D
  EXPECT_EQ(b[16], 0x00);
  EXPECT_EQ(b[17], 12);
}

TEST(Sense, BitPointerAndInformation) {
  Sense s = sense::InvalidFieldInCdb(1, 7);
  s.information = 0x1234;
  const auto b = EncodeFixedSense(s);
  EXPECT_EQ(b[0], 0xf0);  // VALID
  EXPECT_EQ(LoadBe32(b, 3), 0x1234u);
  EXPECT_EQ(b[15], 0xc0 | 0x08 | 7);
  EXPECT_EQ(b[17], 1);
  const auto lba = EncodeFixedSense(sense::LbaOutOfRange());
  EXPECT_EQ(lba[12], 0x21);
  EXPECT_EQ(lba[15], 0);
}

DiskDescription Disk() {
  DiskDescription d;
  d.serial = "abc";
  d.block_count = 2097152;
  d.block_size = 512;
  d.max_transfer_length = 16384;
  d.optimal_transfer_length = 2048;
  d.max_unmap_lba_count = 1 << 20;
  d.max_unmap_descriptors = 256;
  d.max_write_same_length = 16384;
  d.max_compare_and_write = 255;
  d.atomic = {1024, 8, 8, 0, 0};
  return d;
}

// SBC-4 table 236, Block Limits VPD page: 64 bytes with atomic fields at 44..63.
TEST(Pages, BlockLimitsBytes) {
  const auto b = VpdPage(Disk(), 0xb0);
  ASSERT_EQ(b.size(), 64u);
  EXPECT_EQ(b[1], 0xb0);
  EXPECT_EQ(LoadBe16(b, 2), 0x3c);
  EXPECT_EQ(b[4] & 1, 1);  // WSNZ
  EXPECT_EQ(b[5], 255);
  EXPECT_EQ(LoadBe32(b, 8), 16384u);
  EXPECT_EQ(LoadBe32(b, 12), 2048u);
  EXPECT_EQ(LoadBe32(b, 20), 1u << 20);
  EXPECT_EQ(LoadBe32(b, 24), 256u);
  EXPECT_EQ(LoadBe64(b, 36), 16384u);
  EXPECT_EQ(LoadBe32(b, 44), 1024u);
  EXPECT_EQ(LoadBe32(b, 48), 8u);
  EXPECT_EQ(LoadBe32(b, 52), 8u);
  EXPECT_EQ(LoadBe32(b, 56), 0u);
  EXPECT_EQ(LoadBe32(b, 60), 0u);
}

TEST(Pages, SupportedVpdListsBlockPages) {
  const auto b = VpdPage(Disk(), 0x00);
  EXPECT_EQ(std::vector<uint8_t>(b.begin() + 4, b.end()),
            (std::vector<uint8_t>{0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2}));
  EXPECT_TRUE(VpdPage(Disk(), 0x99).empty());
}

TEST(Pages, StandardInquiryIsSpc4WithVersionDescriptors) {
  const auto b = StandardInquiry(Disk());
  EXPECT_EQ(b[0], 0x00);
  EXPECT_EQ(b[2], 0x06);
  EXPECT_EQ(b[3] & 0x0f, 2);
  EXPECT_EQ(b[4], b.size() - 5);
  EXPECT_EQ(b[7] & 0x02, 0x02);  // CMDQUE
  EXPECT_EQ(std::string(b.begin() + 8, b.begin() + 16), "UNTORN  ");
  EXPECT_EQ(LoadBe16(b, 62), 0x0460);
  EXPECT_EQ(LoadBe16(b, 64), 0x04c0);
}

TEST(Pages, ReadCapacity16) {
  DiskDescription d = Disk();
  d.physical_exponent = 3;
  const auto b = ReadCapacity16(d);
  EXPECT_EQ(LoadBe64(b, 0), 2097151u);
  EXPECT_EQ(LoadBe32(b, 8), 512u);
  EXPECT_EQ(b[13] & 0x0f, 3);
  EXPECT_EQ(b[14] & 0xc0, 0xc0);  // LBPME | LBPRZ
}

TEST(Pages, ReadCapacity10SaturatesLargeDisks) {
  DiskDescription d = Disk();
  d.block_count = 1ULL << 33;
  EXPECT_EQ(LoadBe32(ReadCapacity10(d), 0), 0xffffffffu);
}

TEST(Pages, LunEncodingRoundTrips) {
  EXPECT_EQ(EncodeLun(1), 0x0001000000000000ULL);
  EXPECT_EQ(EncodeLun(300), 0x412c000000000000ULL);
  EXPECT_EQ(DecodeLun(EncodeLun(0)), 0);
  EXPECT_EQ(DecodeLun(EncodeLun(255)), 255);
  EXPECT_EQ(DecodeLun(EncodeLun(300)), 300);
  EXPECT_EQ(DecodeLun(0x0001000000000001ULL), 0xffff);
  const auto r = ReportLuns({0, 3});
  EXPECT_EQ(LoadBe32(r, 0), 16u);
  EXPECT_EQ(LoadBe64(r, 16), EncodeLun(3));
}

}  // namespace
}  // namespace untorn::protocol
