// Reads sent from a mapping of the data file (File::MapForSend, BlockStore::ReadMapped), on the
// real file system: the bytes are the file's, what cannot be read is refused rather than
// mapped, and a held read keeps writes out of its blocks until it is released.
#include "storage/mapped_read.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <vector>

#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "storage/file_store.h"
#include "storage/journaled_store.h"
#include "storage/mem_file_system.h"
#include "tests/storage/temp_dir.h"

namespace untorn::storage {
namespace {

using boost::asio::ip::tcp;

constexpr uint64_t kSize = 1 << 20;

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

// Test code may touch the mapping: the file is known to be readable here.
bool Same(std::span<const uint8_t> mapped, const std::vector<uint8_t>& want) {
  return mapped.size() == want.size() && std::memcmp(mapped.data(), want.data(), want.size()) == 0;
}

TEST(MapForSend, ShowsTheFileAndChangesWithIt) {
  TempDir dir;
  std::unique_ptr<File> f;
  ASSERT_TRUE(PosixFileSystem()->Open(dir.File("data"), true, false, &f).ok());
  ASSERT_TRUE(f->Truncate(kSize).ok());
  const auto a = Pattern(65536, 1), b = Pattern(4096, 9);
  ASSERT_TRUE(f->PWrite(4096, a).ok());
  EXPECT_TRUE(Same(f->MapForSend(4096, a.size()), a));
  // A hole reads as zeros; a later write shows through the same mapping.
  EXPECT_TRUE(Same(f->MapForSend(kSize - 4096, 4096), std::vector<uint8_t>(4096, 0)));
  ASSERT_TRUE(f->PWrite(8192, b).ok());
  EXPECT_TRUE(Same(f->MapForSend(8192, b.size()), b));
  // Not page aligned: the range itself, not its page.
  EXPECT_TRUE(Same(f->MapForSend(4096 + 512, 1024),
                   std::vector<uint8_t>(a.begin() + 512, a.begin() + 1536)));
}

TEST(MapForSend, RefusesWhatItCannotRead) {
  TempDir dir;
  std::unique_ptr<File> f;
  ASSERT_TRUE(PosixFileSystem()->Open(dir.File("data"), true, false, &f).ok());
  ASSERT_TRUE(f->Truncate(kSize).ok());
  EXPECT_FALSE(f->MapForSend(0, 4096).empty());
  EXPECT_TRUE(f->MapForSend(kSize - 4096, 8192).empty());  // past the mapped size
  EXPECT_TRUE(f->MapForSend(kSize, 4096).empty());
  EXPECT_TRUE(f->MapForSend(0, 0).empty());
  // Cut short after it was mapped: the pages past the end would raise SIGBUS on a touch, so
  // they are refused (MADV_POPULATE_READ's EFAULT), and what is left is still served.
  ASSERT_TRUE(f->Truncate(kSize / 2).ok());
  EXPECT_TRUE(f->MapForSend(kSize / 2 + 4096, 4096).empty());
  EXPECT_FALSE(f->MapForSend(0, 4096).empty());
  // A file that is not a POSIX file does not map.
  MemFileSystem mem;
  std::unique_ptr<File> m;
  ASSERT_TRUE(mem.Open("/data", true, false, &m).ok());
  ASSERT_TRUE(m->Truncate(kSize).ok());
  EXPECT_TRUE(m->MapForSend(0, 4096).empty());
}

// What the connection relies on when a mapped page goes bad between MapForSend and the send:
// the kernel's copy out of the mapping fails with EFAULT (the connection logs it and closes);
// no SIGBUS is raised, since user space never touched the page. The file is cut short under
// the mapping, the one way to make its pages unreadable here.
TEST(MapForSend, SendFromPagesThatWentAwayFailsWithEfaultNotASignal) {
  TempDir dir;
  std::unique_ptr<File> f;
  ASSERT_TRUE(PosixFileSystem()->Open(dir.File("data"), true, false, &f).ok());
  ASSERT_TRUE(f->Truncate(kSize).ok());
  ASSERT_TRUE(f->PWrite(0, Pattern(kSize, 4)).ok());
  const std::span<const uint8_t> mapped = f->MapForSend(kSize / 2, 65536);
  ASSERT_EQ(mapped.size(), 65536u);
  // A TCP connection over loopback, as the target's (port chosen by the kernel).
  boost::asio::io_context io;
  tcp::acceptor listener(io, {boost::asio::ip::address_v4::loopback(), 0});
  tcp::socket sender(io), receiver(io);
  sender.connect(listener.local_endpoint());
  listener.accept(receiver);
  const int fd = sender.native_handle();
  // While the pages are there the send goes through.
  ASSERT_EQ(::send(fd, mapped.data(), 4096, 0), 4096);
  ASSERT_TRUE(f->Truncate(kSize / 4).ok());
  errno = 0;
  EXPECT_EQ(::send(fd, mapped.data() + 4096, 4096, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EFAULT);
}

// The guarantee the target relies on: while a mapped read is held, no write to its blocks can
// start (the network thread's TryStartWrite declines, the blocking path would wait); other
// blocks are not held; once released, writes go on and a new mapped read shows them.
void HoldsWritersOff(BlockStore& s) {
  const auto a = Pattern(131072, 3), b = Pattern(4096, 5);
  ASSERT_TRUE(s.WriteAtomic(0, a, Durability::kDurable).ok());
  auto m = s.ReadMapped(0, a.size());
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(Same(m->bytes(), a));
  std::vector<uint8_t> copy(a.size());
  ASSERT_TRUE(m->CopyOut(copy).ok());
  EXPECT_EQ(copy, a);
  const auto start = [&](uint64_t offset, WriteKind kind) {
    auto done = std::make_shared<std::promise<Status>>();
    if (!s.TryStartWrite(offset, b, kind, Durability::kDurable,
                         [done](Status st) { done->set_value(std::move(st)); })) {
      return false;
    }
    EXPECT_TRUE(done->get_future().get().ok());
    return true;
  };
  EXPECT_FALSE(start(65536, WriteKind::kAtomic));
  EXPECT_FALSE(start(0, WriteKind::kPlain));
  EXPECT_TRUE(start(a.size(), WriteKind::kAtomic));  // the next blocks are free
  m.reset();
  EXPECT_TRUE(start(65536, WriteKind::kAtomic));
  auto after = s.ReadMapped(65536, b.size());
  ASSERT_NE(after, nullptr);
  EXPECT_TRUE(Same(after->bytes(), b));
  EXPECT_EQ(s.ReadMapped(kSize - 4096, 8192), nullptr);  // past the end: Read reports it
}

TEST(ReadMapped, JournaledStoreHoldsWritersOffUntilReleased) {
  TempDir dir;
  JournaledStore::Options o;
  o.data_path = dir.File("lun.img");
  o.size_bytes = kSize;
  o.journal_bytes = 1 << 20;
  std::unique_ptr<JournaledStore> s;
  ASSERT_TRUE(JournaledStore::Open(o, &s, nullptr).ok());
  HoldsWritersOff(*s);
}

TEST(ReadMapped, FileStoreHoldsWritersOffUntilReleased) {
  TempDir dir;
  FileStore::Options o{dir.File("lun.img"), kSize, 512, false};
  std::unique_ptr<FileStore> s;
  ASSERT_TRUE(FileStore::Open(o, &s).ok());
  // FileStore has no TryStartWrite; its writes take the same lock as JournaledStore's.
  const auto a = Pattern(131072, 3);
  ASSERT_TRUE(s->WriteAtomic(0, a, Durability::kDurable).ok());
  auto m = s->ReadMapped(0, a.size());
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(Same(m->bytes(), a));
  auto write = std::async(std::launch::async,
                          [&] { return s->WriteAtomic(0, Pattern(4096, 8), Durability::kCached); });
  // The write cannot finish while the read is held; a read of other blocks is not held up.
  EXPECT_EQ(write.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  EXPECT_NE(s->ReadMapped(a.size(), 4096), nullptr);
  m.reset();
  EXPECT_TRUE(write.get().ok());
  auto after = s->ReadMapped(0, 4096);
  ASSERT_NE(after, nullptr);
  EXPECT_TRUE(Same(after->bytes(), Pattern(4096, 8)));
}

}  // namespace
}  // namespace untorn::storage
