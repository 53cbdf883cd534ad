#include "config/config.h"

#include <algorithm>
#include <bit>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace untorn::config {
namespace {

using json = nlohmann::json;

// Thrown inside this file only; Parse() turns it into a message.
struct FieldError {
  std::string path, reason;
};

[[noreturn]] void Fail(const std::string& path, const std::string& reason) {
  throw FieldError{path, reason};
}

// Rejects keys not in `allowed`, so that a typo is an error instead of a silent default.
void CheckKeys(const json& j, const std::string& path, std::initializer_list<const char*> allowed) {
  if (!j.is_object()) Fail(path, "must be an object");
  for (const auto& [key, value] : j.items()) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || key == a;
    if (!ok) Fail(path.empty() ? key : path + "." + key, "unknown field");
  }
}

std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::string GetString(const json& j, const std::string& path, const char* key, std::string def) {
  if (!j.contains(key)) return def;
  if (!j[key].is_string()) Fail(Join(path, key), "must be a string");
  return j[key].get<std::string>();
}

bool GetBool(const json& j, const std::string& path, const char* key, bool def) {
  if (!j.contains(key)) return def;
  if (!j[key].is_boolean()) Fail(Join(path, key), "must be true or false");
  return j[key].get<bool>();
}

uint64_t GetUnsigned(const json& j, const std::string& path, const char* key, uint64_t def,
                     uint64_t max) {
  if (!j.contains(key)) return def;
  const json& v = j[key];
  if (!v.is_number_unsigned()) Fail(Join(path, key), "must be a non-negative integer");
  const uint64_t n = v.get<uint64_t>();
  if (n > max) Fail(Join(path, key), "must be at most " + std::to_string(max));
  return n;
}

// A size in bytes: an integer, or a string with a binary suffix ("1GiB", "512MiB", "4096").
uint64_t GetSize(const json& j, const std::string& path, const char* key) {
  if (!j.contains(key)) Fail(Join(path, key), "is required");
  const json& v = j[key];
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (!v.is_string()) Fail(Join(path, key), "must be a byte count or a string like \"1GiB\"");
  uint64_t n = 0;
  std::string error;
  if (!ParseSize(v.get<std::string>(), &n, &error)) Fail(Join(path, key), error);
  return n;
}

std::optional<ChapCredentials> GetChap(const json& j, const std::string& path, const char* key) {
  if (!j.contains(key)) return std::nullopt;
  const std::string p = Join(path, key);
  CheckKeys(j[key], p, {"username", "secret"});
  ChapCredentials c{GetString(j[key], p, "username", ""), GetString(j[key], p, "secret", "")};
  if (c.username.empty()) Fail(p + ".username", "must not be empty");
  // RFC 7143 §12.1.3: secrets should be at least 12 bytes; libiscsi and open-iscsi allow up to 256.
  if (c.secret.size() < 12 || c.secret.size() > 255) {
    Fail(p + ".secret", "must be 12 to 255 characters long");
  }
  return c;
}

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

void ValidateIqn(const std::string& name, const std::string& path) {
  if (name.size() > 223) Fail(path, "must be at most 223 bytes (RFC 7143 §4.2.7.1)");
  const bool iqn = name.rfind("iqn.", 0) == 0 && name.size() > 4;
  const bool eui = name.rfind("eui.", 0) == 0 && name.size() == 20;
  const bool naa = name.rfind("naa.", 0) == 0 && (name.size() == 20 || name.size() == 36);
  if (!iqn && !eui && !naa) Fail(path, "must be an iqn., eui. or naa. name");
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
                    c == ':' || (!iqn && c >= 'A' && c <= 'F');
    if (!ok) Fail(path, "may contain only lower-case letters, digits, '.', '-' and ':'");
  }
}

AtomicLimits ParseAtomic(const json& j, const std::string& path, const Lun& lun) {
  AtomicLimits a;
  if (!j.contains("atomic")) return a;
  const std::string p = Join(path, "atomic");
  const json& v = j["atomic"];
  CheckKeys(v, p,
            {"max_transfer_length", "alignment", "granularity", "max_transfer_length_with_boundary",
             "max_boundary_size", "allow_ignored_by_linux"});
  a.max_transfer_length =
      static_cast<uint32_t>(GetUnsigned(v, p, "max_transfer_length", 0, UINT32_MAX));
  a.alignment = static_cast<uint32_t>(GetUnsigned(v, p, "alignment", 0, UINT32_MAX));
  a.granularity = static_cast<uint32_t>(GetUnsigned(v, p, "granularity", 0, UINT32_MAX));
  a.max_transfer_length_with_boundary =
      static_cast<uint32_t>(GetUnsigned(v, p, "max_transfer_length_with_boundary", 0, UINT32_MAX));
  a.max_boundary_size =
      static_cast<uint32_t>(GetUnsigned(v, p, "max_boundary_size", 0, UINT32_MAX));
  a.allow_ignored_by_linux = GetBool(v, p, "allow_ignored_by_linux", false);

  // WRITE ATOMIC(16) carries a 16-bit transfer length.
  if (a.max_transfer_length > 0xffff) {
    Fail(p + ".max_transfer_length", "must be at most 65535 (WRITE ATOMIC(16) length field)");
  }
  if (a.max_transfer_length > lun.max_transfer_length) {
    Fail(p + ".max_transfer_length", "must not exceed the LUN's max_transfer_length " +
                                         std::to_string(lun.max_transfer_length));
  }
  if (a.granularity > 1 && a.alignment > 1 && a.alignment % a.granularity != 0) {
    Fail(p + ".alignment", "must be a multiple of granularity " + std::to_string(a.granularity));
  }
  if (a.max_transfer_length_with_boundary != 0 || a.max_boundary_size != 0) {
    if (a.max_transfer_length_with_boundary == 0 || a.max_boundary_size == 0) {
      Fail(p, "max_transfer_length_with_boundary and max_boundary_size must be set together");
    }
    if (a.max_boundary_size > a.max_transfer_length_with_boundary) {
      Fail(p + ".max_boundary_size", "must not exceed max_transfer_length_with_boundary");
    }
  }
  if (a.alignment > 1 && (lun.size / lun.block_size) % a.alignment != 0) {
    Fail(p + ".alignment", "must divide the LUN's block count");
  }
  if (a.max_transfer_length != 0 || a.max_transfer_length_with_boundary != 0) {
    const LinuxAtomicUnits units = LinuxAtomicView(a, lun.block_size, lun.physical_block_size);
    if (units.unit_min == 0 && !a.allow_ignored_by_linux) {
      Fail(p, "Linux would silently disable atomic writes: " + units.reason +
                  " (set allow_ignored_by_linux to serve them anyway)");
    }
  }
  return a;
}

Lun ParseLun(const json& j, const std::string& path) {
  CheckKeys(
      j, path,
      {"id", "backing_file", "size", "block_size", "physical_block_size", "write_cache",
       "read_only", "thin", "max_transfer_length", "atomic", "serial", "journal", "journal_size"});
  Lun l;
  l.id = static_cast<uint16_t>(GetUnsigned(j, path, "id", 0, 16383));
  l.backing_file = GetString(j, path, "backing_file", "");
  if (l.backing_file.empty()) Fail(path + ".backing_file", "is required");
  l.block_size = static_cast<uint32_t>(GetUnsigned(j, path, "block_size", 512, 65536));
  if (l.block_size < 512 || !IsPowerOfTwo(l.block_size)) {
    Fail(path + ".block_size", "must be a power of two from 512 to 65536");
  }
  l.physical_block_size =
      static_cast<uint32_t>(GetUnsigned(j, path, "physical_block_size", l.block_size, 1u << 24));
  if (!IsPowerOfTwo(l.physical_block_size) || l.physical_block_size < l.block_size ||
      l.physical_block_size / l.block_size > (1u << 15)) {
    Fail(path + ".physical_block_size",
         "must be a power of two, at least block_size " + std::to_string(l.block_size));
  }
  l.size = GetSize(j, path, "size");
  if (l.size == 0) Fail(path + ".size", "must be positive");
  if (l.size % l.block_size != 0) {
    Fail(path + ".size", "must be a multiple of block_size " + std::to_string(l.block_size));
  }
  l.write_cache = GetBool(j, path, "write_cache", true);
  l.read_only = GetBool(j, path, "read_only", false);
  l.thin = GetBool(j, path, "thin", true);
  l.max_transfer_length =
      static_cast<uint32_t>(GetUnsigned(j, path, "max_transfer_length", 16384, UINT32_MAX));
  if (l.max_transfer_length == 0) Fail(path + ".max_transfer_length", "must be positive");
  // iSCSI's Expected Data Transfer Length is 32 bits (RFC 7143 §11.3.4): a larger transfer
  // would wrap it, and a WRITE would then expect no data at all.
  if (uint64_t{l.max_transfer_length} * l.block_size >= (uint64_t{1} << 32)) {
    Fail(path + ".max_transfer_length",
         "times block_size " + std::to_string(l.block_size) +
             " must stay below 4 GiB (iSCSI's expected data transfer length is 32 bits)");
  }
  l.serial = GetString(j, path, "serial", "");
  if (l.serial.size() > 32) Fail(path + ".serial", "must be at most 32 characters");
  l.atomic = ParseAtomic(j, path, l);
  l.journal = GetBool(j, path, "journal", true);
  // A plain write of the largest transfer may be journaled; a record must fit four times over
  // so checkpoints are not needed for every write.
  const uint64_t largest = uint64_t{l.max_transfer_length} * l.block_size + 512;
  if (j.contains("journal_size")) {
    l.journal_size = GetSize(j, path, "journal_size");
  } else {
    // A quarter of the LUN between 64 and 256 MiB: each checkpoint flushes the data file and
    // stalls the journal's syncs meanwhile, so a larger journal (fewer checkpoints) serves
    // more atomic writes (16 KiB QD32 over iSCSI on a 1 GiB LUN: 256 MiB ~15 % more than 64).
    const uint64_t quarter = l.size / 4 / 512 * 512;
    l.journal_size = std::max(std::clamp<uint64_t>(quarter, 64ull << 20, 256ull << 20),
                              (4 * largest + 511) / 512 * 512);
  }
  if (l.journal && (l.journal_size < 4 * largest || l.journal_size % 512 != 0)) {
    Fail(path + ".journal_size", "must be a multiple of 512 and at least " +
                                     std::to_string(4 * largest) +
                                     " bytes (four times the largest transfer)");
  }
  return l;
}

Target ParseTarget(const json& j, const std::string& path) {
  CheckKeys(j, path, {"iqn", "alias", "chap", "mutual_chap", "allowed_initiators", "acls", "luns"});
  Target t;
  t.iqn = GetString(j, path, "iqn", "");
  ValidateIqn(t.iqn, path + ".iqn");
  t.alias = GetString(j, path, "alias", "");
  if (t.alias.size() > 255) Fail(path + ".alias", "must be at most 255 bytes");
  t.chap = GetChap(j, path, "chap");
  t.mutual_chap = GetChap(j, path, "mutual_chap");
  if (t.mutual_chap && !t.chap) Fail(path + ".mutual_chap", "requires chap");
  if (t.chap && t.mutual_chap && t.chap->secret == t.mutual_chap->secret) {
    Fail(path + ".mutual_chap.secret", "must differ from chap.secret (RFC 7143 §12.1.3)");
  }
  std::set<std::string> names;
  const auto add = [&](InitiatorAcl acl, const std::string& p) {
    if (acl.initiator.empty() || acl.initiator.size() > 223) {
      Fail(p, "must be an initiator name of 1 to 223 bytes");
    }
    if (!names.insert(acl.initiator).second) Fail(p, "names " + acl.initiator + " twice");
    t.acls.push_back(std::move(acl));
  };
  if (j.contains("allowed_initiators")) {
    const json& a = j["allowed_initiators"];
    if (!a.is_array()) Fail(path + ".allowed_initiators", "must be an array of names");
    for (size_t i = 0; i < a.size(); ++i) {
      const std::string p = path + ".allowed_initiators[" + std::to_string(i) + "]";
      if (!a[i].is_string()) Fail(p, "must be a string");
      add(InitiatorAcl{a[i].get<std::string>(), std::nullopt, std::nullopt}, p);
    }
  }
  if (j.contains("acls")) {
    const json& a = j["acls"];
    if (!a.is_array()) Fail(path + ".acls", "must be an array");
    for (size_t i = 0; i < a.size(); ++i) {
      const std::string p = path + ".acls[" + std::to_string(i) + "]";
      CheckKeys(a[i], p, {"initiator", "chap", "mutual_chap"});
      InitiatorAcl acl;
      acl.initiator = GetString(a[i], p, "initiator", "");
      acl.chap = GetChap(a[i], p, "chap");
      acl.mutual_chap = GetChap(a[i], p, "mutual_chap");
      if (acl.mutual_chap && !acl.chap) Fail(p + ".mutual_chap", "requires chap");
      const ChapCredentials* mutual = acl.mutual_chap ? &*acl.mutual_chap
                                      : t.mutual_chap ? &*t.mutual_chap
                                                      : nullptr;
      if (acl.chap && mutual && acl.chap->secret == mutual->secret) {
        Fail(p + ".chap.secret", "must differ from the mutual CHAP secret (RFC 7143 §12.1.3)");
      }
      add(std::move(acl), p + ".initiator");
    }
  }
  if (!j.contains("luns") || !j["luns"].is_array() || j["luns"].empty()) {
    Fail(path + ".luns", "must be a non-empty array");
  }
  std::set<uint16_t> ids;
  std::set<std::string> files;
  for (size_t i = 0; i < j["luns"].size(); ++i) {
    const std::string p = path + ".luns[" + std::to_string(i) + "]";
    Lun l = ParseLun(j["luns"][i], p);
    if (!ids.insert(l.id).second) Fail(p + ".id", "duplicate LUN id " + std::to_string(l.id));
    if (!files.insert(l.backing_file).second) Fail(p + ".backing_file", "used by another LUN");
    t.luns.push_back(std::move(l));
  }
  return t;
}

Limits ParseLimits(const json& j) {
  Limits l;
  if (!j.contains("limits")) return l;
  const json& v = j["limits"];
  const std::string p = "limits";
  CheckKeys(v, p,
            {"max_sessions_per_target", "max_connections", "max_connections_per_address",
             "max_discovery_sessions", "discovery_idle_seconds", "max_outstanding_commands",
             "max_session_buffer_megabytes", "data_out_timeout_seconds",
             "cmdsn_gap_timeout_seconds", "max_buffer_megabytes", "max_recv_data_segment_length",
             "max_burst_length", "first_burst_length", "login_timeout_seconds",
             "nop_interval_seconds", "nop_timeout_seconds"});
  auto u32 = [&](const char* key, uint32_t def, uint64_t lo, uint64_t hi) {
    const uint64_t n = GetUnsigned(v, p, key, def, hi);
    if (n < lo) Fail(p + "." + key, "must be at least " + std::to_string(lo));
    return static_cast<uint32_t>(n);
  };
  l.max_sessions_per_target = u32("max_sessions_per_target", l.max_sessions_per_target, 1, 65535);
  l.max_connections = u32("max_connections", l.max_connections, 1, 65535);
  l.max_connections_per_address =
      u32("max_connections_per_address", l.max_connections_per_address, 1, 65535);
  // Default: 16, or half of a smaller max_connections, so slots remain for normal logins.
  l.max_discovery_sessions =
      u32("max_discovery_sessions", std::clamp(l.max_connections / 2, 1u, 16u), 1, 65535);
  l.discovery_idle_seconds = u32("discovery_idle_seconds", l.discovery_idle_seconds, 1, 3600);
  if (v.contains("max_discovery_sessions") && l.max_discovery_sessions >= l.max_connections) {
    // Slots must remain for normal logins whatever discovery sessions hold.
    Fail("limits.max_discovery_sessions",
         "must be below max_connections " + std::to_string(l.max_connections));
  }
  l.max_outstanding_commands = u32("max_outstanding_commands", l.max_outstanding_commands, 1, 4096);
  l.max_buffer_megabytes = u32("max_buffer_megabytes", l.max_buffer_megabytes, 1, 1u << 20);
  // One session's share: a quarter of the whole by default, so that one session cannot take
  // it all (withheld Data-Out, unread Data-In).
  l.max_session_buffer_megabytes =
      u32("max_session_buffer_megabytes", std::max(1u, l.max_buffer_megabytes / 4), 1, 1u << 20);
  if (l.max_session_buffer_megabytes > l.max_buffer_megabytes) {
    Fail("limits.max_session_buffer_megabytes",
         "must not exceed max_buffer_megabytes " + std::to_string(l.max_buffer_megabytes));
  }
  l.data_out_timeout_seconds = u32("data_out_timeout_seconds", l.data_out_timeout_seconds, 1, 3600);
  l.cmdsn_gap_timeout_seconds =
      u32("cmdsn_gap_timeout_seconds", l.cmdsn_gap_timeout_seconds, 1, 3600);
  l.max_recv_data_segment_length =
      u32("max_recv_data_segment_length", l.max_recv_data_segment_length, 512, (1u << 24) - 1);
  l.max_burst_length = u32("max_burst_length", l.max_burst_length, 512, (1u << 24) - 1);
  l.first_burst_length = u32("first_burst_length", l.first_burst_length, 512, (1u << 24) - 1);
  if (l.first_burst_length > l.max_burst_length) {
    Fail("limits.first_burst_length", "must not exceed max_burst_length");
  }
  l.login_timeout_seconds = u32("login_timeout_seconds", l.login_timeout_seconds, 1, 3600);
  l.nop_interval_seconds = u32("nop_interval_seconds", l.nop_interval_seconds, 0, 3600);
  l.nop_timeout_seconds = u32("nop_timeout_seconds", l.nop_timeout_seconds, 1, 3600);
  return l;
}

}  // namespace

const InitiatorAcl* Target::FindAcl(std::string_view initiator) const {
  for (const auto& a : acls) {
    if (a.initiator == initiator) return &a;
  }
  return nullptr;
}

bool Target::Admits(std::string_view initiator) const {
  return acls.empty() || FindAcl(initiator) != nullptr;
}

const ChapCredentials* Target::ChapFor(std::string_view initiator) const {
  const InitiatorAcl* acl = FindAcl(initiator);
  if (acl != nullptr && acl->chap) return &*acl->chap;
  return chap ? &*chap : nullptr;
}

const ChapCredentials* Target::MutualChapFor(std::string_view initiator) const {
  const InitiatorAcl* acl = FindAcl(initiator);
  if (acl != nullptr && acl->mutual_chap) return &*acl->mutual_chap;
  return mutual_chap ? &*mutual_chap : nullptr;
}

bool ParseSize(std::string_view s, uint64_t* out, std::string* error) {
  size_t i = 0;
  uint64_t n = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    if (n > (UINT64_MAX - 9) / 10) {
      *error = "is too large";
      return false;
    }
    n = n * 10 + static_cast<uint64_t>(s[i++] - '0');
  }
  const std::string_view unit = s.substr(i);
  int shift = -1;
  if (unit.empty() || unit == "B") shift = 0;
  if (unit == "KiB") shift = 10;
  if (unit == "MiB") shift = 20;
  if (unit == "GiB") shift = 30;
  if (unit == "TiB") shift = 40;
  if (i == 0 || shift < 0) {
    *error = "must look like 1073741824, \"512MiB\" or \"1GiB\"";
    return false;
  }
  if (n > (UINT64_MAX >> shift)) {
    *error = "is too large";
    return false;
  }
  *out = n << shift;
  return true;
}

std::string ControlSocketPath(const Config& c) {
  if (c.control_socket.empty() || c.control_socket[0] == '/') return c.control_socket;
  return c.data_dir + "/" + c.control_socket;
}

namespace {

json ChapJson(const ChapCredentials& c) { return {{"username", c.username}, {"secret", c.secret}}; }

json AtomicJson(const AtomicLimits& a) {
  return {{"max_transfer_length", a.max_transfer_length},
          {"alignment", a.alignment},
          {"granularity", a.granularity},
          {"max_transfer_length_with_boundary", a.max_transfer_length_with_boundary},
          {"max_boundary_size", a.max_boundary_size},
          {"allow_ignored_by_linux", a.allow_ignored_by_linux}};
}

json LunJson(const Lun& l) {
  json j = {{"id", l.id},
            {"backing_file", l.backing_file},
            {"size", l.size},
            {"block_size", l.block_size},
            {"physical_block_size", l.physical_block_size},
            {"write_cache", l.write_cache},
            {"read_only", l.read_only},
            {"thin", l.thin},
            {"max_transfer_length", l.max_transfer_length},
            {"atomic", AtomicJson(l.atomic)},
            {"journal", l.journal},
            {"journal_size", l.journal_size}};
  if (!l.serial.empty()) j["serial"] = l.serial;
  return j;
}

json TargetJson(const Target& t) {
  json j = {{"iqn", t.iqn}};
  if (!t.alias.empty()) j["alias"] = t.alias;
  if (t.chap) j["chap"] = ChapJson(*t.chap);
  if (t.mutual_chap) j["mutual_chap"] = ChapJson(*t.mutual_chap);
  if (!t.acls.empty()) {
    json acls = json::array();
    for (const auto& a : t.acls) {
      json e = {{"initiator", a.initiator}};
      if (a.chap) e["chap"] = ChapJson(*a.chap);
      if (a.mutual_chap) e["mutual_chap"] = ChapJson(*a.mutual_chap);
      acls.push_back(std::move(e));
    }
    j["acls"] = std::move(acls);
  }
  json luns = json::array();
  for (const auto& l : t.luns) luns.push_back(LunJson(l));
  j["luns"] = std::move(luns);
  return j;
}

std::string HostPort(const std::string& host, uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

std::string ToJson(const Config& c) {
  json portals = json::array();
  for (const auto& p : c.portals) {
    json e = {{"listen", HostPort(p.host, p.port)}};
    if (!p.advertise.empty()) e["advertise"] = p.advertise;
    portals.push_back(std::move(e));
  }
  const Limits& l = c.limits;
  json limits = {{"max_sessions_per_target", l.max_sessions_per_target},
                 {"max_connections", l.max_connections},
                 {"max_connections_per_address", l.max_connections_per_address},
                 {"max_discovery_sessions", l.max_discovery_sessions},
                 {"discovery_idle_seconds", l.discovery_idle_seconds},
                 {"max_outstanding_commands", l.max_outstanding_commands},
                 {"max_buffer_megabytes", l.max_buffer_megabytes},
                 {"max_session_buffer_megabytes", l.max_session_buffer_megabytes},
                 {"data_out_timeout_seconds", l.data_out_timeout_seconds},
                 {"cmdsn_gap_timeout_seconds", l.cmdsn_gap_timeout_seconds},
                 {"max_recv_data_segment_length", l.max_recv_data_segment_length},
                 {"max_burst_length", l.max_burst_length},
                 {"first_burst_length", l.first_burst_length},
                 {"login_timeout_seconds", l.login_timeout_seconds},
                 {"nop_interval_seconds", l.nop_interval_seconds},
                 {"nop_timeout_seconds", l.nop_timeout_seconds}};
  json targets = json::array();
  for (const auto& t : c.targets) targets.push_back(TargetJson(t));
  json j = {{"portals", std::move(portals)},      {"data_dir", c.data_dir},
            {"log_level", c.log_level},           {"io_threads", c.io_threads},
            {"control_socket", c.control_socket}, {"limits", std::move(limits)},
            {"targets", std::move(targets)}};
  if (!c.metrics.empty()) j["metrics"] = c.metrics;
  return j.dump(2) + "\n";
}

std::string BackingPath(const Config& c, const Lun& lun) {
  if (!lun.backing_file.empty() && lun.backing_file[0] == '/') return lun.backing_file;
  return c.data_dir + "/" + lun.backing_file;
}

bool ParseHostPort(std::string_view text, Portal* out, std::string* error) {
  std::string host;
  std::string_view port;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      *error = "must look like [ADDRESS]:PORT";
      return false;
    }
    host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      *error = "must look like HOST:PORT";
      return false;
    }
    host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  uint32_t p = 0;
  if (port.empty() || port.size() > 5) {
    *error = "port must be a number from 0 to 65535";
    return false;
  }
  for (char c : port) {
    if (c < '0' || c > '9') {
      *error = "port must be a number from 0 to 65535";
      return false;
    }
    p = p * 10 + static_cast<uint32_t>(c - '0');
  }
  if (p > 65535) {
    *error = "port must be a number from 0 to 65535";
    return false;
  }
  out->host = host;
  out->port = static_cast<uint16_t>(p);
  return true;
}

LinuxAtomicUnits LinuxAtomicView(const AtomicLimits& a, uint32_t block_size,
                                 uint32_t physical_block_size) {
  LinuxAtomicUnits u;
  // sd_config_atomic(): boundary form only when the plain maximum is 0.
  uint32_t max = a.max_transfer_length;
  if (max == 0) max = a.max_boundary_size;
  if (max == 0) {
    u.reason = "no maximum atomic transfer length";
    return u;
  }
  const uint32_t gran = a.granularity != 0 ? a.granularity : physical_block_size / block_size;
  const uint32_t unit_min = std::bit_floor(gran);
  const uint32_t unit_max = std::bit_floor(max);
  if (unit_min > unit_max) {
    u.reason = "granularity exceeds the maximum atomic transfer length";
    return u;
  }
  if (a.granularity > 1 && (unit_min % a.granularity != 0 || unit_max % a.granularity != 0)) {
    u.reason = "granularity " + std::to_string(a.granularity) +
               " does not divide the power-of-two units " + std::to_string(unit_min) + " and " +
               std::to_string(unit_max) + " blocks";
    return u;
  }
  if (a.alignment > 1 && (unit_min % a.alignment != 0 || unit_max % a.alignment != 0)) {
    u.reason = "alignment " + std::to_string(a.alignment) +
               " does not divide the power-of-two units " + std::to_string(unit_min) + " and " +
               std::to_string(unit_max) + " blocks";
    return u;
  }
  u.unit_min = unit_min;
  u.unit_max = unit_max;
  return u;
}

bool Parse(std::string_view json_text, Config* out, std::string* error) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    *error = std::string("invalid JSON: ") + e.what();
    return false;
  }
  try {
    Config c;
    CheckKeys(j, "",
              {"portals", "data_dir", "metrics", "log_level", "io_threads", "control_socket",
               "limits", "targets"});
    c.data_dir = GetString(j, "", "data_dir", c.data_dir);
    if (c.data_dir.empty()) Fail("data_dir", "must not be empty");
    c.metrics = GetString(j, "", "metrics", "");
    if (!c.metrics.empty()) {
      Portal p;
      std::string e;
      if (!ParseHostPort(c.metrics, &p, &e)) Fail("metrics", e);
    }
    c.log_level = GetString(j, "", "log_level", "info");
    if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warn" &&
        c.log_level != "error") {
      Fail("log_level", "must be one of debug, info, warn, error");
    }
    c.io_threads = static_cast<uint32_t>(GetUnsigned(j, "", "io_threads", 32, 1024));
    c.control_socket = GetString(j, "", "control_socket", c.control_socket);
    // sun_path holds 107 bytes and a NUL; checked again on the full path at start.
    if (c.control_socket.size() > 107) Fail("control_socket", "must be at most 107 bytes");
    if (c.io_threads == 0) Fail("io_threads", "must be at least 1");
    c.limits = ParseLimits(j);
    if (!j.contains("portals") || !j["portals"].is_array() || j["portals"].empty()) {
      Fail("portals", "must be a non-empty array");
    }
    for (size_t i = 0; i < j["portals"].size(); ++i) {
      const std::string p = "portals[" + std::to_string(i) + "]";
      const json& v = j["portals"][i];
      CheckKeys(v, p, {"listen", "advertise"});
      Portal portal;
      std::string e;
      if (!ParseHostPort(GetString(v, p, "listen", ""), &portal, &e)) Fail(p + ".listen", e);
      portal.advertise = GetString(v, p, "advertise", "");
      if (!portal.advertise.empty()) {
        Portal check;
        if (!ParseHostPort(portal.advertise, &check, &e)) Fail(p + ".advertise", e);
      }
      c.portals.push_back(portal);
    }
    if (!j.contains("targets") || !j["targets"].is_array() || j["targets"].empty()) {
      Fail("targets", "must be a non-empty array");
    }
    std::set<std::string> iqns;
    for (size_t i = 0; i < j["targets"].size(); ++i) {
      const std::string p = "targets[" + std::to_string(i) + "]";
      Target t = ParseTarget(j["targets"][i], p);
      if (!iqns.insert(t.iqn).second) Fail(p + ".iqn", "duplicate target name");
      c.targets.push_back(std::move(t));
    }
    // One backing file, one LUN, across targets too: two stores (two journals) on one data file
    // would corrupt it. Paths are compared as they resolve, relative ones under data_dir.
    std::map<std::string, std::string> served;  // normalized path -> who
    for (size_t i = 0; i < c.targets.size(); ++i) {
      for (size_t k = 0; k < c.targets[i].luns.size(); ++k) {
        const Lun& l = c.targets[i].luns[k];
        const std::string path = std::filesystem::path(BackingPath(c, l)).lexically_normal();
        const std::string who = c.targets[i].iqn + " LUN " + std::to_string(l.id);
        const auto [it, fresh] = served.emplace(path, who);
        if (!fresh) {
          Fail("targets[" + std::to_string(i) + "].luns[" + std::to_string(k) + "].backing_file",
               "is also the backing file of " + it->second);
        }
      }
    }
    *out = std::move(c);
    return true;
  } catch (const FieldError& e) {
    *error = e.path + ": " + e.reason;
    return false;
  } catch (const json::exception& e) {
    *error = std::string("invalid configuration: ") + e.what();
    return false;
  }
}

bool ParseLunJson(std::string_view json_text, const std::string& path, Lun* out,
                  std::string* error) {
  try {
    const json j = json::parse(json_text);
    *out = ParseLun(j, path);
    return true;
  } catch (const FieldError& e) {
    *error = e.path + ": " + e.reason;
  } catch (const json::exception& e) {
    *error = path + ": " + e.what();
  }
  return false;
}

bool LoadFile(const std::string& path, Config* out, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = path + ": cannot open";
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (!Parse(ss.str(), out, error)) {
    *error = path + ": " + *error;
    return false;
  }
  return true;
}

}  // namespace untorn::config
