// The command-line habits every untorn program keeps: --help (or -h) prints the usage to
// stdout and exits 0; --version prints "PROGRAM VERSION" and exits 0; bad usage prints one line
// saying why, and where to look, to stderr and exits 2.
#pragma once

#include <cstdio>
#include <cstring>
#include <string>

namespace untorn::tools {

// Handles --help/-h and --version anywhere among the arguments: the exit status to return, or
// -1 to go on.
inline int HelpOrVersion(int argc, char** argv, const char* program, const char* usage) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::fputs(usage, stdout);
      return 0;
    }
    if (std::strcmp(argv[i], "--version") == 0) {
      std::printf("%s %s\n", program, UNTORN_VERSION);
      return 0;
    }
  }
  return -1;
}

// `why` empty: the reason was printed already (by an option parser).
inline int BadUsage(const char* program, const std::string& why) {
  if (!why.empty()) std::fprintf(stderr, "%s: %s\n", program, why.c_str());
  std::fprintf(stderr, "Try '%s --help'.\n", program);
  return 2;
}

}  // namespace untorn::tools
