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
#include <linux/fs.h>
#include <sys/ioctl.h>
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

/* The state of the (only) iSCSI session in sysfs: "LOGGED_IN", "FAILED", ... */
static void session_state(char* out, size_t n) {
  snprintf(out, n, "none");
  FILE* f = popen("cat /sys/class/iscsi_session/session*/state 2>/dev/null | head -n1", "r");
  if (f == NULL) return;
  if (fgets(out, (int)n, f) != NULL) out[strcspn(out, "\n")] = 0;
  pclose(f);
}

/* Reads the 16 slots back; counts slots not whole (torn), not a round of their own (bad), and
 * slots whole but holding another round than `want` (0: any round is fine). */
static void check_slots(int fd, unsigned char* buf, int rounds, uint32_t want, int* torn, int* bad,
                        int* other) {
  enum { kSlot = 16384, kSlots = 16 };
  *torn = *bad = *other = 0;
  for (int slot = 0; slot < kSlots; ++slot) {
    if (pread(fd, buf, kSlot, (off_t)(1 << 20) + (off_t)slot * kSlot) != kSlot) {
      ++*bad;
      continue;
    }
    const uint32_t first = *(uint32_t*)buf;
    int whole = 1;
    for (int i = 0; i < kSlot / 4; ++i) {
      if (((uint32_t*)buf)[i] != first) {
        whole = 0;
        break;
      }
    }
    if (!whole) {
      ++*torn;
    } else if ((first >> 24) != (uint32_t)slot || (first & 0xffffff) == 0 ||
               (first & 0xffffff) > (uint32_t)rounds) {
      ++*bad;
    } else if (want != 0 && (first & 0xffffff) != want) {
      ++*other;
    }
  }
}

/* --stress N: N rounds of RWF_ATOMIC 16 KiB writes over 16 slots, each 512-byte block stamped
 * with (slot, round). After round N/3 every slot holds that round (all acknowledged): it prints
 * UNTORN-KILL-NOW, upon which the host SIGKILLs untornd and starts it again, waits (bounded)
 * until the session leaves LOGGED_IN, and reads every slot at once (the reads wait until the
 * session recovers): each must hold round N/3, whole. Then the remaining rounds; at the end every
 * slot must hold round N, whole. */
static int stress(const char* dev, int rounds) {
  const int fd = open(dev, O_RDWR | O_DIRECT);
  if (fd < 0) return 1;
  enum { kSlot = 16384, kSlots = 16 };
  unsigned char* buf = NULL;
  if (posix_memalign((void**)&buf, 4096, kSlot)) return 1;
  int failed_writes = 0;
  const int at_kill = rounds / 3;
  for (int r = 1; r <= rounds; ++r) {
    for (int slot = 0; slot < kSlots; ++slot) {
      for (int b = 0; b < kSlot / 512; ++b) {
        uint32_t* p = (uint32_t*)(buf + b * 512);
        for (int i = 0; i < 128; ++i) p[i] = (uint32_t)(slot << 24 | r);
      }
      if (atomic_write(fd, buf, kSlot, (off_t)(1 << 20) + (off_t)slot * kSlot) != 0)
        ++failed_writes;
    }
    if (r == at_kill) {
      printf("UNTORN-KILL-NOW\n");
      fflush(stdout);
      char state[64] = "";
      int dropped = 0;
      for (int i = 0; i < 3000 && !dropped; ++i) { /* up to 30 s */
        session_state(state, sizeof state);
        dropped = strcmp(state, "LOGGED_IN") != 0;
        if (!dropped) usleep(10000);
      }
      int torn = 0, bad = 0, other = 0;
      check_slots(fd, buf, rounds, (uint32_t)at_kill, &torn, &bad, &other);
      printf("RESULT stress_session_dropped=%d\nRESULT stress_after_kill_torn=%d\n"
             "RESULT stress_after_kill_bad=%d\nRESULT stress_after_kill_not_last_round=%d\n",
             dropped, torn, bad, other);
    }
  }
  int torn = 0, bad = 0, other = 0;
  check_slots(fd, buf, rounds, (uint32_t)rounds, &torn, &bad, &other);
  printf(
      "RESULT stress_rounds=%d\nRESULT stress_failed_writes=%d\nRESULT stress_torn_slots=%d\n"
      "RESULT stress_bad_slots=%d\nRESULT stress_not_last_round=%d\n",
      rounds, failed_writes, torn, bad, other);
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
  const int fd = open(argv[1], O_RDWR | O_DIRECT);
  if (fd < 0) {
    printf("RESULT open_error=%d\n", errno);
    return 1;
  }
  int lbs = 0;
  if (ioctl(fd, BLKSSZGET, &lbs) != 0 || lbs <= 0) lbs = 512;
  size_t cap = (size_t)(umax > 65536 ? umax : 65536) * 4 + 4096;
  unsigned char *buf = NULL, *back = NULL;
  if (posix_memalign((void**)&buf, 4096, cap) || posix_memalign((void**)&back, 4096, cap)) return 1;
  memset(buf, 0x5a, cap);
  if (umin == 0) {
    /* No atomic units: Linux must refuse RWF_ATOMIC before any I/O (EOPNOTSUPP when the device
     * was opened without FMODE_CAN_ATOMIC_WRITE, EINVAL from the size checks). */
    printf("RESULT refused_write_errno=%d\n", atomic_write(fd, buf, (size_t)lbs * 8, base));
    close(fd);
    return 0;
  }
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
  /* blktests scsi/009-style checks: exactly min and max succeed; writes that are valid O_DIRECT
   * for this device's logical block size but break an atomic rule fail with EINVAL before any
   * I/O. "na" where the device leaves no such write (unit_min is one logical block). */
  printf("RESULT write_unit_min=%d\n", atomic_write(fd, buf, umin, base));
  printf("RESULT write_unit_max=%d\n", atomic_write(fd, buf, umax, base + (off_t)umax * 8));
  printf("RESULT write_over_max_errno=%d\n", atomic_write(fd, buf, umax + (size_t)lbs, base));
  if (umin > (uint32_t)lbs) {
    printf("RESULT write_under_min_errno=%d\n", atomic_write(fd, buf, umin - (size_t)lbs, base));
  } else {
    printf("RESULT write_under_min_errno=na\n");
  }
  /* Twice the unit at an offset of one unit: aligned for O_DIRECT, not naturally aligned. */
  if (umin * 2 <= umax) {
    printf("RESULT write_misaligned_errno=%d\n", atomic_write(fd, buf, umin * 2, base + umin));
  } else {
    printf("RESULT write_misaligned_errno=na\n");
  }
  if (umin * 3 <= umax) {
    printf("RESULT write_non_pow2_errno=%d\n", atomic_write(fd, buf, umin * 3, base));
  } else {
    printf("RESULT write_non_pow2_errno=na\n");
  }
  close(fd);
  return 0;
}
