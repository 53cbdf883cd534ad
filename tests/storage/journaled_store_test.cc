// Named tests, one per recovery path of the journaled store, on the in-memory file system.
#include "storage/journaled_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "storage/fault_file_system.h"
#include "storage/journal_format.h"
#include "storage/mem_file_system.h"
#include "tests/storage/journaled_test_util.h"

namespace untorn::storage {
namespace {

using testing::Fill;
using testing::kLun;
using testing::kPath;
using testing::OpenOk;
using testing::Opts;

std::vector<uint8_t> ReadBack(MemFileSystem* fs, uint64_t offset, size_t n) {
  auto s = OpenOk(fs);
  std::vector<uint8_t> out(n);
  EXPECT_TRUE(s->Read(offset, out).ok());
  return out;
}

// A journal laid down by hand: superblock of `epoch` with applied sequence `applied`, then the
// given records at consecutive positions.
struct Rec {
  uint64_t epoch, seq, offset;
  std::vector<uint8_t> payload;
};
void LayDown(MemFileSystem* fs, uint64_t epoch, uint64_t applied, const std::vector<Rec>& recs,
             std::vector<uint8_t>* journal_out = nullptr) {
  std::unique_ptr<File> f;
  ASSERT_TRUE(fs->Open(kPath, true, false, &f).ok());
  ASSERT_TRUE(f->Truncate(kLun).ok());
  ASSERT_TRUE(fs->Open(JournaledStore::SuperPath(kPath), true, false, &f).ok());
  ASSERT_TRUE(f->PWrite(0, journal::EncodeSuperblock({epoch, applied, 1 << 20, kLun, 512})).ok());
  std::vector<uint8_t> j;
  for (const Rec& r : recs) {
    auto b =
        journal::EncodeRecord(journal::RecordKind::kAtomic, r.epoch, r.seq, r.offset, r.payload);
    j.insert(j.end(), b.begin(), b.end());
  }
  if (journal_out) {
    *journal_out = j;
    return;
  }
  ASSERT_TRUE(fs->Open(JournaledStore::JournalPath(kPath), true, false, &f).ok());
  ASSERT_TRUE(f->Truncate(1 << 20).ok());
  ASSERT_TRUE(f->PWrite(0, j).ok());
}

void WriteJournal(MemFileSystem* fs, const std::vector<uint8_t>& j) {
  std::unique_ptr<File> f;
  ASSERT_TRUE(fs->Open(JournaledStore::JournalPath(kPath), true, false, &f).ok());
  ASSERT_TRUE(f->Truncate(1 << 20).ok());
  ASSERT_TRUE(f->PWrite(0, j).ok());
}

TEST(JournalFormat, RecordRoundTripsAndDetectsCorruption) {
  const auto payload = Fill(1024, 0x42);
  auto r = journal::EncodeRecord(journal::RecordKind::kAtomic, 3, 9, 4096, payload);
  EXPECT_EQ(r.size(), 1536u);  // 48 + 1024 rounded up to 512
  journal::Invalid why;
  auto h = journal::DecodeHeader(protocol::Bytes(r).first(journal::kHeaderSize), &why);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->epoch, 3u);
  EXPECT_EQ(h->sequence, 9u);
  EXPECT_EQ(h->offset, 4096u);
  EXPECT_EQ(h->length, 1024u);
  EXPECT_TRUE(
      journal::CheckCrc(*h, protocol::Bytes(r).first(48), protocol::Bytes(r).subspan(48, 1024)));
  r[100] ^= 1;
  EXPECT_FALSE(
      journal::CheckCrc(*h, protocol::Bytes(r).first(48), protocol::Bytes(r).subspan(48, 1024)));
  r[0] = 0;
  EXPECT_FALSE(journal::DecodeHeader(protocol::Bytes(r).first(48), &why));
  EXPECT_EQ(why, journal::Invalid::kMagic);
}

TEST(JournalFormat, HeaderAloneIsTheRecordsFirstBytes) {
  // The store writes header, payload and padding as parts (File::PWriteParts).
  const auto payload = Fill(700, 0x17);
  const auto r = journal::EncodeRecord(journal::RecordKind::kOrdered, 5, 11, 8192, payload);
  const auto h = journal::EncodeRecordHeader(journal::RecordKind::kOrdered, 5, 11, 8192, payload);
  EXPECT_TRUE(std::equal(h.begin(), h.end(), r.begin()));
  EXPECT_TRUE(std::equal(payload.begin(), payload.end(), r.begin() + journal::kHeaderSize));
  EXPECT_TRUE(std::all_of(r.begin() + journal::kHeaderSize + 700, r.end(),
                          [](uint8_t b) { return b == 0; }));
}

TEST(JournalFormat, SuperblockChecksum) {
  auto b = journal::EncodeSuperblock({7, 99, 1 << 20, kLun, 512});
  std::string why;
  auto s = journal::DecodeSuperblock(b, &why);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->epoch, 7u);
  EXPECT_EQ(s->applied_sequence, 99u);
  b[20] ^= 0xff;
  EXPECT_FALSE(journal::DecodeSuperblock(b, &why));
  EXPECT_EQ(why, "superblock checksum mismatch");
}

TEST(JournaledStore, ReplaysCompleteRecordsInOrder) {
  MemFileSystem fs;
  LayDown(&fs, 5, 10,
          {{5, 11, 0, Fill(4096, 1)}, {5, 12, 0, Fill(512, 2)}, {5, 13, 8192, Fill(512, 3)}});
  JournaledStore::RecoveryReport r;
  auto s = OpenOk(&fs, &r);
  EXPECT_EQ(r.records_replayed, 3u);
  EXPECT_EQ(r.last_sequence, 13u);
  EXPECT_EQ(r.epoch, 6u);
  std::vector<uint8_t> b(4096);
  ASSERT_TRUE(s->Read(0, b).ok());
  EXPECT_EQ(b[0], 2);  // record 12 after record 11
  EXPECT_EQ(b[600], 1);
  ASSERT_TRUE(s->Read(8192, std::span(b).first(512)).ok());
  EXPECT_EQ(b[0], 3);
}

// A read-only LUN whose journal holds records (a crash before they were checkpointed) serves
// them: replayed first, then opened read-only. Before the fix it served the data file without
// them while the report said they were replayed.
TEST(JournaledStore, ReadOnlyOpenReplaysTheJournalFirst) {
  MemFileSystem fs;
  LayDown(&fs, 5, 10, {{5, 11, 0, Fill(4096, 1)}, {5, 12, 8192, Fill(512, 3)}});
  JournaledStore::Options o = Opts(&fs);
  o.read_only = true;
  std::unique_ptr<JournaledStore> s;
  JournaledStore::RecoveryReport r;
  const Status st = JournaledStore::Open(o, &s, &r);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(r.records_replayed, 2u);
  std::vector<uint8_t> b(4096);
  ASSERT_TRUE(s->Read(0, b).ok());
  EXPECT_EQ(b, Fill(4096, 1));
  ASSERT_TRUE(s->Read(8192, std::span(b).first(512)).ok());
  EXPECT_EQ(b[0], 3);
  EXPECT_EQ(s->Write(0, Fill(512, 9), Durability::kDurable).code(), Status::Code::kReadOnly);
}

TEST(JournaledStore, TruncatedTrailingRecordIsIgnored) {
  MemFileSystem fs;
  std::vector<uint8_t> j;
  LayDown(&fs, 2, 0, {{2, 1, 0, Fill(4096, 7)}, {2, 2, 4096, Fill(4096, 8)}}, &j);
  j.resize(j.size() - 3000);  // the second record lost its tail: a torn write
  WriteJournal(&fs, j);
  JournaledStore::RecoveryReport r;
  auto s = OpenOk(&fs, &r);
  EXPECT_EQ(r.records_replayed, 1u);
  EXPECT_NE(r.stop_reason.find("checksum"), std::string::npos) << r.stop_reason;
  std::vector<uint8_t> b(8192);
  ASSERT_TRUE(s->Read(0, b).ok());
  EXPECT_EQ(b[0], 7);
  EXPECT_EQ(b[4096], 0);  // nothing of the torn record
  EXPECT_EQ(b[8191], 0);
}

TEST(JournaledStore, ChecksumMismatchStopsReplayThere) {
  MemFileSystem fs;
  std::vector<uint8_t> j;
  LayDown(&fs, 2, 0, {{2, 1, 0, Fill(512, 7)}, {2, 2, 512, Fill(512, 8)}}, &j);
  j[48 + 10] ^= 0x40;  // corrupt the first record's payload
  WriteJournal(&fs, j);
  JournaledStore::RecoveryReport r;
  auto s = OpenOk(&fs, &r);
  EXPECT_EQ(r.records_replayed, 0u);
  std::vector<uint8_t> b(1024);
  ASSERT_TRUE(s->Read(0, b).ok());
  EXPECT_EQ(b, Fill(1024, 0));  // the valid second record is after the break: not replayed
}

TEST(JournaledStore, StaleEpochRecordIsNotReplayed) {
  MemFileSystem fs;
  LayDown(&fs, 4, 20, {{3, 21, 0, Fill(512, 9)}});  // left over from before the checkpoint
  JournaledStore::RecoveryReport r;
  auto s = OpenOk(&fs, &r);
  EXPECT_EQ(r.records_replayed, 0u);
  EXPECT_NE(r.stop_reason.find("stale"), std::string::npos) << r.stop_reason;
}

TEST(JournaledStore, SequenceGapStopsReplay) {
  MemFileSystem fs;
  LayDown(&fs, 1, 0, {{1, 1, 0, Fill(512, 1)}, {1, 3, 512, Fill(512, 3)}});
  JournaledStore::RecoveryReport r;
  auto s = OpenOk(&fs, &r);
  EXPECT_EQ(r.records_replayed, 1u);
  EXPECT_NE(r.stop_reason.find("gap"), std::string::npos) << r.stop_reason;
  std::vector<uint8_t> b(512);
  ASSERT_TRUE(s->Read(512, b).ok());
  EXPECT_EQ(b[0], 0);
}

TEST(JournaledStore, SuperblockOfAnotherGeometryIsRefused) {
  MemFileSystem fs;
  LayDown(&fs, 1, 0, {});
  auto o = Opts(&fs);
  o.size_bytes = kLun * 2;
  std::unique_ptr<JournaledStore> s;
  const Status st = JournaledStore::Open(o, &s, nullptr);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("belongs to a LUN"), std::string::npos) << st.message();
}

TEST(JournaledStore, FullJournalWaitsForCheckpointAndLosesNothing) {
  MemFileSystem fs;
  auto s = OpenOk(&fs);
  // 4 writers x 40 atomic 16 KiB writes = 2.5 MiB through a 1 MiB journal.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        auto d = Fill(16384, static_cast<uint8_t>(t * 40 + i + 1));
        EXPECT_TRUE(s->WriteAtomic(static_cast<uint64_t>(t) * 16384, d, Durability::kDurable).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GE(s->stats().checkpoints, 2u);
  for (int t = 0; t < 4; ++t) {
    std::vector<uint8_t> b(16384);
    ASSERT_TRUE(s->Read(static_cast<uint64_t>(t) * 16384, b).ok());
    EXPECT_EQ(b, Fill(16384, static_cast<uint8_t>(t * 40 + 40)));
  }
}

// The journal is circular: after a checkpoint late in the file, records go on to its end and
// wrap to offset 0; recovery follows them across the wrap, in sequence order.
TEST(JournaledStore, RecordsWrapToTheJournalStartAndReplay) {
  MemFileSystem fs;
  auto s = OpenOk(&fs);
  const auto write = [&](int i) {
    ASSERT_TRUE(s->WriteAtomic(static_cast<uint64_t>(i % 48) * 16384,
                               Fill(16384, static_cast<uint8_t>(i + 1)), Durability::kDurable)
                    .ok());
  };
  for (int i = 0; i < 44; ++i) write(i);  // about 0.7 MiB of the 1 MiB journal
  ASSERT_TRUE(s->Checkpoint().ok());
  for (int i = 44; i < 70; ++i) write(i);  // past the end and round to the start
  EXPECT_EQ(s->stats().checkpoints, 1u) << "a full journal forced a checkpoint";
  std::mt19937_64 rng(5);
  auto crashed = fs.CrashState(fs.EventCount(), rng);
  JournaledStore::RecoveryReport r;
  auto again = OpenOk(crashed.get(), &r);
  EXPECT_EQ(r.records_replayed, 26u) << r.stop_reason;
  for (int slot = 0; slot < 48; ++slot) {
    const int last = slot + 48 < 70 ? slot + 48 : slot;
    std::vector<uint8_t> b(16384);
    ASSERT_TRUE(again->Read(static_cast<uint64_t>(slot) * 16384, b).ok());
    EXPECT_EQ(b, Fill(16384, static_cast<uint8_t>(last + 1))) << "slot " << slot;
  }
}

// The network thread's fast path reads what Read reads (that it declines rather than wait on a
// held range is RangeLock.TryLockGrantsOnlyWhatIsFreeNow).
TEST(JournaledStore, TryReadNoWaitReadsWhatReadReads) {
  MemFileSystem fs;
  auto s = OpenOk(&fs);
  ASSERT_TRUE(s->WriteAtomic(8192, Fill(8192, 0x42), Durability::kDurable).ok());
  std::vector<uint8_t> fast(8192), slow(8192);
  auto r = s->TryReadNoWait(8192, fast);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->ok());
  ASSERT_TRUE(s->Read(8192, slow).ok());
  EXPECT_EQ(fast, slow);
  EXPECT_EQ(fast, Fill(8192, 0x42));
  auto past_end = s->TryReadNoWait(kLun, fast);
  ASSERT_TRUE(past_end);
  EXPECT_FALSE(past_end->ok());
}

// The network thread's write path (TryStartWrite): a cached write completes before it returns;
// durable and atomic writes complete from the store's thread once durable, with the data in
// place and the atomic one journaled; a crash right after the acknowledgement keeps both.
TEST(JournaledStore, TryStartWriteCompletesOnceDurable) {
  MemFileSystem fs;
  auto s = OpenOk(&fs);
  fs.RestartLog();
  std::promise<Status> cached;
  ASSERT_TRUE(s->TryStartWrite(0, Fill(4096, 1), WriteKind::kPlain, Durability::kCached,
                               [&](Status st) { cached.set_value(std::move(st)); }));
  auto f = cached.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_TRUE(f.get().ok());

  const auto fua_data = Fill(4096, 2), atomic_data = Fill(16384, 3);
  std::promise<Status> fua, atomic;
  ASSERT_TRUE(s->TryStartWrite(8192, fua_data, WriteKind::kPlain, Durability::kDurable,
                               [&](Status st) { fua.set_value(std::move(st)); }));
  ASSERT_TRUE(s->TryStartWrite(65536, atomic_data, WriteKind::kAtomic, Durability::kDurable,
                               [&](Status st) { atomic.set_value(std::move(st)); }));
  EXPECT_TRUE(fua.get_future().get().ok());
  EXPECT_TRUE(atomic.get_future().get().ok());
  EXPECT_EQ(s->stats().journal_records, 1u);
  std::mt19937_64 rng(3);
  auto crashed = fs.CrashState(fs.EventCount(), rng);
  EXPECT_EQ(ReadBack(crashed.get(), 8192, 4096), fua_data);
  EXPECT_EQ(ReadBack(crashed.get(), 65536, 16384), atomic_data);
}

// It never waits for journal space: with the journal full it declines, and the blocking path
// (which checkpoints) takes the write.
TEST(JournaledStore, TryStartWriteDeclinesWhenTheJournalIsFull) {
  MemFileSystem fs;
  auto s = OpenOk(&fs);
  const uint64_t fits = (1 << 20) / journal::RecordSpan(16384);
  for (uint64_t i = 0; i < fits; ++i) {
    ASSERT_TRUE(s->WriteAtomic((i % 32) * 16384, Fill(16384, 4), Durability::kDurable).ok());
  }
  ASSERT_EQ(s->stats().checkpoints, 0u);
  const auto data = Fill(16384, 5);
  bool called = false;
  EXPECT_FALSE(s->TryStartWrite(0, data, WriteKind::kAtomic, Durability::kDurable,
                                [&](Status) { called = true; }));
  EXPECT_FALSE(called);
  EXPECT_TRUE(s->WriteAtomic(0, data, Durability::kDurable).ok());
  EXPECT_EQ(s->stats().checkpoints, 1u);
}

// A failed journal sync fails the write it was for, applies nothing, and later writes are
// refused at once.
TEST(JournaledStore, TryStartWriteReportsAFailedSync) {
  MemFileSystem fs;
  auto s = OpenOk(&fs);
  fs.FailSyncsAfter(0);
  std::promise<Status> first;
  ASSERT_TRUE(s->TryStartWrite(0, Fill(4096, 6), WriteKind::kAtomic, Durability::kDurable,
                               [&](Status st) { first.set_value(std::move(st)); }));
  EXPECT_EQ(first.get_future().get().code(), Status::Code::kSyncFailed);
  fs.FailSyncsAfter(-1);
  std::promise<Status> later;
  ASSERT_TRUE(s->TryStartWrite(0, Fill(4096, 7), WriteKind::kPlain, Durability::kCached,
                               [&](Status st) { later.set_value(std::move(st)); }));
  EXPECT_EQ(later.get_future().get().code(), Status::Code::kReadOnly);
  std::vector<uint8_t> b(4096);
  ASSERT_TRUE(s->Read(0, b).ok());
  EXPECT_EQ(b, Fill(4096, 0));
}

// Eight atomic writes started without blocking (TryStartWrite: each record written and marked
// before the call returns), the first journal sync held until all eight have started. The
// records written while it runs share the one sync after it: at most two syncs for the eight,
// where writers syncing for themselves would take eight.
TEST(JournaledStore, GroupCommitSharesSyncs) {
  std::mutex mu;  // before the store: its callbacks use them until it is gone
  std::condition_variable cv;
  bool all_started = false, held = false;
  int done = 0;
  MemFileSystem mem;
  FaultFileSystem fs(&mem);
  auto s = OpenOk(&fs);
  fs.SetHook([&](const FaultFileSystem::Call& c) {
    if (c.op != FaultFileSystem::Op::kSync || !c.path.ends_with(".journal")) return;
    std::unique_lock lk(mu);
    if (held) return;
    held = true;
    EXPECT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return all_started; }));
  });
  const auto before = s->stats();
  const auto data = Fill(4096, 1);
  for (uint64_t i = 0; i < 8; ++i) {
    ASSERT_TRUE(
        s->TryStartWrite(i * 4096, data, WriteKind::kAtomic, Durability::kDurable, [&](Status st) {
          EXPECT_TRUE(st.ok()) << st.message();
          std::lock_guard lk(mu);
          ++done;
          cv.notify_all();
        }));
  }
  {
    std::unique_lock lk(mu);
    all_started = true;
    cv.notify_all();
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return done == 8; }));
  }
  fs.SetHook(nullptr);
  const auto st = s->stats();
  EXPECT_EQ(st.journal_records - before.journal_records, 8u);
  EXPECT_LE(st.journal_syncs - before.journal_syncs, 2u) << "syncs are not shared";
}

TEST(JournaledStore, FailedSyncIsStickyAndNothingIsAcknowledged) {
  MemFileSystem fs;
  auto s = OpenOk(&fs);
  fs.FailSyncsAfter(0);
  const Status w = s->WriteAtomic(0, Fill(4096, 5), Durability::kDurable);
  EXPECT_EQ(w.code(), Status::Code::kSyncFailed);
  fs.FailSyncsAfter(-1);  // the device recovers, the store does not trust it until restart
  EXPECT_EQ(s->Write(0, Fill(512, 1), Durability::kCached).code(), Status::Code::kReadOnly);
  EXPECT_EQ(s->WriteAtomic(0, Fill(512, 1), Durability::kDurable).code(), Status::Code::kReadOnly);
  EXPECT_FALSE(s->Flush().ok());
  std::vector<uint8_t> b(4096);
  EXPECT_TRUE(s->Read(0, b).ok());  // reads still work
  EXPECT_EQ(b, Fill(4096, 0));      // the unacknowledged write was never applied
}

TEST(JournaledStore, FailedDataSyncFailsTheFuaWrite) {
  MemFileSystem fs;
  auto s = OpenOk(&fs);
  fs.FailSyncsAfter(0);
  EXPECT_FALSE(s->Write(0, Fill(512, 1), Durability::kDurable).ok());
  fs.FailSyncsAfter(-1);
  EXPECT_FALSE(s->Write(512, Fill(512, 1), Durability::kCached).ok());
}

// A full file system fails the writes that need room, with kNoSpace, and nothing else: no
// atomic write is journaled that could not be applied, nothing is half applied, the store does
// not turn read-only, and writes work again once there is room.
TEST(JournaledStore, FullFileSystemFailsWritesUntilThereIsRoomAndJournalsNothing) {
  MemFileSystem fs;
  auto s = OpenOk(&fs);
  ASSERT_TRUE(s->WriteAtomic(0, Fill(4096, 1), Durability::kDurable).ok());
  ASSERT_TRUE(s->Write(8192, Fill(4096, 2), Durability::kDurable).ok());
  const uint64_t records = s->stats().journal_records;
  fs.RestartLog();
  fs.SetNoSpace(kPath, true);

  EXPECT_EQ(s->WriteAtomic(0, Fill(4096, 3), Durability::kDurable).code(), Status::Code::kNoSpace);
  EXPECT_EQ(s->Write(8192, Fill(4096, 4), Durability::kDurable).code(), Status::Code::kNoSpace);
  // A plain write over a journaled range is journaled: also refused before the journal.
  EXPECT_EQ(s->Write(0, Fill(8192, 5), Durability::kCached).code(), Status::Code::kNoSpace);
  std::promise<Status> atomic, plain;
  ASSERT_TRUE(s->TryStartWrite(0, Fill(4096, 6), WriteKind::kAtomic, Durability::kDurable,
                               [&](Status st) { atomic.set_value(std::move(st)); }));
  ASSERT_TRUE(s->TryStartWrite(8192, Fill(4096, 7), WriteKind::kPlain, Durability::kDurable,
                               [&](Status st) { plain.set_value(std::move(st)); }));
  EXPECT_EQ(atomic.get_future().get().code(), Status::Code::kNoSpace);
  EXPECT_EQ(plain.get_future().get().code(), Status::Code::kNoSpace);
  EXPECT_EQ(s->stats().journal_records, records);  // nothing journaled
  EXPECT_TRUE(s->Flush().ok());                    // and nothing sticky

  std::vector<uint8_t> b(4096);
  ASSERT_TRUE(s->Read(0, b).ok());
  EXPECT_EQ(b, Fill(4096, 1));
  // A crash now brings back exactly what was acknowledged.
  std::mt19937_64 rng(4);
  auto crashed = fs.CrashState(fs.EventCount(), rng);
  EXPECT_EQ(ReadBack(crashed.get(), 0, 4096), Fill(4096, 1));

  fs.SetNoSpace(kPath, false);
  EXPECT_TRUE(s->WriteAtomic(0, Fill(4096, 8), Durability::kDurable).ok());
  EXPECT_TRUE(s->Write(8192, Fill(4096, 9), Durability::kDurable).ok());
  ASSERT_TRUE(s->Read(0, b).ok());
  EXPECT_EQ(b, Fill(4096, 8));
  ASSERT_TRUE(s->Read(8192, b).ok());
  EXPECT_EQ(b, Fill(4096, 9));
}

// A checkpoint that finds no room for the new superblock retires nothing and is not sticky:
// the records stay the journal's (later writes over them are still journaled, a crash replays
// them), and a later checkpoint, once there is room, retires them.
TEST(JournaledStore, CheckpointWithoutRoomForTheSuperblockLosesNothingAndIsRetried) {
  MemFileSystem fs;
  auto s = OpenOk(&fs);
  const std::string spare = JournaledStore::SuperPath(kPath) + ".tmp";
  ASSERT_TRUE(fs.Exists(spare));  // made ready by the superblock write at Open
  ASSERT_TRUE(s->WriteAtomic(0, Fill(4096, 1), Durability::kDurable).ok());
  fs.RestartLog();
  fs.SetNoSpace(spare, true);
  EXPECT_EQ(s->Checkpoint().code(), Status::Code::kNoSpace);
  EXPECT_EQ(s->stats().checkpoints, 0u);
  ASSERT_TRUE(s->Write(0, Fill(512, 2), Durability::kDurable).ok());  // journaled: over a record
  EXPECT_EQ(s->stats().journal_records, 2u);
  std::mt19937_64 rng(5);
  auto crashed = fs.CrashState(fs.EventCount(), rng);
  auto want = Fill(4096, 1);
  std::fill_n(want.begin(), 512, 2);
  EXPECT_EQ(ReadBack(crashed.get(), 0, 4096), want);
  fs.SetNoSpace(spare, false);
  EXPECT_TRUE(s->Checkpoint().ok());
  EXPECT_EQ(s->stats().checkpoints, 1u);
}

// A thick store reserves its whole data file when it opens: a file system without room for it
// refuses the LUN at start, with a message, instead of failing writes later.
TEST(JournaledStore, ThickStoreWithoutRoomIsRefusedAtOpen) {
  MemFileSystem fs;
  {
    std::unique_ptr<File> f;
    ASSERT_TRUE(fs.Open(kPath, true, false, &f).ok());
  }
  fs.SetNoSpace(kPath, true);
  JournaledStore::Options o = Opts(&fs);
  o.preallocate = true;
  std::unique_ptr<JournaledStore> s;
  const Status st = JournaledStore::Open(o, &s, nullptr);
  EXPECT_EQ(st.code(), Status::Code::kNoSpace);
  EXPECT_NE(st.message().find("thick"), std::string::npos) << st.message();
  fs.SetNoSpace(kPath, false);
  EXPECT_TRUE(JournaledStore::Open(o, &s, nullptr).ok());
}

TEST(JournaledStore, PlainWriteAfterAtomicWriteIsNotRevertedByReplay) {
  MemFileSystem fs;
  {
    auto s = OpenOk(&fs);
    fs.RestartLog();
    ASSERT_TRUE(s->WriteAtomic(0, Fill(4096, 0xaa), Durability::kDurable).ok());
    ASSERT_TRUE(s->Write(0, Fill(4096, 0xbb), Durability::kDurable).ok());
    // Crash now: every event so far, nothing after (no checkpoint, no clean close).
    std::mt19937_64 rng(1);
    auto crashed = fs.CrashState(fs.EventCount(), rng);
    EXPECT_EQ(ReadBack(crashed.get(), 0, 4096), Fill(4096, 0xbb));
  }
}

TEST(JournaledStore, UnmapAfterAtomicWriteIsNotUndoneByReplay) {
  MemFileSystem fs;
  auto s = OpenOk(&fs);
  fs.RestartLog();
  ASSERT_TRUE(s->WriteAtomic(0, Fill(4096, 0xaa), Durability::kDurable).ok());
  ASSERT_TRUE(s->Unmap(0, 4096, Durability::kCached).ok());
  ASSERT_TRUE(s->Flush().ok());
  std::mt19937_64 rng(2);
  auto crashed = fs.CrashState(fs.EventCount(), rng);
  EXPECT_EQ(ReadBack(crashed.get(), 0, 4096), Fill(4096, 0));
}

// UNMAP with the write cache off (or WRITE SAME with UNMAP): acknowledged means durable, so a
// power cut right after it must not bring the old data back. Before the fix Unmap took no
// durability and synced nothing: the deallocation was lost in about half the crash states.
TEST(JournaledStore, DurableUnmapSurvivesAPowerCut) {
  for (int cut = 0; cut < 20; ++cut) {
    MemFileSystem fs;
    {
      auto s = OpenOk(&fs);
      ASSERT_TRUE(s->Write(0, Fill(65536, 0xaa), Durability::kDurable).ok());
      fs.RestartLog();
      ASSERT_TRUE(s->Unmap(0, 65536, Durability::kDurable).ok());
      std::mt19937_64 rng(cut);
      auto crashed = fs.CrashState(fs.EventCount(), rng);
      EXPECT_EQ(ReadBack(crashed.get(), 0, 65536), Fill(65536, 0)) << "crash state " << cut;
    }
  }
}

// The superblock is gone but the journal is not: its records cannot be placed (which are live,
// which stale), and a new epoch over them could accept old ones later. The store refuses to
// start and names both files. A journal that holds nothing (a first start that stopped before
// its superblock was written) is not in the way.
TEST(JournaledStore, JournalWithoutItsSuperblockIsRefused) {
  MemFileSystem fs;
  {
    auto s = OpenOk(&fs);
    ASSERT_TRUE(s->WriteAtomic(0, Fill(4096, 0xaa), Durability::kDurable).ok());
    // no clean close: the record stays in the journal
    fs.RestartLog();
    std::mt19937_64 rng(1);
    auto crashed = fs.CrashState(fs.EventCount(), rng);
    ASSERT_TRUE(crashed->Remove(JournaledStore::SuperPath(kPath)).ok());
    std::unique_ptr<JournaledStore> back;
    const Status st = JournaledStore::Open(Opts(crashed.get()), &back, nullptr);
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find("/lun.img.journal"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("/lun.img.super"), std::string::npos) << st.message();
  }
  MemFileSystem fresh;
  std::unique_ptr<File> f;
  ASSERT_TRUE(fresh.Open(JournaledStore::JournalPath(kPath), true, false, &f).ok());
  ASSERT_TRUE(f->Truncate(1 << 20).ok());  // zero-filled, no superblock yet
  EXPECT_TRUE(OpenOk(&fresh));
}

// Crash at every event of a checkpoint: the atomic writes before it survive whatever part of the
// data sync, superblock write and rename made it.
TEST(JournaledStore, CrashDuringCheckpointLosesNothing) {
  MemFileSystem fs;
  auto s = OpenOk(&fs);
  fs.RestartLog();
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(s->WriteAtomic(static_cast<uint64_t>(i) * 8192,
                               Fill(8192, static_cast<uint8_t>(i + 1)), Durability::kDurable)
                    .ok());
  }
  const size_t before = fs.EventCount();
  ASSERT_TRUE(s->Checkpoint().ok());
  const size_t after = fs.EventCount();
  ASSERT_GT(after, before);
  std::mt19937_64 rng(3);
  for (size_t prefix = before; prefix <= after; ++prefix) {
    for (int trial = 0; trial < 8; ++trial) {
      auto crashed = fs.CrashState(prefix, rng);
      auto back = ReadBack(crashed.get(), 0, 8 * 8192);
      for (int i = 0; i < 8; ++i) {
        ASSERT_EQ(back[static_cast<size_t>(i) * 8192], i + 1) << "prefix " << prefix;
        ASSERT_EQ(back[static_cast<size_t>(i) * 8192 + 8191], i + 1) << "prefix " << prefix;
      }
    }
  }
}

// Crash recovery itself at every event, recover again: the result is the same.
TEST(JournaledStore, CrashDuringRecoveryIsRecoveredAgain) {
  MemFileSystem fs;
  auto s = OpenOk(&fs);
  fs.RestartLog();
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(s->WriteAtomic(static_cast<uint64_t>(i) * 4096,
                               Fill(4096, static_cast<uint8_t>(0x10 + i)), Durability::kDurable)
                    .ok());
  }
  std::mt19937_64 rng(4);
  auto crashed = fs.CrashState(fs.EventCount(), rng);  // journal holds 6 unretired records
  crashed->RestartLog();
  { auto recovering = OpenOk(crashed.get()); }  // recovery runs and is logged
  const size_t events = crashed->EventCount();
  ASSERT_GT(events, 0u);
  for (size_t prefix = 0; prefix <= events; ++prefix) {
    auto again = crashed->CrashState(prefix, rng);
    auto back = ReadBack(again.get(), 0, 6 * 4096);
    for (int i = 0; i < 6; ++i) {
      ASSERT_EQ(back[static_cast<size_t>(i) * 4096], 0x10 + i) << "prefix " << prefix;
      ASSERT_EQ(back[static_cast<size_t>(i) * 4096 + 4095], 0x10 + i) << "prefix " << prefix;
    }
  }
}

TEST(JournaledStore, CleanCloseLeavesAnEmptyJournal) {
  MemFileSystem fs;
  {
    auto s = OpenOk(&fs);
    ASSERT_TRUE(s->WriteAtomic(0, Fill(4096, 3), Durability::kDurable).ok());
  }
  JournaledStore::RecoveryReport r;
  auto s = OpenOk(&fs, &r);
  EXPECT_EQ(r.records_replayed, 0u);
  std::vector<uint8_t> b(4096);
  ASSERT_TRUE(s->Read(0, b).ok());
  EXPECT_EQ(b, Fill(4096, 3));
}

}  // namespace
}  // namespace untorn::storage

namespace untorn::storage {
namespace {

// Recovery of a journal with records reports its progress as it goes (Options::on_progress;
// with a zero interval, at every record), the counts rising to the final report's.
TEST(JournaledStore, RecoveryReportsProgress) {
  MemFileSystem fs;
  {
    auto s = testing::OpenOk(&fs);
    for (uint64_t i = 0; i < 12; ++i) {
      ASSERT_TRUE(s->WriteAtomic(i * 4096, testing::Fill(4096, static_cast<uint8_t>(i + 1)),
                                 Durability::kDurable)
                      .ok());
    }
    std::mt19937_64 rng(1);
    auto crashed = fs.CrashState(fs.EventCount(), rng);  // before any checkpoint retires them
    JournaledStore::Options o = testing::Opts(crashed.get());
    o.progress_interval = std::chrono::milliseconds(0);
    std::vector<uint64_t> seen;
    o.on_progress = [&](const JournaledStore::RecoveryReport& r) {
      seen.push_back(r.records_replayed);
      EXPECT_EQ(r.bytes_replayed, r.records_replayed * 4096);
    };
    std::unique_ptr<JournaledStore> recovered;
    JournaledStore::RecoveryReport report;
    ASSERT_TRUE(JournaledStore::Open(o, &recovered, &report).ok());
    EXPECT_EQ(report.records_replayed, 12u);
    ASSERT_EQ(seen.size(), 12u);
    for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i + 1);
  }
}

}  // namespace
}  // namespace untorn::storage
