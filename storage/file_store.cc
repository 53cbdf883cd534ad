#include "storage/file_store.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace untorn::storage {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

Status FileStore::Open(const Options& o, std::unique_ptr<FileStore>* out) {
  if (o.block_size == 0 || o.size_bytes == 0 || o.size_bytes % o.block_size != 0) {
    return Status::Error(Status::Code::kInvalid, "size must be a non-zero multiple of block size");
  }
  const int fd =
      ::open(o.path.c_str(), (o.read_only ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Error(Status::Code::kIoError, Errno("open " + o.path));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const Status s = Status::Error(Status::Code::kIoError, Errno("fstat " + o.path));
    ::close(fd);
    return s;
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    ::close(fd);
    return Status::Error(Status::Code::kInvalid, o.path + " is not a regular file");
  }
  if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) < o.size_bytes) {
    if (o.read_only || ::ftruncate(fd, static_cast<off_t>(o.size_bytes)) != 0) {
      const Status s = Status::Error(
          Status::Code::kIoError,
          o.read_only ? o.path + " is smaller than the LUN size" : Errno("ftruncate " + o.path));
      ::close(fd);
      return s;
    }
  }
  out->reset(new FileStore(fd, o));
  return Status::Ok();
}

FileStore::FileStore(int fd, const Options& o)
    : fd_(fd), size_bytes_(o.size_bytes), block_size_(o.block_size), read_only_(o.read_only) {}

FileStore::~FileStore() { ::close(fd_); }

Status FileStore::CheckRange(uint64_t offset, uint64_t length) const {
  if (offset > size_bytes_ || length > size_bytes_ - offset) {
    return Status::Error(Status::Code::kOutOfRange, "range past end of store");
  }
  if (offset % block_size_ != 0 || length % block_size_ != 0) {
    return Status::Error(Status::Code::kInvalid, "range not block aligned");
  }
  return Status::Ok();
}

Status FileStore::CheckWritable(uint64_t offset, uint64_t length) const {
  if (read_only_) return Status::Error(Status::Code::kReadOnly, "store is read-only");
  if (failed_.load()) {
    return Status::Error(Status::Code::kReadOnly, "store failed earlier; restart to recover");
  }
  return CheckRange(offset, length);
}

Status FileStore::Read(uint64_t offset, std::span<uint8_t> out) {
  if (Status s = CheckRange(offset, out.size()); !s.ok()) return s;
  auto guard = locks_.Lock(offset, out.size(), RangeLock::Mode::kShared);
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Error(Status::Code::kIoError, Errno("pread"));
    if (n == 0) {  // a block device or a file truncated under us: reads as zeros
      std::memset(out.data() + done, 0, out.size() - done);
      break;
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status FileStore::WriteLocked(uint64_t offset, std::span<const uint8_t> data, Durability d) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failed_.store(true);
      return Status::Error(Status::Code::kIoError, Errno("pwrite"));
    }
    done += static_cast<size_t>(n);
  }
  if (d == Durability::kDurable) return Flush();
  return Status::Ok();
}

Status FileStore::Write(uint64_t offset, std::span<const uint8_t> data, Durability d) {
  if (Status s = CheckWritable(offset, data.size()); !s.ok()) return s;
  auto guard = locks_.Lock(offset, data.size(), RangeLock::Mode::kExclusive);
  return WriteLocked(offset, data, d);
}

Status FileStore::WriteAtomic(uint64_t offset, std::span<const uint8_t> data, Durability d) {
  // Same path as Write: the exclusive range lock is what makes it atomic to readers.
  return Write(offset, data, d);
}

Status FileStore::Flush() {
  if (failed_.load()) {
    return Status::Error(Status::Code::kSyncFailed, "store failed earlier; restart to recover");
  }
  if (read_only_) return Status::Ok();
  if (::fdatasync(fd_) != 0) {
    failed_.store(true);
    return Status::Error(Status::Code::kSyncFailed, Errno("fdatasync"));
  }
  return Status::Ok();
}

Status FileStore::Unmap(uint64_t offset, uint64_t length) {
  if (Status s = CheckWritable(offset, length); !s.ok()) return s;
  auto guard = locks_.Lock(offset, length, RangeLock::Mode::kExclusive);
  if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(length)) == 0) {
    return Status::Ok();
  }
  // No hole punching here (e.g. a block device): write zeros instead.
  static const std::vector<uint8_t> kZeros(1 << 20, 0);
  for (uint64_t done = 0; done < length;) {
    const uint64_t n = std::min<uint64_t>(kZeros.size(), length - done);
    if (Status s = WriteLocked(offset + done, std::span(kZeros.data(), n), Durability::kCached);
        !s.ok()) {
      return s;
    }
    done += n;
  }
  return Status::Ok();
}

BlockStore::Extent FileStore::Provisioning(uint64_t offset, uint64_t max_length) {
  // SEEK_DATA/SEEK_HOLE report in file-system blocks; round the answer to our block size,
  // erring towards "mapped".
  const uint64_t end = std::min(size_bytes_, offset + max_length);
  const off_t data = ::lseek(fd_, static_cast<off_t>(offset), SEEK_DATA);
  if (data < 0 && errno != ENXIO) return {end - offset, true};
  if (data < 0 || static_cast<uint64_t>(data) >= end) return {end - offset, false};
  if (static_cast<uint64_t>(data) > offset) {
    const uint64_t hole = (static_cast<uint64_t>(data) - offset) / block_size_ * block_size_;
    if (hole > 0) return {hole, false};
  }
  const off_t hole = ::lseek(fd_, static_cast<off_t>(offset), SEEK_HOLE);
  uint64_t stop = hole < 0 ? end : std::min<uint64_t>(end, static_cast<uint64_t>(hole));
  stop = (stop + block_size_ - 1) / block_size_ * block_size_;
  return {std::max<uint64_t>(std::min(stop, end) - offset, block_size_), true};
}

}  // namespace untorn::storage
