// Result of a storage operation. Storage knows nothing of SCSI: the logical unit maps these codes
// to sense data in exactly one place (target/scsi_status.cc).
#pragma once

#include <string>
#include <utility>

namespace untorn::storage {

class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk,
    kOutOfRange,  // offset/length outside the store
    kIoError,     // a read or write failed
    kSyncFailed,  // a flush failed: the store has become read-only until restart (sticky)
    kReadOnly,    // the store refuses writes (configured, or after a sticky failure)
    kInvalid,     // misaligned or otherwise malformed request
    kNoSpace,     // the file system under the store is full (ENOSPC, EDQUOT): the write did not
                  // happen as a whole and is not acknowledged; not sticky, writes work again once
                  // there is room
  };

  Status() = default;
  static Status Ok() { return {}; }
  static Status Error(Code code, std::string message) { return Status(code, std::move(message)); }

  [[nodiscard]] bool ok() const { return code_ == Code::kOk; }
  [[nodiscard]] Code code() const { return code_; }
  [[nodiscard]] const std::string& message() const { return message_; }

 private:
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

}  // namespace untorn::storage
