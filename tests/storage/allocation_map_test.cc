#include "storage/allocation_map.h"

#include <gtest/gtest.h>

#include <limits>

namespace untorn::storage {
namespace {

TEST(AllocationMap, NothingIsKnownAtFirst) {
  AllocationMap m(1 << 30);
  EXPECT_EQ(m.granule(), 4096u);
  EXPECT_FALSE(m.Covered(0, 4096));
  EXPECT_TRUE(m.Covered(12345, 0));
}

TEST(AllocationMap, MarksOnlyGranulesWhollyInsideTheRange) {
  AllocationMap m(1 << 30);
  m.Mark(2048, 3 * 4096, m.Generation());  // [2048, 14336): granules 1 and 2 whole, 0 and 3 in part
  EXPECT_TRUE(m.Covered(4096, 2 * 4096));
  EXPECT_TRUE(m.Covered(5000, 100));
  EXPECT_FALSE(m.Covered(2048, 512));   // granule 0 was only partly allocated
  EXPECT_FALSE(m.Covered(12288, 512));  // as was granule 3
  EXPECT_FALSE(m.Covered(4096, 3 * 4096));
  m.Mark(0, 100, m.Generation());  // smaller than a granule: marks nothing
  EXPECT_FALSE(m.Covered(0, 100));
}

TEST(AllocationMap, ForgetClearsEveryGranuleTheRangeTouches) {
  AllocationMap m(1 << 30);
  m.Mark(0, 16 * 4096, m.Generation());
  m.Forget(4096 + 512, 512);  // inside granule 1
  EXPECT_FALSE(m.Covered(4096, 4096));
  EXPECT_TRUE(m.Covered(0, 4096));
  EXPECT_TRUE(m.Covered(2 * 4096, 14 * 4096));
  m.Forget(10 * 4096, std::numeric_limits<uint64_t>::max() - 10 * 4096);  // as a truncate does
  EXPECT_TRUE(m.Covered(2 * 4096, 8 * 4096));
  EXPECT_FALSE(m.Covered(9 * 4096, 2 * 4096));
}

// PosixFile::Allocate asks FIEMAP about the whole granules its range touches, then marks them.
// A punch-hole of a neighbouring range in the same granule (another writer's UNMAP; the range
// locks do not keep the two apart) can run between the answer and the Mark: the Mark must not
// bring back what the punch-hole forgot, or a later journaled write into the punched blocks
// skips fallocate and meets ENOSPC at apply time instead of being refused up front.
TEST(AllocationMap, MarkAfterAConcurrentForgetMarksNothing) {
  AllocationMap m(1 << 30);
  const uint64_t generation = m.Generation();  // then FIEMAP says granule 0 is allocated
  m.Forget(2048, 512);                         // a punch-hole inside granule 0 meanwhile
  m.Mark(0, 4096, generation);                 // the answer from before the punch-hole
  EXPECT_FALSE(m.Covered(2048, 512));
  m.Mark(0, 4096, m.Generation());  // a lookup after it is believed
  EXPECT_TRUE(m.Covered(2048, 512));
}

TEST(AllocationMap, BitsStayBoundedForHugeFilesAndOffsets) {
  // A 64 TiB file gets 4 MiB granules: 2^24 of them, 2 MiB of bits at most.
  AllocationMap big(uint64_t{64} << 40);
  EXPECT_EQ(big.granule(), 4u << 20);
  // Marks past 2^24 granules of a small file are not remembered (no unbounded growth).
  AllocationMap small(1 << 20);
  const uint64_t far = uint64_t{1} << 50;
  small.Mark(far, 1 << 20, small.Generation());
  EXPECT_FALSE(small.Covered(far, 4096));
  // Ranges that would wrap around are refused, not misread.
  EXPECT_FALSE(small.Covered(std::numeric_limits<uint64_t>::max() - 10, 100));
  small.Mark(std::numeric_limits<uint64_t>::max() - 10, 100, small.Generation());
  small.Forget(std::numeric_limits<uint64_t>::max() - 10, 100);
}

}  // namespace
}  // namespace untorn::storage
