// What the journaled store's unit tests share: a 1 MiB LUN at /lun.img with a 1 MiB journal,
// no background checkpoints, on a file system of the test's choosing.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "storage/journaled_store.h"

namespace untorn::storage::testing {

inline constexpr uint64_t kLun = 1 << 20;
inline constexpr const char* kPath = "/lun.img";

inline JournaledStore::Options Opts(FileSystem* fs) {
  JournaledStore::Options o;
  o.data_path = kPath;
  o.size_bytes = kLun;
  o.block_size = 512;
  o.journal_bytes = 1 << 20;
  o.fs = fs;
  o.background_checkpoint = false;
  return o;
}

inline std::unique_ptr<JournaledStore> OpenOk(FileSystem* fs,
                                              JournaledStore::RecoveryReport* r = nullptr) {
  std::unique_ptr<JournaledStore> s;
  const Status st = JournaledStore::Open(Opts(fs), &s, r);
  EXPECT_TRUE(st.ok()) << st.message();
  return s;
}

inline std::vector<uint8_t> Fill(size_t n, uint8_t v) { return std::vector<uint8_t>(n, v); }

}  // namespace untorn::storage::testing
