/* atomic_probe: runs inside the VM guest against an iSCSI disk untornd serves.
 * Prints "RESULT key=value" lines for the host to compare:
 *   statx(STATX_WRITE_ATOMIC) unit min/max of the block device;
 *   pwritev2(RWF_ATOMIC) on O_DIRECT of every power-of-two size from unit_min to unit_max
 *   (must succeed and read back), and the ones Linux must refuse with EINVAL before any I/O
 *   (misaligned, oversized, undersized).
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

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[2], "--stress") == 0) return stress(argv[1], atoi(argv[3]));
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
