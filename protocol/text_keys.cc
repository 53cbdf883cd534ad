#include "protocol/text_keys.h"

#include <array>

namespace untorn::protocol {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool ValidKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '+' || c == '@' || c == '_' || c == '#';
}

}  // namespace

std::optional<KeyList> ParseTextKeys(Bytes data, std::string* error) {
  KeyList out;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t end = pos;
    while (end < data.size() && data[end] != 0) ++end;
    const std::string_view pair(reinterpret_cast<const char*>(data.data() + pos), end - pos);
    pos = end + 1;
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos) {
      *error = "text key without '=': " + std::string(pair.substr(0, kMaxKeyLength));
      return std::nullopt;
    }
    const std::string_view key = pair.substr(0, eq);
    if (key.empty() || key.size() > kMaxKeyLength) {
      *error = "text key name empty or longer than 63 characters";
      return std::nullopt;
    }
    for (char c : key) {
      if (!ValidKeyChar(c)) {
        *error = "invalid character in text key name";
        return std::nullopt;
      }
    }
    const std::string_view value = pair.substr(eq + 1);
    if (value.size() > kMaxValueLength) {
      *error = "value of " + std::string(key) + " is too long";
      return std::nullopt;
    }
    out.push_back({std::string(key), std::string(value)});
  }
  return out;
}

void AppendTextKey(std::vector<uint8_t>& out, std::string_view key, std::string_view value) {
  out.insert(out.end(), key.begin(), key.end());
  out.push_back('=');
  out.insert(out.end(), value.begin(), value.end());
  out.push_back(0);
}

std::vector<uint8_t> EncodeTextKeys(const KeyList& keys) {
  std::vector<uint8_t> out;
  for (const auto& k : keys) AppendTextKey(out, k.key, k.value);
  return out;
}

std::optional<uint64_t> ParseNumber(std::string_view v) {
  if (v.empty()) return std::nullopt;
  uint64_t n = 0;
  if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
    if (v.size() > 18) return std::nullopt;
    for (char c : v.substr(2)) {
      const int h = HexValue(c);
      if (h < 0) return std::nullopt;
      n = (n << 4) | static_cast<uint64_t>(h);
    }
    return n;
  }
  if (v.size() > 19) return std::nullopt;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n;
}

std::optional<std::vector<uint8_t>> ParseBinary(std::string_view v) {
  if (v.size() < 3 || v[0] != '0') return std::nullopt;
  std::vector<uint8_t> out;
  const std::string_view body = v.substr(2);
  if (v[1] == 'x' || v[1] == 'X') {
    size_t i = 0;
    if (body.size() % 2 == 1) {  // odd digit count: leading nibble
      const int h = HexValue(body[0]);
      if (h < 0) return std::nullopt;
      out.push_back(static_cast<uint8_t>(h));
      i = 1;
    }
    for (; i < body.size(); i += 2) {
      const int hi = HexValue(body[i]), lo = HexValue(body[i + 1]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<uint8_t>((hi << 4) | lo));
    }
    return out;
  }
  if (v[1] == 'b' || v[1] == 'B') {
    uint32_t acc = 0;
    int bits = 0;
    size_t pad = 0;
    for (char c : body) {
      if (c == '=') {
        ++pad;
        continue;
      }
      const int b = Base64Value(c);
      if (b < 0 || pad > 0) return std::nullopt;
      acc = (acc << 6) | static_cast<uint32_t>(b);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push_back(static_cast<uint8_t>(acc >> bits));
      }
    }
    if (pad > 2 || out.empty()) return std::nullopt;
    return out;
  }
  return std::nullopt;
}

std::string EncodeHex(Bytes b) {
  static constexpr std::array<char, 16> kDigits = {'0', '1', '2', '3', '4', '5', '6', '7',
                                                   '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};
  std::string s = "0x";
  for (uint8_t x : b) {
    s.push_back(kDigits[x >> 4]);
    s.push_back(kDigits[x & 15]);
  }
  return s;
}

std::vector<std::string> SplitList(std::string_view v) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= v.size()) {
    const size_t comma = v.find(',', start);
    const size_t end = comma == std::string_view::npos ? v.size() : comma;
    out.emplace_back(v.substr(start, end - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace untorn::protocol
