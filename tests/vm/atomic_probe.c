/* atomic_probe: runs inside the VM guest against an iSCSI disk untornd serves.
 * Prints "RESULT key=value" lines for the host to compare:
 *   statx(STATX_WRITE_ATOMIC) unit min/max of the block device;
 *   pwritev2(RWF_ATOMIC) on O_DIRECT of every power-of-two size from unit_min to unit_max
 *   (must succeed and read back), and the ones Linux must refuse with EINVAL before any I/O
 *   (misaligned, oversized, undersized); --stress and --fill (below) for the kill9 and full
 *   cases.
 * Built static (gcc -static): bookworm's glibc headers predate these interfaces, so the
 * structures and flags are declared here from include/uapi/linux/{stat,fs}.h (Linux 6.11). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define UNTORN_STATX_WRITE_ATOMIC 0x00010000U
#define UNTORN_RWF_ATOMIC 0x00000040

struct untorn_statx_timestamp {
  int64_t tv_sec;
  uint32_t tv_nsec;
  int32_t reserved;
};
struct untorn_statx {
  uint32_t stx_mask, stx_blksize;
  uint64_t stx_attributes;
  uint32_t stx_nlink, stx_uid, stx_gid;
  uint16_t stx_mode, spare0;
  uint64_t stx_ino, stx_size, stx_blocks, stx_attributes_mask;
  struct untorn_statx_timestamp stx_atime, stx_btime, stx_ctime, stx_mtime;
  uint32_t stx_rdev_major, stx_rdev_minor, stx_dev_major, stx_dev_minor;
  uint64_t stx_mnt_id;
  uint32_t stx_dio_mem_align, stx_dio_offset_align;
  uint64_t stx_subvol;
  uint32_t stx_atomic_write_unit_min, stx_atomic_write_unit_max, stx_atomic_write_segments_max;
  uint32_t spare1;
  uint64_t spare3[9];
};

static long pwritev2_raw(int fd, const struct iovec* iov, int n, off_t off, int flags) {
  return syscall(SYS_pwritev2, fd, iov, n, (unsigned long)off, (unsigned long)((uint64_t)off >> 32),
                 flags);
}

/* Returns 0 on success, else the errno. */
static int atomic_write(int fd, void* buf, size_t len, off_t off) {
  struct iovec iov = {buf, len};
  long r = pwritev2_raw(fd, &iov, 1, off, UNTORN_RWF_ATOMIC);
  if (r < 0) return errno;
  return r == (long)len ? 0 : EIO;
}

/* --stress N: N rounds of RWF_ATOMIC 16 KiB writes over 16 slots, each 512-byte block stamped
 * with (slot, round); prints UNTORN-KILL-NOW after a third of them so the host can SIGKILL and
 * restart untornd, then reads every slot back and checks it holds exactly one round, whole. */
static int stress(const char* dev, int rounds) {
  const int fd = open(dev, O_RDWR | O_DIRECT);
  if (fd < 0) return 1;
  enum { kSlot = 16384, kSlots = 16 };
  unsigned char* buf = NULL;
  if (posix_memalign((void**)&buf, 4096, kSlot)) return 1;
  int failed_writes = 0;
  for (int r = 1; r <= rounds; ++r) {
    for (int slot = 0; slot < kSlots; ++slot) {
      for (int b = 0; b < kSlot / 512; ++b) {
        uint32_t* p = (uint32_t*)(buf + b * 512);
        for (int i = 0; i < 128; ++i) p[i] = (uint32_t)(slot << 24 | r);
      }
      if (atomic_write(fd, buf, kSlot, (off_t)(1 << 20) + (off_t)slot * kSlot) != 0)
        ++failed_writes;
    }
    if (r == rounds / 3) {
      printf("UNTORN-KILL-NOW\n");
      fflush(stdout);
    }
  }
  int torn = 0, bad = 0;
  for (int slot = 0; slot < kSlots; ++slot) {
    if (pread(fd, buf, kSlot, (off_t)(1 << 20) + (off_t)slot * kSlot) != kSlot) {
      ++bad;
      continue;
    }
    const uint32_t first = *(uint32_t*)buf;
    if ((first >> 24) != (uint32_t)slot || (first & 0xffffff) == 0 ||
        (first & 0xffffff) > (uint32_t)rounds)
      ++bad;
    for (int i = 0; i < kSlot / 4; ++i) {
      if (((uint32_t*)buf)[i] != first) {
        ++torn;
        break;
      }
    }
  }
  printf(
      "RESULT stress_rounds=%d\nRESULT stress_failed_writes=%d\nRESULT stress_torn_slots=%d\n"
      "RESULT stress_bad_slots=%d\n",
      rounds, failed_writes, torn, bad);
  close(fd);
  return 0;
}

static void stamp(unsigned char* buf, size_t len, uint32_t value) {
  for (size_t i = 0; i + 4 <= len; i += 4) memcpy(buf + i, &value, 4);
}

static int chunk_holds(int fd, unsigned char* buf, size_t len, off_t off, uint32_t value) {
  if (pread(fd, buf, len, off) != (ssize_t)len) return 0;
  for (size_t i = 0; i + 4 <= len; i += 4) {
    uint32_t v;
    memcpy(&v, buf + i, 4);
    if (v != value) return 0;
  }
  return 1;
}

/* --fill N: O_DIRECT 1 MiB writes (chunk k stamped k + 1) from offset 0 until one fails or N are
 * written: the file system under the LUN on the host is meant to fill up first. Then one
 * RWF_ATOMIC 16 KiB write into the last MiB, which nothing has written. Prints both errnos and
 * UNTORN-FREE-SPACE-NOW, upon which the host makes room; retries the refused chunk (every 0.2 s,
 * for at most 60 s) and the atomic write, then reads every acknowledged chunk back. */
static int fill(const char* dev, int chunks) {
  const int fd = open(dev, O_RDWR | O_DIRECT);
  if (fd < 0) return 1;
  enum { kChunk = 1 << 20, kAtomic = 16384 };
  unsigned char* buf = NULL;
  if (posix_memalign((void**)&buf, 4096, kChunk)) return 1;
  int acked = 0, err = 0;
  for (int k = 0; k < chunks; ++k) {
    stamp(buf, kChunk, (uint32_t)k + 1);
    const ssize_t n = pwrite(fd, buf, kChunk, (off_t)k * kChunk);
    if (n != kChunk) {
      err = n < 0 ? errno : EIO;
      break;
    }
    ++acked;
  }
  const off_t atomic_off = (off_t)(chunks - 1) * kChunk + kChunk / 2;
  stamp(buf, kAtomic, 0xa70a1c);
  const int atomic_err = atomic_write(fd, buf, kAtomic, atomic_off);
  printf("RESULT fill_acked_chunks=%d\nRESULT fill_errno=%d\nRESULT fill_atomic_errno=%d\n", acked,
         err, atomic_err);
  printf("UNTORN-FREE-SPACE-NOW\n");
  fflush(stdout);
  int retry_ok = 0;
  if (err != 0) {
    for (int attempt = 0; attempt < 300 && !retry_ok; ++attempt) {
      stamp(buf, kChunk, (uint32_t)acked + 1);
      if (pwrite(fd, buf, kChunk, (off_t)acked * kChunk) == kChunk) {
        retry_ok = 1;
        ++acked;
      } else {
        usleep(200000);
      }
    }
  }
  stamp(buf, kAtomic, 0xa70a1c);
  printf("RESULT fill_retry_ok=%d\nRESULT fill_atomic_after_errno=%d\n", retry_ok,
         atomic_write(fd, buf, kAtomic, atomic_off));
  int bad = 0;
  for (int k = 0; k < acked; ++k)
    bad += !chunk_holds(fd, buf, kChunk, (off_t)k * kChunk, (uint32_t)k + 1);
  printf("RESULT fill_bad_chunks=%d\nRESULT fill_atomic_readback_ok=%d\n", bad,
         chunk_holds(fd, buf, kAtomic, atomic_off, 0xa70a1c));
  close(fd);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[2], "--stress") == 0) return stress(argv[1], atoi(argv[3]));
  if (argc == 4 && strcmp(argv[2], "--fill") == 0) return fill(argv[1], atoi(argv[3]));
  if (argc < 2) {
    fprintf(stderr, "usage: atomic_probe /dev/sdX [base_offset]\n");
    return 2;
  }
  const off_t base = argc > 2 ? strtoll(argv[2], NULL, 0) : 0;
  struct untorn_statx st;
  memset(&st, 0, sizeof st);
  if (syscall(SYS_statx, AT_FDCWD, argv[1], 0, UNTORN_STATX_WRITE_ATOMIC, &st) != 0) {
    printf("RESULT statx_error=%d\n", errno);
    return 1;
  }
  const int has = (st.stx_mask & UNTORN_STATX_WRITE_ATOMIC) != 0;
  const uint32_t umin = has ? st.stx_atomic_write_unit_min : 0;
  const uint32_t umax = has ? st.stx_atomic_write_unit_max : 0;
  printf("RESULT statx_unit_min=%u\nRESULT statx_unit_max=%u\n", umin, umax);
  if (umin == 0) return 0;

  const int fd = open(argv[1], O_RDWR | O_DIRECT);
  if (fd < 0) {
    printf("RESULT open_error=%d\n", errno);
    return 1;
  }
  size_t cap = (size_t)umax * 2 + 4096;
  unsigned char *buf = NULL, *back = NULL;
  if (posix_memalign((void**)&buf, 4096, cap) || posix_memalign((void**)&back, 4096, cap)) return 1;
  int ok_sizes = 0, bad_sizes = 0, writes = 0;
  for (uint32_t size = umin; size <= umax; size *= 2) {
    for (size_t i = 0; i < size; ++i) buf[i] = (unsigned char)(i * 7 + size);
    const off_t off = base + (off_t)size * 4; /* aligned to the size, as RWF_ATOMIC needs */
    int e = atomic_write(fd, buf, size, off);
    ++writes;
    memset(back, 0, size);
    if (e == 0 && pread(fd, back, size, off) == (ssize_t)size && memcmp(buf, back, size) == 0) {
      ++ok_sizes;
    } else {
      ++bad_sizes;
      printf("RESULT failed_size=%u errno=%d\n", size, e);
    }
    if (size > umax / 2) break; /* avoid overflow past umax */
  }
  printf("RESULT pow2_sizes_ok=%d\nRESULT pow2_sizes_failed=%d\nRESULT atomic_writes_sent=%d\n",
         ok_sizes, bad_sizes, writes);
  /* blktests scsi/009-style checks: exactly min and max succeed; max+block, min-block fail. */
  printf("RESULT write_unit_min=%d\n", atomic_write(fd, buf, umin, base));
  printf("RESULT write_unit_max=%d\n", atomic_write(fd, buf, umax, base + (off_t)umax * 8));
  printf("RESULT write_over_max_errno=%d\n", atomic_write(fd, buf, umax + 512, base));
  printf("RESULT write_under_min_errno=%d\n",
         umin > 512 ? atomic_write(fd, buf, umin - 512, base) : EINVAL);
  printf("RESULT write_misaligned_errno=%d\n", atomic_write(fd, buf, umin, base + umin / 2));
  printf("RESULT write_non_pow2_errno=%d\n",
         umin * 3 <= umax ? atomic_write(fd, buf, umin * 3, base) : EINVAL);
  close(fd);
  return 0;
}
