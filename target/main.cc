// untornd: an iSCSI target serving SCSI disks with WRITE ATOMIC(16).
#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "config/config.h"
#include "target/iscsi/server.h"
#include "target/log.h"

namespace {

constexpr const char* kUsage = R"(usage: untornd [options]

Serves the configured iSCSI targets. Without --config, serves the embedded default: target
iqn.2026-11.org.untorn:disk0 with LUN 0, a 1 GiB sparse file under ./untorn-data, on
0.0.0.0:3260.

options:
  --config FILE         JSON configuration (see config/example.json)
  --listen HOST:PORT    serve one portal on HOST:PORT instead of the configured ones
                        (port 0 picks a free port, logged at start)
  --advertise HOST:PORT address given to initiators in SendTargets (e.g. behind NAT);
                        port 0 means the port untornd listens on
  --data-dir DIR        directory for relative backing files (default ./untorn-data)
  --metrics HOST:PORT   serve Prometheus metrics at http://HOST:PORT/metrics
  --control-socket PATH the control interface's UNIX socket (default untornd.sock under
                        the data directory; "" turns it off); see untornctl
  --log-level LEVEL     debug, info, warn or error (default info)
  --check-config FILE   validate FILE and exit (0 if valid)
  --print-default-config  print the embedded default configuration and exit
  --help                this text
  --version             print the version
)";

// Bad usage: one line saying why, and where to look; exit status 2.
// What the command line sets over the configuration file, again at every reload.
struct Overrides {
  std::string listen, advertise, data_dir, metrics, log_level;
  std::optional<std::string> control_socket;
};

bool ApplyOverrides(const Overrides& o, untorn::config::Config* config, std::string* error) {
  if (!o.listen.empty()) {
    untorn::config::Portal p;
    if (!untorn::config::ParseHostPort(o.listen, &p, error)) {
      *error = "--listen: " + *error;
      return false;
    }
    config->portals = {p};
  }
  if (!o.advertise.empty()) {
    untorn::config::Portal check;
    if (!untorn::config::ParseHostPort(o.advertise, &check, error)) {
      *error = "--advertise: " + *error;
      return false;
    }
    for (auto& p : config->portals) p.advertise = o.advertise;
  }
  if (!o.data_dir.empty()) config->data_dir = o.data_dir;
  if (!o.metrics.empty()) {
    untorn::config::Portal check;
    if (!untorn::config::ParseHostPort(o.metrics, &check, error)) {
      *error = "--metrics: " + *error;
      return false;
    }
    config->metrics = o.metrics;
  }
  if (!o.log_level.empty()) config->log_level = o.log_level;
  if (o.control_socket) config->control_socket = *o.control_socket;
  return true;
}

int Usage(const char* error) {
  std::fprintf(stderr, "untornd: %s\nTry 'untornd --help'.\n", error);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using untorn::config::Config;
  // Command buffers (up to MaxBurstLength, 1 MiB reads are common) come from the heap, not from
  // a fresh mmap each: glibc's default maps every block over 128 KiB and unmaps it on free, so
  // each large read paid page faults and kernel page zeroing (about 8 % of the daemon's CPU in
  // 1 MiB sequential reads). The heap keeps up to 64 MiB of free space before trimming.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  std::string config_file, listen, advertise, data_dir, metrics, log_level;
  std::optional<std::string> control_socket;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--version") {
      std::printf("untornd %s (%s)\n", UNTORN_VERSION, UNTORN_COMMIT);
      return 0;
    }
    if (arg == "--print-default-config") {
      std::fwrite(untorn::config::EmbeddedDefault().data(), 1,
                  untorn::config::EmbeddedDefault().size(), stdout);
      return 0;
    }
    if (arg == "--check-config") {
      std::string file, error;
      if (!value(&file)) return Usage("--check-config needs a file");
      Config c;
      if (!untorn::config::LoadFile(file, &c, &error)) {
        std::fprintf(stderr, "untornd: %s\n", error.c_str());
        return 1;
      }
      std::printf("%s: valid (%zu target(s))\n", file.c_str(), c.targets.size());
      for (size_t t = 0; t < c.targets.size(); ++t) {
        for (size_t l = 0; l < c.targets[t].luns.size(); ++l) {
          const auto& lun = c.targets[t].luns[l];
          const auto u =
              untorn::config::LinuxAtomicView(lun.atomic, lun.block_size, lun.physical_block_size);
          std::printf(
              "targets[%zu].luns[%zu]: %s linux_atomic_unit_min=%llu "
              "linux_atomic_unit_max=%llu%s%s\n",
              t, l, c.targets[t].iqn.c_str(),
              static_cast<unsigned long long>(uint64_t{u.unit_min} * lun.block_size),
              static_cast<unsigned long long>(uint64_t{u.unit_max} * lun.block_size),
              u.reason.empty() ? "" : " off: ", u.reason.c_str());
        }
      }
      return 0;
    }
    bool ok = true;
    if (arg == "--config")
      ok = value(&config_file);
    else if (arg == "--listen")
      ok = value(&listen);
    else if (arg == "--advertise")
      ok = value(&advertise);
    else if (arg == "--data-dir")
      ok = value(&data_dir);
    else if (arg == "--metrics")
      ok = value(&metrics);
    else if (arg == "--log-level")
      ok = value(&log_level);
    else if (arg == "--control-socket")
      ok = value(&control_socket.emplace());
    else
      return Usage(("unknown option " + arg).c_str());
    if (!ok) return Usage((arg + " needs a value").c_str());
  }

  Config config;
  std::string error;
  const bool loaded = config_file.empty() ? untorn::config::Parse(untorn::config::EmbeddedDefault(),
                                                                  &config, &error)
                                          : untorn::config::LoadFile(config_file, &config, &error);
  if (!loaded) {
    std::fprintf(stderr, "untornd: %s\n", error.c_str());
    return 1;
  }
  const Overrides overrides{listen, advertise, data_dir, metrics, log_level, control_socket};
  if (!ApplyOverrides(overrides, &config, &error)) return Usage(error.c_str());
  untorn::target::LogLevel level{};
  if (!untorn::target::ParseLogLevel(config.log_level, &level)) {
    return Usage("--log-level must be debug, info, warn or error");
  }
  untorn::target::SetLogLevel(level);

  untorn::target::Server server(std::move(config), config_file, UNTORN_VERSION, UNTORN_COMMIT);
  if (!config_file.empty()) {  // a reload reads the file again, with the same overrides
    server.SetConfigSource([config_file, overrides](Config* out, std::string* why) {
      return untorn::config::LoadFile(config_file, out, why) && ApplyOverrides(overrides, out, why);
    });
  }
  if (!server.Open()) return 1;
  return server.Run();
}
