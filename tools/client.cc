#include "tools/client.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <utility>

#include "config/config.h"

namespace untorn::tools {

void ContextDeleter::operator()(iscsi_context* c) const {
  if (c == nullptr) return;
  if (iscsi_is_logged_in(c)) iscsi_logout_sync(c);
  iscsi_destroy_context(c);
}

namespace {

// Why a TCP connection to `portal` ("host[:port]", "[v6][:port]") cannot be made, or "" if it
// can: libiscsi reports a refused or unreachable portal only as a failed reconnect.
std::string TcpUnreachable(const std::string& portal) {
  config::Portal where;
  std::string ignored;
  if (!config::ParseHostPort(portal, &where, &ignored) &&
      !config::ParseHostPort(portal + ":3260", &where, &ignored)) {  // no port: iSCSI's own
    return "not HOST[:PORT]";
  }
  const std::string port = std::to_string(where.port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(where.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return ::gai_strerror(rc);
  }
  std::string why = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int err = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      socklen_t len = sizeof err;
      err = ::poll(&p, 1, 10000) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0
                ? err
                : ETIMEDOUT;
    }
    ::close(fd);
    if (err == 0) {
      why.clear();
      break;
    }
    why = std::strerror(err);
  }
  ::freeaddrinfo(found);
  return why;
}

}  // namespace

std::optional<Session> Connect(const std::string& url, const std::string& initiator,
                               std::string* error) {
  Session s;
  s.context.reset(iscsi_create_context(initiator.c_str()));
  iscsi_context* c = s.context.get();
  if (c == nullptr) {
    *error = "cannot create an iSCSI context";
    return std::nullopt;
  }
  iscsi_url* u = iscsi_parse_full_url(c, url.c_str());
  if (u == nullptr) {
    *error = "bad URL " + url + ": " + iscsi_get_error(c) +
             " (expected iscsi://[user[%secret]@]host[:port]/target-iqn/lun)";
    return std::nullopt;
  }
  const std::string portal = u->portal;
  s.lun = u->lun;
  iscsi_destroy_url(u);
  iscsi_set_session_type(c, ISCSI_SESSION_NORMAL);
  iscsi_set_header_digest(c, ISCSI_HEADER_DIGEST_NONE_CRC32C);
  iscsi_set_timeout(c, 10);
  // A lost connection is reported, not hidden: libiscsi's automatic reconnect retries a
  // target that is gone for ever, and every synchronous call waits behind it.
  iscsi_set_noautoreconnect(c, 1);
  if (iscsi_full_connect_sync(c, portal.c_str(), s.lun) != 0) {
    const std::string unreachable = TcpUnreachable(portal);
    *error = unreachable.empty() ? "login to " + portal + " failed: " + iscsi_get_error(c)
                                 : "cannot connect to " + portal + ": " + unreachable;
    return std::nullopt;
  }
  Task cap(iscsi_readcapacity16_sync(c, s.lun));
  if (!cap || cap->status != SCSI_STATUS_GOOD) {
    *error = "READ CAPACITY(16) failed: " + (cap ? DescribeStatus(*cap) : iscsi_get_error(c));
    return std::nullopt;
  }
  auto* rc = static_cast<scsi_readcapacity16*>(scsi_datain_unmarshall(cap.get()));
  if (rc == nullptr || rc->block_length == 0) {
    *error = "READ CAPACITY(16) returned data that does not parse";
    return std::nullopt;
  }
  s.block_size = rc->block_length;
  s.blocks = rc->returned_lba + 1;
  s.physical_block_size = rc->lbppbe < 16 ? s.block_size << rc->lbppbe : s.block_size;
  return s;
}

namespace {

// Additional sense codes untornd sends that libiscsi 1.19 has no name for (SPC-4 Annex D).
const char* AscqName(int ascq) {
  if (const char* n = scsi_sense_ascq_str(ascq)) return n;
  static constexpr std::pair<int, const char*> kNames[] = {
      {0x0402, "LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED"},
      {0x0c00, "WRITE ERROR"},
      {0x0e03, "INVALID FIELD IN COMMAND INFORMATION UNIT"},
      {0x1100, "UNRECOVERED READ ERROR"},
      {0x2604, "INVALID RELEASE OF PERSISTENT RESERVATION"},
      {0x2707, "SPACE ALLOCATION FAILED WRITE PROTECT"},
      {0x2a03, "RESERVATIONS PREEMPTED"},
      {0x2a04, "RESERVATIONS RELEASED"},
      {0x2a05, "REGISTRATIONS PREEMPTED"},
      {0x2f00, "COMMANDS CLEARED BY ANOTHER INITIATOR"},
      {0x3900, "SAVING PARAMETERS NOT SUPPORTED"},
      {0x3f0e, "REPORTED LUNS DATA HAS CHANGED"},
      {0x4b00, "DATA PHASE ERROR"},
      {0x4b02, "TOO MUCH WRITE DATA"},
      {0x4b05, "DATA OFFSET ERROR"},
      {0x5504, "INSUFFICIENT REGISTRATION RESOURCES"},
  };
  for (const auto& [code, name] : kNames) {
    if (code == ascq) return name;
  }
  return "(no name)";
}

}  // namespace

std::string DescribeStatus(const scsi_task& task) {
  char buf[256];
  switch (task.status) {
    case SCSI_STATUS_GOOD:
      return "GOOD";
    case SCSI_STATUS_CHECK_CONDITION: {
      const scsi_sense& s = task.sense;
      std::snprintf(buf, sizeof buf, "CHECK CONDITION: %s / %s (%02Xh/%02Xh)",
                    scsi_sense_key_str(s.key), AscqName(s.ascq), (s.ascq >> 8) & 0xff,
                    s.ascq & 0xff);
      std::string text = buf;
      std::replace(text.begin(), text.end(), '_', ' ');  // libiscsi names: ILLEGAL_REQUEST
      if (s.sense_specific && s.key == SCSI_SENSE_ILLEGAL_REQUEST) {
        text += ", field pointer: ";
        text += s.ill_param_in_cdb ? "CDB" : "parameter data";
        text += " byte " + std::to_string(s.field_pointer);
        if (s.bit_pointer_valid) text += " bit " + std::to_string(s.bit_pointer);
      }
      return text;
    }
    case SCSI_STATUS_BUSY:
      return "BUSY";
    case SCSI_STATUS_RESERVATION_CONFLICT:
      return "RESERVATION CONFLICT";
    case SCSI_STATUS_TASK_SET_FULL:
      return "TASK SET FULL";
    case SCSI_STATUS_CANCELLED:
      return "cancelled";
    case SCSI_STATUS_TIMEOUT:
      return "timed out";
    case SCSI_STATUS_ERROR:
      return "transport error";
    default:
      std::snprintf(buf, sizeof buf, "status %02Xh", static_cast<unsigned>(task.status));
      return buf;
  }
}

Task RawTask(std::vector<uint8_t> cdb, int direction, uint32_t transfer_length) {
  return Task(scsi_create_task(static_cast<int>(cdb.size()), cdb.data(), direction,
                               static_cast<int>(transfer_length)));
}

std::string Options::Get(std::string_view name, std::string fallback) const {
  const auto it = values.find(name);
  return it == values.end() ? fallback : it->second;
}

bool ParseOptions(int argc, char** argv, std::initializer_list<OptionSpec> specs, Options* out,
                  std::string* error) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (!a.starts_with("--") || a.size() == 2) {
      out->positional.emplace_back(a);
      continue;
    }
    a.remove_prefix(2);
    std::optional<std::string_view> inline_value;
    if (const size_t eq = a.find('='); eq != std::string_view::npos) {
      inline_value = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    const OptionSpec* spec = nullptr;
    for (const OptionSpec& s : specs) {
      if (a == s.name) spec = &s;
    }
    if (spec == nullptr) {
      *error = "unknown option --" + std::string(a);
      return false;
    }
    if (!spec->takes_value) {
      if (inline_value) {
        *error = "--" + std::string(a) + " takes no value";
        return false;
      }
      out->values[std::string(a)] = "";
    } else if (inline_value) {
      out->values[std::string(a)] = std::string(*inline_value);
    } else if (i + 1 < argc) {
      out->values[std::string(a)] = argv[++i];
    } else {
      *error = "--" + std::string(a) + " needs a value";
      return false;
    }
  }
  return true;
}

bool ParseCommandLine(const char* tool, int argc, char** argv,
                      std::initializer_list<OptionSpec> specs, size_t positional, Options* out) {
  std::string error;
  if (!ParseOptions(argc, argv, specs, out, &error)) {
    std::fprintf(stderr, "%s: %s\n", tool, error.c_str());
    return false;
  }
  if (out->positional.size() != positional && !out->Has("help")) {
    std::fprintf(stderr, "%s: expected %zu argument(s) besides the options, got %zu\n", tool,
                 positional, out->positional.size());
    return false;
  }
  return true;
}

std::optional<Session> ConnectFromOptions(const char* tool, const Options& o) {
  std::string error;
  auto s = Connect(o.positional.at(0), o.Get("initiator", kDefaultInitiator), &error);
  if (!s) std::fprintf(stderr, "%s: %s\n", tool, error.c_str());
  return s;
}

std::optional<uint64_t> ParseCount(std::string_view text) {
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    text.remove_prefix(2);
  }
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  std::string_view rest(end, text.data() + text.size() - end);
  unsigned shift = 0;
  if (rest == "k" || rest == "K" || rest == "KiB")
    shift = 10;
  else if (rest == "m" || rest == "M" || rest == "MiB")
    shift = 20;
  else if (rest == "g" || rest == "G" || rest == "GiB")
    shift = 30;
  else if (!rest.empty())
    return std::nullopt;
  if (shift != 0 && v > (UINT64_MAX >> shift)) return std::nullopt;
  return v << shift;
}

std::optional<Pattern> ParsePattern(std::string_view text, std::string* error) {
  Pattern p;
  if (text == "zero") {
    p.kind = Pattern::Kind::kByte;
    return p;
  }
  if (text.starts_with("0x") && text.size() <= 4) {
    const auto v = ParseCount(text);
    if (v && *v <= 0xff) {
      p.kind = Pattern::Kind::kByte;
      p.byte = static_cast<uint8_t>(*v);
      return p;
    }
  }
  if (text == "stamp") return p;
  if (text.starts_with("stamp:")) {
    const auto v = ParseCount(text.substr(6));
    if (v) {
      p.seed = *v;
      return p;
    }
  }
  *error = "bad pattern '" + std::string(text) + "' (expected stamp[:SEED], 0xNN or zero)";
  return std::nullopt;
}

namespace {
uint8_t StampByte(uint64_t seed, uint64_t lba, uint32_t i) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ULL ^ (lba + 1) * 0xc2b2ae3d27d4eb4fULL ^ i;
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ULL;
  return static_cast<uint8_t>(x >> 56);
}
}  // namespace

void FillBlock(const Pattern& p, uint64_t lba, uint8_t* block, uint32_t block_size) {
  if (p.kind == Pattern::Kind::kByte) {
    std::memset(block, p.byte, block_size);
    return;
  }
  // Little-endian LBA and seed, then derived bytes.
  for (int i = 0; i < 8; ++i) block[i] = static_cast<uint8_t>(lba >> (8 * i));
  for (int i = 0; i < 8; ++i) block[8 + i] = static_cast<uint8_t>(p.seed >> (8 * i));
  for (uint32_t i = 16; i < block_size; ++i) block[i] = StampByte(p.seed, lba, i);
}

int64_t FirstMismatch(const Pattern& p, uint64_t lba, const uint8_t* block, uint32_t block_size) {
  std::vector<uint8_t> want(block_size);
  FillBlock(p, lba, want.data(), block_size);
  for (uint32_t i = 0; i < block_size; ++i) {
    if (want[i] != block[i]) return i;
  }
  return -1;
}

}  // namespace untorn::tools
