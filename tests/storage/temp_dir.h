// A directory under /tmp for one test, removed with everything in it at the end.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace untorn::storage {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/untorn-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] std::string File(const char* name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace untorn::storage
