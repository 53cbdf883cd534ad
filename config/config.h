// untornd's configuration as plain structs. config/ is the only user of nlohmann_json; nothing of
// it leaks through this header. Every validation error names the field path and the reason, e.g.
// "targets[0].luns[1].size: must be a multiple of block_size 4096".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace untorn::config {

struct Portal {
  std::string host = "0.0.0.0";
  uint16_t port = 3260;
  std::string advertise;  // address:port put in SendTargets replies; empty = the local address

  bool operator==(const Portal&) const = default;
};

struct ChapCredentials {
  std::string username;
  std::string secret;

  bool operator==(const ChapCredentials&) const = default;
};

struct AtomicLimits {  // SBC-4 Block Limits VPD fields, in logical blocks
  uint32_t max_transfer_length = 0;
  uint32_t alignment = 0;
  uint32_t granularity = 0;
  uint32_t max_transfer_length_with_boundary = 0;
  uint32_t max_boundary_size = 0;
  bool allow_ignored_by_linux = false;  // accept limits Linux's sd would silently disable

  bool operator==(const AtomicLimits&) const = default;
};

struct Lun {
  uint16_t id = 0;
  std::string backing_file;  // relative paths are under Config::data_dir (see BackingPath)
  uint64_t size = 0;         // bytes
  uint32_t block_size = 512;
  uint32_t physical_block_size = 512;
  bool write_cache = true;
  bool read_only = false;
  bool thin = true;
  uint32_t max_transfer_length = 16384;  // blocks
  AtomicLimits atomic;
  std::string serial;                   // derived from target and LUN when empty
  bool journal = true;                  // crash-atomic journaled store; false: plain file store
  uint64_t journal_size = 64ull << 20;  // bytes; unset in JSON: a quarter of size, 64..256 MiB
};

// One initiator allowed on a target (a node ACL, as LIO calls it), optionally with credentials
// of its own instead of the target's.
struct InitiatorAcl {
  std::string initiator;                       // its InitiatorName
  std::optional<ChapCredentials> chap;         // it must authenticate with these
  std::optional<ChapCredentials> mutual_chap;  // the target answers it with these

  bool operator==(const InitiatorAcl&) const = default;
};

struct Target {
  std::string iqn;
  std::string alias;
  std::optional<ChapCredentials> chap;         // initiator must authenticate (no ACL of its own)
  std::optional<ChapCredentials> mutual_chap;  // target authenticates to initiator
  // Who may log in; empty = any initiator. JSON "allowed_initiators" entries are ACLs without
  // credentials of their own.
  std::vector<InitiatorAcl> acls;
  std::vector<Lun> luns;

  // Whether `initiator` may log in at all.
  [[nodiscard]] bool Admits(std::string_view initiator) const;
  // The credentials `initiator` must authenticate with (its ACL's, else the target's), or null
  // when it needs none; and those the target answers a mutual CHAP challenge with.
  [[nodiscard]] const ChapCredentials* ChapFor(std::string_view initiator) const;
  [[nodiscard]] const ChapCredentials* MutualChapFor(std::string_view initiator) const;

 private:
  [[nodiscard]] const InitiatorAcl* FindAcl(std::string_view initiator) const;
};

struct Limits {
  uint32_t max_sessions_per_target = 64;
  uint32_t max_connections = 256;
  uint32_t max_connections_per_address = 64;    // from one remote address
  uint32_t max_discovery_sessions = 16;         // in all: discovery needs no credentials
  uint32_t discovery_idle_seconds = 30;         // a discovery session with no Text Request ends
  uint32_t max_outstanding_commands = 128;      // per session (CmdSN window)
  uint32_t max_buffer_megabytes = 1024;         // command data held, all connections together
  uint32_t max_session_buffer_megabytes = 256;  // of which one session may hold (default: 1/4)
  uint32_t data_out_timeout_seconds = 30;       // a task waiting this long for its Data-Out ends it
  uint32_t cmdsn_gap_timeout_seconds = 10;      // commands held behind a CmdSN gap this long end it
  uint32_t max_recv_data_segment_length = 262144;
  uint32_t max_burst_length = 16776192;
  uint32_t first_burst_length = 262144;
  uint32_t login_timeout_seconds = 15;
  uint32_t nop_interval_seconds = 5;  // ping an idle initiator this often
  uint32_t nop_timeout_seconds = 30;  // drop a connection that stays silent this long after a ping

  bool operator==(const Limits&) const = default;
};

struct Config {
  std::vector<Portal> portals;
  std::string data_dir = "./untorn-data";
  std::string metrics;  // HOST:PORT of the Prometheus endpoint; empty = off
  std::string log_level = "info";
  uint32_t io_threads = 32;  // blocking storage work (config/README.md); small I/O skips it
  // The control interface's UNIX socket (JSON-RPC 2.0, mode 0600); relative paths are under
  // data_dir; empty = no control interface.
  std::string control_socket = "untornd.sock";
  Limits limits;
  std::vector<Target> targets;
};

// A LUN's backing file path: absolute as given, else under data_dir.
[[nodiscard]] std::string BackingPath(const Config& c, const Lun& lun);
// What a reload (SIGHUP, untornctl reload) may change in a running untornd, from `running` to
// `next`: `live` lists what it would apply (each "field: what"), `refused` what needs a restart
// (each "field: why"), with field paths as Parse names them. Portals are compared as loaded,
// before any port 0 was bound.
struct ReloadPlan {
  std::vector<std::string> live, refused;
};
[[nodiscard]] ReloadPlan PlanReload(const Config& running, const Config& next);

// "1073741824", "512MiB", "1GiB" (B, KiB, MiB, GiB, TiB) into bytes; false with *error.
[[nodiscard]] bool ParseSize(std::string_view text, uint64_t* out, std::string* error);

// The control socket's path: absolute as given, else under data_dir; empty when off.
[[nodiscard]] std::string ControlSocketPath(const Config& c);

// The configuration as JSON that Parse reads back to the same Config (every field written,
// secrets included: the caller writes it where only root reads it).
[[nodiscard]] std::string ToJson(const Config& c);

// The configuration served by a bare `untornd`.
[[nodiscard]] std::string_view EmbeddedDefault();

// Parses and validates JSON text. On failure returns false with *error naming the field.
[[nodiscard]] bool Parse(std::string_view json_text, Config* out, std::string* error);
[[nodiscard]] bool LoadFile(const std::string& path, Config* out, std::string* error);
// One LUN object (a member of targets[].luns), as Parse checks it; errors name fields under
// `path` (e.g. "params.lun.size: ...").
[[nodiscard]] bool ParseLunJson(std::string_view json_text, const std::string& path, Lun* out,
                                std::string* error);

// "HOST:PORT" (or "[v6]:PORT") into a Portal; false with *error on a bad value.
[[nodiscard]] bool ParseHostPort(std::string_view text, Portal* out, std::string* error);

// What Linux's sd driver (6.11+) makes of atomic limits: unit sizes in logical blocks, 0 when
// it disables atomic writes. Mirrors sd_config_atomic(); the VM test checks it against a kernel.
struct LinuxAtomicUnits {
  uint32_t unit_min = 0;
  uint32_t unit_max = 0;
  std::string reason;  // why atomics are off, when they are
};
[[nodiscard]] LinuxAtomicUnits LinuxAtomicView(const AtomicLimits& a, uint32_t block_size,
                                               uint32_t physical_block_size);

}  // namespace untorn::config
