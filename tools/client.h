// What untorn's libiscsi tools share: logging in from an iscsi:// URL, READ CAPACITY, sense
// data in words, and the block patterns untorn-write writes and untorn-verify checks.
#pragma once

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace untorn::tools {

struct ContextDeleter {
  void operator()(iscsi_context* c) const;
};
using Context = std::unique_ptr<iscsi_context, ContextDeleter>;

struct TaskDeleter {
  void operator()(scsi_task* t) const {
    if (t != nullptr) scsi_free_scsi_task(t);
  }
};
using Task = std::unique_ptr<scsi_task, TaskDeleter>;

struct Session {
  Context context;
  int lun = 0;
  uint32_t block_size = 0;
  uint64_t blocks = 0;  // capacity
  uint32_t physical_block_size = 0;
};

constexpr const char* kDefaultInitiator = "iqn.2026-11.org.untorn:tools";

// Logs in to iscsi://[user[%secret]@]host[:port]/target-iqn/lun (libiscsi's URL form; CHAP
// also from LIBISCSI_CHAP_USERNAME/PASSWORD) and reads the capacity. Null and *error set on
// failure, naming the step that failed.
[[nodiscard]] std::optional<Session> Connect(const std::string& url, const std::string& initiator,
                                             std::string* error);

// "ILLEGAL REQUEST / INVALID FIELD IN CDB (24h/00h), field pointer: CDB byte 1 bit 7", or the
// status name for a command without sense data.
[[nodiscard]] std::string DescribeStatus(const scsi_task& task);

// Builds a task for a raw CDB (for fields libiscsi's helpers do not set, such as the ATOMIC
// BOUNDARY of WRITE ATOMIC(16)).
[[nodiscard]] Task RawTask(std::vector<uint8_t> cdb, int direction, uint32_t transfer_length);

// Block patterns: every logical block of a pattern is a pure function of (kind, seed, LBA),
// so a verifier needs only the pattern's text.
//   "stamp[:SEED]"  the block's LBA and the seed in the first 16 bytes, then bytes derived
//                   from both (default; a misplaced block or a stale one is told apart)
//   "0xNN"          every byte NN
//   "zero"          every byte 0
struct Pattern {
  enum class Kind { kStamp, kByte } kind = Kind::kStamp;
  uint64_t seed = 0;
  uint8_t byte = 0;
};
[[nodiscard]] std::optional<Pattern> ParsePattern(std::string_view text, std::string* error);
void FillBlock(const Pattern& p, uint64_t lba, uint8_t* block, uint32_t block_size);
// First byte offset in `block` that differs from the pattern, or -1.
[[nodiscard]] int64_t FirstMismatch(const Pattern& p, uint64_t lba, const uint8_t* block,
                                    uint32_t block_size);

// Command-line options: "--name VALUE", "--name=VALUE" or a bare "--flag"; everything else is
// positional. False with *error on an unknown option or a missing value.
struct OptionSpec {
  const char* name;  // without the dashes
  bool takes_value;
};
struct Options {
  std::map<std::string, std::string, std::less<>> values;  // flags map to ""
  std::vector<std::string> positional;
  [[nodiscard]] bool Has(std::string_view name) const { return values.contains(name); }
  [[nodiscard]] std::string Get(std::string_view name, std::string fallback = "") const;
};
[[nodiscard]] bool ParseOptions(int argc, char** argv, std::initializer_list<OptionSpec> specs,
                                Options* out, std::string* error);
// ParseOptions for a tool's main: also demands exactly `positional` positional arguments, and
// on failure prints "TOOL: reason" to stderr.
[[nodiscard]] bool ParseCommandLine(const char* tool, int argc, char** argv,
                                    std::initializer_list<OptionSpec> specs, size_t positional,
                                    Options* out);
// Connect to the URL in positional[0] as --initiator (or the default); on failure prints
// "TOOL: reason" to stderr.
[[nodiscard]] std::optional<Session> ConnectFromOptions(const char* tool, const Options& o);

// Parses an unsigned decimal or 0x-hex number with an optional k/m/g (binary) suffix.
[[nodiscard]] std::optional<uint64_t> ParseCount(std::string_view text);

}  // namespace untorn::tools
