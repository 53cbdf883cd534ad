#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/byte_order.h"
#include "protocol/crc32c.h"
#include "protocol/framing.h"

namespace untorn::protocol {
namespace {

TEST(ByteOrder, BigEndianRoundTripsAtOffsets) {
  std::vector<uint8_t> b(16, 0);
  StoreBe16(b, 1, 0x1234);
  StoreBe24(b, 3, 0xabcdef);
  StoreBe32(b, 6, 0xdeadbeef);
  EXPECT_EQ(b[1], 0x12);
  EXPECT_EQ(b[2], 0x34);
  EXPECT_EQ(b[3], 0xab);
  EXPECT_EQ(b[5], 0xef);
  EXPECT_EQ(b[6], 0xde);
  EXPECT_EQ(b[9], 0xef);
  EXPECT_EQ(LoadBe16(b, 1), 0x1234);
  EXPECT_EQ(LoadBe24(b, 3), 0xabcdefu);
  EXPECT_EQ(LoadBe32(b, 6), 0xdeadbeefu);
  StoreBe64(b, 8, 0x0102030405060708ULL);
  EXPECT_EQ(b[8], 0x01);
  EXPECT_EQ(b[15], 0x08);
  EXPECT_EQ(LoadBe64(b, 8), 0x0102030405060708ULL);
}

TEST(ByteOrder, LittleEndianIsLeastSignificantFirst) {
  std::vector<uint8_t> b(12, 0);
  StoreLe32(b, 0, 0x11223344);
  EXPECT_EQ(b[0], 0x44);
  EXPECT_EQ(b[3], 0x11);
  StoreLe64(b, 4, 0x8877665544332211ULL);
  EXPECT_EQ(b[4], 0x11);
  EXPECT_EQ(b[11], 0x88);
  EXPECT_EQ(LoadLe32(b, 0), 0x11223344u);
  EXPECT_EQ(LoadLe64(b, 4), 0x8877665544332211ULL);
}

TEST(Crc32c, CheckValueOf123456789) {
  const std::string s = "123456789";
  EXPECT_EQ(Crc32c(Bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size())), 0xE3069283u);
}

// RFC 7143 appendix B.4 (from RFC 3720 B.4): CRC32C examples over 32-byte patterns.
TEST(Crc32c, Rfc3720AppendixB4Vectors) {
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xff), inc(32), dec(32);
  for (int i = 0; i < 32; ++i) {
    inc[i] = static_cast<uint8_t>(i);
    dec[i] = static_cast<uint8_t>(31 - i);
  }
  EXPECT_EQ(Crc32c(zeros), 0x8a9136aau);
  EXPECT_EQ(Crc32c(ones), 0x62a8ab43u);
  EXPECT_EQ(Crc32c(inc), 0x46dd794eu);
  EXPECT_EQ(Crc32c(dec), 0x113fdb5cu);
}

TEST(Crc32c, IncrementalEqualsOneShot) {
  std::vector<uint8_t> data(1000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
  uint32_t s = kCrc32cInit;
  s = Crc32cExtend(s, Bytes(data).first(333));
  s = Crc32cExtend(s, Bytes(data).subspan(333));
  EXPECT_EQ(Crc32cFinish(s), Crc32c(data));
}

TEST(Framing, DataDigestCoversPadding) {
  const std::vector<uint8_t> data = {1, 2, 3};  // padded with one zero byte
  const std::vector<uint8_t> padded = {1, 2, 3, 0};
  EXPECT_EQ(DataDigest(data), Crc32c(padded));
}

TEST(Framing, SerializePadsAndAppendsDigestsLittleEndian) {
  Pdu p;
  p.bhs[0] = 0x20;
  p.data = {0xaa, 0xbb, 0xcc, 0xdd, 0xee};
  p.SyncLengths();
  const auto wire = Serialize(p, true, true);
  ASSERT_EQ(wire.size(), 48u + 4 + 8 + 4);
  EXPECT_EQ(LoadBe24(wire, 5), 5u);
  const uint32_t hd = HeaderDigest(p);
  EXPECT_EQ(LoadLe32(wire, 48), hd);
  EXPECT_EQ(wire[52 + 5], 0);  // padding
  EXPECT_EQ(LoadLe32(wire, 60), DataDigest(p.data));
  const FrameLayout l = LayoutOf(p.bhs);
  EXPECT_EQ(l.data_bytes, 5u);
  EXPECT_EQ(l.padded_data_bytes, 8u);
}

// A data segment sent from its own buffer goes on the wire byte for byte as Serialize would
// send the whole PDU: every padding length, with and without each digest, with an AHS.
TEST(Framing, FrameAroundASharedDataSegmentMatchesSerialize) {
  for (size_t n : {1u, 2u, 3u, 4u, 5u, 4093u, 8192u}) {
    for (int digests = 0; digests < 4; ++digests) {
      const bool hd = (digests & 1) != 0, dd = (digests & 2) != 0;
      Pdu whole;
      whole.bhs[0] = 0x25;
      whole.ahs = {0, 1, 2, 0};
      whole.data.resize(n);
      for (size_t i = 0; i < n; ++i) whole.data[i] = static_cast<uint8_t>(i * 7 + 1);
      whole.SyncLengths();
      Pdu header = whole;
      header.data.clear();  // DataSegmentLength still says n
      const FrameEdges e = FrameAround(header, whole.data, hd, dd);
      std::vector<uint8_t> wire = e.head;
      wire.insert(wire.end(), whole.data.begin(), whole.data.end());
      wire.insert(wire.end(), e.tail.begin(),
                  e.tail.begin() + static_cast<ptrdiff_t>(e.tail_length));
      EXPECT_EQ(wire, Serialize(whole, hd, dd)) << n << " bytes, digests " << digests;
    }
  }
}

}  // namespace
}  // namespace untorn::protocol
