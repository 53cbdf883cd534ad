#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <span>
#include <vector>

#include "storage/allocation_map.h"
#include "storage/file_system.h"
#include "storage/log_file.h"

namespace untorn::storage {
namespace {

Status Errno(Status::Code code, const std::string& what) {
  return Status::Error(code, what + ": " + std::strerror(errno));
}

// A write or allocation that failed for want of space is not a failing device.
Status WriteErrno(const std::string& what) {
  const bool full = errno == ENOSPC || errno == EDQUOT;
  return Errno(full ? Status::Code::kNoSpace : Status::Code::kIoError, what);
}

// " at OFFSET (LENGTH bytes)", for error messages that name the I/O that failed.
std::string Where(uint64_t offset, uint64_t length) {
  return " at " + std::to_string(offset) + " (" + std::to_string(length) + " bytes)";
}

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Writes go to the kernel in pieces of at most this size. The page cache sizes a folio after
// the write that creates it, and ext4 (6.16+, large folios) does work per block of the whole
// folio on each later buffered write into it: after 1 MiB sequential writes, 4 KiB random
// writes measured 24k IOPS over iSCSI, with 64 KiB pieces 55k; 1 MiB sequential reads and
// writes moved less than the run-to-run noise (docs/performance.md).
constexpr size_t kWritePiece = 64 << 10;

// A device whose physical block cannot be found is taken to have 4 KiB ones, the largest in
// common use: the journal then wastes some space rather than risk sharing a block.
constexpr uint32_t kUnknownPhysicalBlock = 4096;

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14; older glibc headers lack it
#endif

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path, uint64_t size)
      : fd_(fd), path_(std::move(path)), allocated_(size) {}
  ~PosixFile() override {
    if (map_ != nullptr) ::munmap(map_, map_size_);
    ::close(fd_);
  }

  std::span<const uint8_t> MapForSend(uint64_t offset, uint64_t length) override {
    std::call_once(map_once_, [this] { MapWhole(); });
    if (map_ == nullptr || length == 0 || offset > map_size_ || length > map_size_ - offset) {
      return {};
    }
    // Read in now, on the caller's thread, with errors reported (EFAULT where a touch would
    // raise SIGBUS: an I/O error, or a page past the end since the file was mapped).
    const uint64_t begin = offset / page_ * page_;
    if (::madvise(static_cast<uint8_t*>(map_) + begin, offset + length - begin,
                  MADV_POPULATE_READ) != 0) {
      return {};
    }
    return {static_cast<const uint8_t*>(map_) + offset, length};
  }

  bool TryPReadNoWait(uint64_t offset, std::span<uint8_t> out) override {
    // RWF_NOWAIT: EAGAIN rather than wait for the device; a short read means part of the range
    // is not cached (the data file is never shorter than the LUN), so the caller reads again.
    iovec iov{out.data(), out.size()};
    const ssize_t n = ::preadv2(fd_, &iov, 1, static_cast<off_t>(offset), RWF_NOWAIT);
    return n == static_cast<ssize_t>(out.size());
  }

  Status PRead(uint64_t offset, std::span<uint8_t> out) override {
    size_t done = 0;
    while (done < out.size()) {
      const ssize_t n =
          ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        return Errno(Status::Code::kIoError,
                     "pread " + path_ + Where(offset + done, out.size() - done));
      if (n == 0) {
        std::memset(out.data() + done, 0, out.size() - done);
        break;
      }
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  }

  Status PWrite(uint64_t offset, std::span<const uint8_t> data) override {
    size_t done = 0;
    while (done < data.size()) {
      const size_t piece = std::min(kWritePiece, data.size() - done);
      const ssize_t n = ::pwrite(fd_, data.data() + done, piece, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return WriteErrno("pwrite " + path_ + Where(offset + done, piece));
      if (n == 0) return Status::Error(Status::Code::kIoError, "pwrite wrote nothing: " + path_);
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  }

  Status Sync() override {
    if (::fdatasync(fd_) != 0) return Errno(Status::Code::kSyncFailed, "fdatasync " + path_);
    return Status::Ok();
  }

  Status WriteBack(uint64_t offset, uint64_t length) override {
    constexpr unsigned kFlags =
        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
    if (::sync_file_range(fd_, static_cast<off_t>(offset), static_cast<off_t>(length), kFlags) !=
        0) {
      return Errno(Status::Code::kSyncFailed, "sync_file_range " + path_);
    }
    return Status::Ok();
  }

  Status Truncate(uint64_t size) override {
    const uint64_t all = std::numeric_limits<uint64_t>::max() - size;
    allocated_.Forget(size, all);  // before and after: see AllocationMap
    const int r = ::ftruncate(fd_, static_cast<off_t>(size));
    allocated_.Forget(size, all);
    if (r != 0) return Errno(Status::Code::kIoError, "ftruncate " + path_);
    return Status::Ok();
  }

  Status Allocate(uint64_t offset, uint64_t length) override {
    // A FIEMAP on every journaled write cost about a fifth of 16 KiB atomic QD32 over iSCSI
    // (docs/performance.md): what is known allocated is remembered.
    if (cannot_reserve_.load(std::memory_order_relaxed) || allocated_.Covered(offset, length)) {
      return Status::Ok();
    }
    // Asked of the whole granules the range touches, so that they can be remembered.
    const uint64_t g = allocated_.granule();
    const uint64_t begin = offset / g * g;
    const uint64_t end = (offset + length + g - 1) / g * g;
    const uint64_t generation = allocated_.Generation();  // before the lookup: see AllocationMap
    if (Allocated(begin, end - begin)) {
      allocated_.Mark(begin, end - begin, generation);
      return Status::Ok();
    }
    if (::fallocate(fd_, 0, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0) {
      allocated_.Mark(offset, length, generation);
      return Status::Ok();
    }
    if (errno == EOPNOTSUPP) {  // cannot reserve here (see file_system.h), nor ever will
      cannot_reserve_.store(true, std::memory_order_relaxed);
      return Status::Ok();
    }
    return WriteErrno("fallocate " + path_ + Where(offset, length));
  }

  uint64_t Size() override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return 0;
    uint64_t bytes = 0;  // a block device's st_size is 0: ask the device
    if (S_ISBLK(st.st_mode) && ::ioctl(fd_, BLKGETSIZE64, &bytes) == 0) return bytes;
    return static_cast<uint64_t>(st.st_size);
  }

  Status PunchHole(uint64_t offset, uint64_t length) override {
    allocated_.Forget(offset, length);  // before and after: see AllocationMap
    const int r = ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                              static_cast<off_t>(offset), static_cast<off_t>(length));
    allocated_.Forget(offset, length);
    if (r == 0) return Status::Ok();
    static const std::vector<uint8_t> kZeros(1 << 20, 0);  // no hole punching: write zeros
    for (uint64_t done = 0; done < length;) {
      const uint64_t n = std::min<uint64_t>(kZeros.size(), length - done);
      if (Status s = PWrite(offset + done, std::span(kZeros.data(), n)); !s.ok()) return s;
      done += n;
    }
    return Status::Ok();
  }

  uint32_t PhysicalBlockSize() override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return kUnknownPhysicalBlock;
    unsigned int bytes = 0;
    if (S_ISBLK(st.st_mode)) {
      return ::ioctl(fd_, BLKPBSZGET, &bytes) == 0 && bytes >= 512 ? bytes : kUnknownPhysicalBlock;
    }
    // The device the file system is on: a disk has queue/ in its sysfs directory, a partition
    // in its parent's. A file system on no device (tmpfs) or several (btrfs) has neither.
    // Asked once, at OpenLog (the journal's record alignment).
    const std::string dev = "/sys/dev/block/" + std::to_string(major(st.st_dev)) + ":" +
                            std::to_string(minor(st.st_dev));
    for (const char* queue : {"/queue/physical_block_size", "/../queue/physical_block_size"}) {
      if (FILE* f = std::fopen((dev + queue).c_str(), "re")) {
        const int got = std::fscanf(f, "%u", &bytes);
        std::fclose(f);
        if (got == 1 && bytes >= 512 && (bytes & (bytes - 1)) == 0) return bytes;
      }
    }
    return kUnknownPhysicalBlock;
  }

  uint64_t NextData(uint64_t offset) override {
    const off_t r = ::lseek(fd_, static_cast<off_t>(offset), SEEK_DATA);
    if (r < 0) return errno == ENXIO ? UINT64_MAX : offset;
    return static_cast<uint64_t>(r);
  }

  uint64_t NextHole(uint64_t offset) override {
    const off_t r = ::lseek(fd_, static_cast<off_t>(offset), SEEK_HOLE);
    if (r < 0) return Size();
    return static_cast<uint64_t>(r);
  }

 private:
  // Whether every byte of the range has space (written, unwritten or delayed allocation),
  // asked of just the range: SEEK_HOLE would walk every extent from `offset` to the first hole,
  // which on a fragmented file (copy-on-write file systems) is the rest of the file. False when
  // unsure (too many extents, no FIEMAP): the caller then reserves, which is always right.
  bool Allocated(uint64_t offset, uint64_t length) {
    constexpr uint32_t kExtents = 8;
    alignas(fiemap) uint8_t buf[sizeof(fiemap) + kExtents * sizeof(fiemap_extent)] = {};
    auto* map = reinterpret_cast<fiemap*>(buf);  // fiemap ends in a flexible array of extents
    map->fm_start = offset;
    map->fm_length = length;
    map->fm_extent_count = kExtents;
    if (::ioctl(fd_, FS_IOC_FIEMAP, map) != 0) return false;
    uint64_t covered = offset;
    for (uint32_t i = 0; i < map->fm_mapped_extents && i < kExtents; ++i) {
      const fiemap_extent& e = map->fm_extents[i];
      if (e.fe_logical > covered) return false;  // a hole before this extent
      covered = std::max<uint64_t>(covered, e.fe_logical + e.fe_length);
      if (covered >= offset + length) return true;
    }
    return false;
  }

  // MapForSend's mapping: the whole file as it was at the first call, read-only and shared.
  // None where mmap or MADV_POPULATE_READ (Linux 5.14) is not available.
  void MapWhole() {
    const uint64_t size = Size();
    const long page = ::sysconf(_SC_PAGESIZE);
    if (size == 0 || page <= 0) return;
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) return;
    // A kernel without MADV_POPULATE_READ says EINVAL: then the mapping is of no use.
    if (::madvise(p, 1, MADV_POPULATE_READ) != 0 && errno == EINVAL) {
      ::munmap(p, size);
      return;
    }
    page_ = static_cast<uint64_t>(page);
    map_size_ = size;
    map_ = p;
  }

  const int fd_;
  const std::string path_;
  AllocationMap allocated_;
  std::atomic<bool> cannot_reserve_{false};  // fallocate said EOPNOTSUPP
  std::once_flag map_once_;
  void* map_ = nullptr;  // set once, under map_once_
  uint64_t map_size_ = 0, page_ = 0;
};

// OpenLog's straight writes: pwritev on a second descriptor of the file, opened O_DIRECT.
class DirectWriter final : public StraightWriter {
 public:
  DirectWriter(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~DirectWriter() override { ::close(fd_); }

  Status WriteStraight(uint64_t offset, std::span<const iovec> buffers) override {
    std::vector<iovec> iov(buffers.begin(), buffers.end());
    size_t first = 0;
    while (first < iov.size()) {
      const ssize_t n = ::pwritev(fd_, iov.data() + first, static_cast<int>(iov.size() - first),
                                  static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return WriteErrno("pwritev (O_DIRECT) " + path_ + Where(offset, Length(iov, first)));
      }
      if (n == 0) return Status::Error(Status::Code::kIoError, "pwritev wrote nothing: " + path_);
      offset += static_cast<uint64_t>(n);
      for (auto left = static_cast<size_t>(n); left > 0;) {  // a short write: go on after it
        const size_t used = std::min(left, iov[first].iov_len);
        iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + used;
        iov[first].iov_len -= used;
        left -= used;
        if (iov[first].iov_len == 0) ++first;
      }
    }
    return Status::Ok();
  }

 private:
  static size_t Length(const std::vector<iovec>& iov, size_t first) {
    size_t n = 0;
    for (size_t i = first; i < iov.size(); ++i) n += iov[i].iov_len;
    return n;
  }

  const int fd_;
  const std::string path_;
};

class Posix final : public FileSystem {
 public:
  Status Open(const std::string& path, bool create, bool read_only,
              std::unique_ptr<File>* out) override {
    const int flags =
        (read_only ? O_RDONLY : O_RDWR) | (create && !read_only ? O_CREAT : 0) | O_CLOEXEC;
    const int fd = ::open(path.c_str(), flags, 0644);
    if (fd < 0) return WriteErrno("open " + path);  // creating a file can find no room
    struct stat st {};
    if (::fstat(fd, &st) != 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
      ::close(fd);
      return Status::Error(Status::Code::kInvalid, path + " is not a regular file");
    }
    *out = std::make_unique<PosixFile>(fd, path, static_cast<uint64_t>(st.st_size));
    return Status::Ok();
  }

  Status OpenLog(const std::string& path, std::unique_ptr<File>* out) override {
    std::unique_ptr<File> file;
    if (Status s = Open(path, false, false, &file); !s.ok()) return s;
    // Straight writes need the file system to take 512-byte offsets (statx, Linux 6.1+).
    struct statx st {};
    if (::statx(AT_FDCWD, path.c_str(), 0, STATX_DIOALIGN, &st) != 0 ||
        (st.stx_mask & STATX_DIOALIGN) == 0 || st.stx_dio_offset_align == 0 ||
        st.stx_dio_offset_align > 512 || st.stx_dio_mem_align > 4096) {
      *out = std::move(file);
      return Status::Ok();
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0) {
      *out = std::move(file);
      return Status::Ok();
    }
    *out = std::make_unique<LogFile>(std::move(file), std::make_unique<DirectWriter>(fd, path),
                                     path, 4096);
    return Status::Ok();
  }

  bool Exists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return WriteErrno("rename " + from + " to " + to);
    }
    return Status::Ok();
  }

  Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Errno(Status::Code::kIoError, "unlink " + path);
    }
    return Status::Ok();
  }

  Status SyncDir(const std::string& path) override {
    const std::string dir = DirOf(path);
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Errno(Status::Code::kIoError, "open " + dir);
    const int r = ::fsync(fd);
    ::close(fd);
    if (r != 0) return Errno(Status::Code::kSyncFailed, "fsync " + dir);
    return Status::Ok();
  }
};

}  // namespace

FileSystem* PosixFileSystem() {
  static Posix fs;
  return &fs;
}

}  // namespace untorn::storage
