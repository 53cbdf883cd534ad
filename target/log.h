// Leveled logging to stderr, one line per call: "2026-11-25T05:31:14.123Z INFO  message".
// Thread-safe. Secrets (CHAP) must never be passed here.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace untorn::target {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };  // kOff: tests

void SetLogLevel(LogLevel level);
[[nodiscard]] bool ParseLogLevel(std::string_view text, LogLevel* out);
[[nodiscard]] bool LogEnabled(LogLevel level);
// Writes one line; control characters in `message` (a newline a peer put in its InitiatorName,
// an escape sequence) are written as \xNN, so every call is exactly one line.
void LogLine(LogLevel level, const std::string& message);
[[nodiscard]] std::string EscapeControl(std::string_view text);

template <typename... Args>
void Log(LogLevel level, const Args&... args) {
  if (!LogEnabled(level)) return;
  std::ostringstream s;
  (s << ... << args);
  LogLine(level, s.str());
}

}  // namespace untorn::target

#define UNTORN_LOG_DEBUG(...) ::untorn::target::Log(::untorn::target::LogLevel::kDebug, __VA_ARGS__)
#define UNTORN_LOG_INFO(...) ::untorn::target::Log(::untorn::target::LogLevel::kInfo, __VA_ARGS__)
#define UNTORN_LOG_WARN(...) ::untorn::target::Log(::untorn::target::LogLevel::kWarn, __VA_ARGS__)
#define UNTORN_LOG_ERROR(...) ::untorn::target::Log(::untorn::target::LogLevel::kError, __VA_ARGS__)
