// Group commit with asynchronous waiters (GroupSync::WhenDurable): callbacks run only after a
// sync that covers their write, in order, once each; a failed sync fails every waiter and every
// later one; the destructor runs the callbacks still waiting.
#include "storage/group_sync.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace untorn::storage {
namespace {

// A file whose Sync can be held until released, and made to fail.
class GatedFile final : public File {
 public:
  Status PRead(uint64_t, std::span<uint8_t>) override { return Status::Ok(); }
  Status PWrite(uint64_t, std::span<const uint8_t>) override { return Status::Ok(); }
  Status Sync() override {
    std::unique_lock lk(mu_);
    ++started_;
    cv_.notify_all();
    cv_.wait(lk, [&] { return open_ || released_ >= started_; });
    if (fail_) return Status::Error(Status::Code::kSyncFailed, "injected");
    return Status::Ok();
  }
  Status Truncate(uint64_t) override { return Status::Ok(); }
  Status Allocate(uint64_t, uint64_t) override { return Status::Ok(); }
  uint64_t Size() override { return 0; }
  Status PunchHole(uint64_t, uint64_t) override { return Status::Ok(); }
  uint64_t NextData(uint64_t offset) override { return offset; }
  uint64_t NextHole(uint64_t offset) override { return offset; }

  // Waits (bounded) until `n` syncs have started.
  bool WaitStarted(int n) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, std::chrono::seconds(10), [&] { return started_ >= n; });
  }
  void ReleaseOne() {
    std::lock_guard lk(mu_);
    ++released_;
    cv_.notify_all();
  }
  void Open() {
    std::lock_guard lk(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void FailFromNowOn() {
    std::lock_guard lk(mu_);
    fail_ = true;
  }
  int started() {
    std::lock_guard lk(mu_);
    return started_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int started_ = 0, released_ = 0;
  bool open_ = false, fail_ = false;
};

// Collects callback results from the GroupSync's thread.
struct Results {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<int, bool>> calls;  // (waiter, ok) in call order

  GroupSync::Callback For(int waiter) {
    return [this, waiter](Status s) {
      std::lock_guard lk(mu);
      calls.emplace_back(waiter, s.ok());
      cv.notify_all();
    };
  }
  bool WaitFor(size_t n) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, std::chrono::seconds(10), [&] { return calls.size() >= n; });
  }
  std::vector<std::pair<int, bool>> Snapshot() {
    std::lock_guard lk(mu);
    return calls;
  }
};

TEST(GroupSync, WhenDurableRunsAfterTheSyncThatCoversTheWrite) {
  GatedFile file;
  Results r;
  {
    GroupSync sync(&file);
    sync.MarkWritten(1);
    sync.WhenDurable(1, r.For(1));
    ASSERT_TRUE(file.WaitStarted(1));
    // Written while the first sync runs: needs a second one.
    sync.MarkWritten(2);
    sync.WhenDurable(2, r.For(2));
    EXPECT_TRUE(r.Snapshot().empty()) << "no callback before its sync finished";
    file.ReleaseOne();
    ASSERT_TRUE(r.WaitFor(1));
    ASSERT_TRUE(file.WaitStarted(2));
    EXPECT_EQ(r.Snapshot().size(), 1u) << "waiter 2 needs the second sync";
    file.ReleaseOne();
    ASSERT_TRUE(r.WaitFor(2));
    EXPECT_EQ(r.Snapshot(), (std::vector<std::pair<int, bool>>{{1, true}, {2, true}}));
    EXPECT_EQ(sync.stats().syncs, 2u);
    // Already durable: called at once, on this thread, with no new sync.
    sync.WhenDurable(2, r.For(3));
    EXPECT_EQ(r.Snapshot().size(), 3u);
    EXPECT_EQ(file.started(), 2);
  }
}

TEST(GroupSync, OneSyncServesEveryWaiterWrittenBeforeIt) {
  GatedFile file;
  Results r;
  GroupSync sync(&file);
  sync.MarkWritten(1);
  sync.WhenDurable(1, r.For(1));
  ASSERT_TRUE(file.WaitStarted(1));
  for (uint64_t seq = 2; seq <= 9; ++seq) {
    sync.MarkWritten(seq);
    sync.WhenDurable(seq, r.For(static_cast<int>(seq)));
  }
  file.Open();
  ASSERT_TRUE(r.WaitFor(9));
  EXPECT_EQ(file.started(), 2) << "waiters 2..9 share one sync";
  const auto calls = r.Snapshot();
  for (int i = 0; i < 9; ++i) EXPECT_EQ(calls[static_cast<size_t>(i)].first, i + 1);
}

TEST(GroupSync, WaiterBehindAGapWaitsForTheGapToBeWritten) {
  GatedFile file;
  file.Open();
  Results r;
  GroupSync sync(&file);
  sync.MarkWritten(2);  // 1 is still being written
  sync.WhenDurable(2, r.For(2));
  EXPECT_TRUE(r.Snapshot().empty());
  EXPECT_EQ(file.started(), 0) << "nothing is synced while write 1 is missing";
  sync.MarkWritten(1);
  ASSERT_TRUE(r.WaitFor(1));
  EXPECT_EQ(r.Snapshot(), (std::vector<std::pair<int, bool>>{{2, true}}));
}

TEST(GroupSync, FailedSyncFailsEveryWaiterAndEveryLaterOne) {
  GatedFile file;
  file.FailFromNowOn();
  file.Open();
  Results r;
  GroupSync sync(&file);
  sync.MarkWritten(1);
  sync.MarkWritten(2);
  sync.WhenDurable(1, r.For(1));
  sync.WhenDurable(2, r.For(2));
  ASSERT_TRUE(r.WaitFor(2));
  sync.MarkWritten(3);
  sync.WhenDurable(3, r.For(3));  // decided at once: sticky
  EXPECT_EQ(r.Snapshot(), (std::vector<std::pair<int, bool>>{{1, false}, {2, false}, {3, false}}));
  EXPECT_FALSE(sync.WaitDurable(3).ok());
}

TEST(GroupSync, DestructorRunsTheCallbacksStillWaiting) {
  GatedFile file;
  Results r;
  {
    GroupSync sync(&file);
    sync.MarkWritten(1);
    sync.WhenDurable(1, r.For(1));
    ASSERT_TRUE(file.WaitStarted(1));
    file.Open();
  }
  EXPECT_EQ(r.Snapshot(), (std::vector<std::pair<int, bool>>{{1, true}}));
}

// An asynchronous waiter's sync is running; a blocking waiter whose write was completed
// before it started is served by it too: one sync for both, not one each.
TEST(GroupSync, BlockingAndAsynchronousWaitersShareSyncs) {
  GatedFile file;
  Results r;
  GroupSync sync(&file);
  const uint64_t a = sync.CompletedUnordered();
  const uint64_t b = sync.CompletedUnordered();
  sync.WhenDurable(a, r.For(1));
  ASSERT_TRUE(file.WaitStarted(1));  // covers a and b: both were completed before it
  auto blocking = std::async(std::launch::async, [&] { return sync.WaitDurable(b); });
  file.ReleaseOne();
  if (blocking.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    file.Open();  // let the second sync through, then fail
    ADD_FAILURE() << "the blocking waiter waited for a sync of its own";
  }
  EXPECT_TRUE(blocking.get().ok());
  ASSERT_TRUE(r.WaitFor(1));
  EXPECT_EQ(file.started(), 1) << "the blocking waiter issued a sync of its own";
  EXPECT_EQ(sync.stats().syncs, 1u);
  EXPECT_EQ(sync.stats().writes, 2u);
}

}  // namespace
}  // namespace untorn::storage
