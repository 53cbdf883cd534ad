#include "target/iscsi/buffer_budget.h"

#include <gtest/gtest.h>

namespace untorn::target {
namespace {

TEST(BufferBudget, ChargesUpToTheLimitAndGivesBackOnRelease) {
  BufferBudget b(100);
  BufferBudget::Charge first, second, third;
  ASSERT_TRUE(b.TryCharge(60, &first));
  ASSERT_TRUE(b.TryCharge(40, &second));
  EXPECT_EQ(b.used(), 100u);
  EXPECT_FALSE(b.TryCharge(1, &third));  // full
  second = BufferBudget::Charge();       // released by assignment
  EXPECT_EQ(b.used(), 60u);
  EXPECT_TRUE(b.TryCharge(40, &third));
  {
    BufferBudget::Charge moved = std::move(third);  // ownership moves; released once
    EXPECT_EQ(b.used(), 100u);
  }
  EXPECT_EQ(b.used(), 60u);
}

TEST(BufferBudget, NothingToChargeAlwaysFits) {
  BufferBudget b(10);
  BufferBudget::Charge c, none;
  ASSERT_TRUE(b.TryCharge(10, &c));
  EXPECT_TRUE(b.TryCharge(0, &none));
  EXPECT_EQ(b.used(), 10u);
}

TEST(BufferBudget, ACommandLargerThanTheBudgetRunsOnlyAlone) {
  BufferBudget b(100);
  BufferBudget::Charge small, big;
  ASSERT_TRUE(b.TryCharge(1, &small));
  EXPECT_FALSE(b.TryCharge(500, &big));  // waits for the others
  small = BufferBudget::Charge();
  EXPECT_TRUE(b.TryCharge(500, &big));  // alone: admitted, not refused for ever
  EXPECT_EQ(b.used(), 500u);
  BufferBudget::Charge next;
  EXPECT_FALSE(b.TryCharge(1, &next));
}

}  // namespace
}  // namespace untorn::target
