// untornctl: the command-line client of untornd's control interface (JSON-RPC 2.0 over its
// UNIX socket, docs/control.md). Human output by default, the daemon's JSON with --json.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tools/cli.h"

namespace {

using json = nlohmann::json;

constexpr const char* kServiceSocket = "/run/untorn/untornd.sock";  // untornd.service's

constexpr const char* kUsage = R"(usage: untornctl [--socket PATH] [--json] COMMAND [ARGS]

Talks to a running untornd over its control socket.

commands:
  status [--watch SECONDS]          portals, targets, LUNs and sessions
  session list                      the sessions
  session drop TSIH                 end a session (the initiator may log in again)
  lun resize TARGET LUN SIZE [--force]
                                    grow a LUN to SIZE (bytes, or 512MiB, 2GiB, ...); shrinking
                                    needs --force and loses the blocks past the new end
  lun add TARGET LUN-JSON           add a LUN to a target that serves; LUN-JSON is its object
                                    as in the configuration file, e.g.
                                    '{"id": 1, "backing_file": "lun1.img", "size": "1GiB"}'
  lun remove TARGET LUN [--force]   take a LUN out of service (its files stay); refused while
                                    sessions are logged into the target unless --force, which
                                    ends them
  config save [PATH]                write the running configuration (default: the file untornd
                                    was started with), atomically, mode 0600
  reload                            read the configuration file again (as SIGHUP does): apply
                                    what can change live, or change nothing and say which field
                                    needs a restart
  call METHOD [PARAMS-JSON]         any JSON-RPC method, e.g. call status '{}'

options:
  --socket PATH   the control socket (default: $UNTORN_SOCKET, else the packaged service's
                  /run/untorn/untornd.sock if it exists, else ./untorn-data/untornd.sock)
  --json          print the daemon's JSON result instead of text
  --help          this text
  --version       print the version
)";

int Usage(const std::string& why) { return untorn::tools::BadUsage("untornctl", why); }

// One request over a fresh connection; the parsed response, or nullopt with *error.
std::optional<json> Call(const std::string& socket_path, const std::string& method,
                         const json& params, std::string* error) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return std::nullopt;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    ::close(fd);
    *error = "socket path too long: " + socket_path;
    return std::nullopt;
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    *error = "cannot connect to " + socket_path + ": " + std::strerror(errno) +
             " (is untornd running? --socket names its control socket)";
    ::close(fd);
    return std::nullopt;
  }
  const std::string request =
      json{{"jsonrpc", "2.0"}, {"method", method}, {"params", params}, {"id", 1}}.dump() + "\n";
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = std::string("send: ") + std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buf[65536];
  while (response.empty() || response.back() != '\n') {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  try {
    return json::parse(response);
  } catch (const json::exception&) {
    *error = "untornd sent no valid answer";
    return std::nullopt;
  }
}

std::string Bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (u < 4 && v >= 1024) {
    v /= 1024;
    ++u;
  }
  char out[32];
  std::snprintf(out, sizeof out, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return out;
}

void PrintSession(const json& s) {
  std::printf(
      "  TSIH %-5u %s from %s, ISID %s, since %s (%llds): %llu commands, %s read, %s "
      "written%s\n",
      s.value("tsih", 0u), s.value("initiator", "").c_str(), s.value("address", "").c_str(),
      s.value("isid", "").c_str(), s.value("since", "").c_str(),
      static_cast<long long>(s.value("seconds", 0LL)),
      static_cast<unsigned long long>(s.value("commands", 0ULL)),
      Bytes(s.value("bytes_read", 0ULL)).c_str(), Bytes(s.value("bytes_written", 0ULL)).c_str(),
      s.value("chap_name", "").empty() ? "" : (", CHAP " + s.value("chap_name", "")).c_str());
}

void PrintSessions(const json& sessions) {
  std::printf("sessions: %zu\n", sessions.size());
  for (const auto& s : sessions) PrintSession(s);
}

void PrintStatus(const json& r) {
  std::printf("untornd %s, configuration %s\n", r.value("version", "?").c_str(),
              r.value("config_file", "").empty() ? "(embedded default)"
                                                 : r.value("config_file", "").c_str());
  for (const auto& p : r["portals"]) {
    std::printf("portal %s:%u\n", p.value("host", "").c_str(), p.value("port", 0u));
  }
  for (const auto& t : r["targets"]) {
    std::printf("target %s%s\n", t.value("iqn", "").c_str(),
                t.value("alias", "").empty() ? "" : (" (" + t.value("alias", "") + ")").c_str());
    for (const auto& l : t["luns"]) {
      std::string store = l.value("store", "");
      if (l.contains("journal")) {
        store += ", journal " + Bytes(l["journal"].value("used_bytes", 0ULL)) + " of " +
                 Bytes(l["journal"].value("size_bytes", 0ULL)) + " used";
      }
      std::string atomic = "off";
      if (l.contains("atomic") && l["atomic"].value("linux_unit_max_bytes", 0ULL) > 0) {
        atomic = Bytes(l["atomic"].value("linux_unit_min_bytes", 0ULL)) + " to " +
                 Bytes(l["atomic"].value("linux_unit_max_bytes", 0ULL));
      }
      std::printf("  LUN %u: %s (%llu blocks of %u B), %s, write cache %s%s, atomic writes %s\n",
                  l.value("id", 0u), Bytes(l.value("size", 0ULL)).c_str(),
                  static_cast<unsigned long long>(l.value("blocks", 0ULL)),
                  l.value("block_size", 0u), store.c_str(),
                  l.value("write_cache", false) ? "on" : "off",
                  l.value("read_only", false) ? ", read-only" : "", atomic.c_str());
    }
  }
  PrintSessions(r["sessions"]);
}

// Prints an error response; returns the exit code.
int PrintError(const json& e) {
  std::string line = "untornctl: " + e.value("message", std::string("error"));
  if (e.contains("data")) {
    const json& d = e["data"];
    if (d.contains("field")) line += ": " + d.value("field", "");
    if (d.contains("reason") && d.value("reason", "") != e.value("message", "")) {
      line += (d.contains("field") ? " " : ": ") + d.value("reason", "");
    }
  }
  std::fprintf(stderr, "%s\n", line.c_str());
  if (e.contains("data") && e["data"].contains("refused")) {
    for (const auto& r : e["data"]["refused"]) {
      std::fprintf(stderr, "  %s\n", r.get<std::string>().c_str());
    }
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // $UNTORN_SOCKET, else the packaged service's socket where it exists, else the default data
  // directory's.
  std::string socket_path = "./untorn-data/untornd.sock";
  if (::access(kServiceSocket, F_OK) == 0) socket_path = kServiceSocket;
  if (const char* env = std::getenv("UNTORN_SOCKET"); env != nullptr && *env != '\0') {
    socket_path = env;
  }
  bool as_json = false;
  std::vector<std::string> args;
  if (int rc = untorn::tools::HelpOrVersion(argc, argv, "untornctl", kUsage); rc >= 0) return rc;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json") {
      as_json = true;
    } else if (a == "--socket") {
      if (i + 1 >= argc) return Usage("--socket needs a path");
      socket_path = argv[++i];
    } else {
      args.push_back(a);
    }
  }
  if (args.empty()) return Usage("no command given");
  std::string method;
  json params = json::object();
  int watch = 0;
  const auto take_flag = [&](const char* flag) {
    for (auto it = args.begin(); it != args.end(); ++it) {
      if (*it == flag) {
        args.erase(it);
        return true;
      }
    }
    return false;
  };
  const std::string& cmd = args[0];
  if (cmd == "status") {
    method = "status";
    for (size_t i = 1; i < args.size(); ++i) {
      if (args[i] == "--watch" && i + 1 < args.size()) {
        watch = std::atoi(args[++i].c_str());
        if (watch <= 0) return Usage("--watch needs a number of seconds");
      } else {
        return Usage("status: unexpected " + args[i]);
      }
    }
  } else if (cmd == "session" && args.size() >= 2 && args[1] == "list") {
    if (args.size() != 2) return Usage("session list takes no arguments");
    method = "session.list";
  } else if (cmd == "session" && args.size() >= 2 && args[1] == "drop") {
    if (args.size() != 3) return Usage("session drop needs a TSIH");
    char* end = nullptr;
    const unsigned long tsih = std::strtoul(args[2].c_str(), &end, 0);
    if (end == args[2].c_str() || *end != '\0') return Usage("TSIH must be a number");
    method = "session.drop";
    params["tsih"] = tsih;
  } else if (cmd == "lun" && args.size() >= 2 && args[1] == "resize") {
    const bool force = take_flag("--force");
    if (args.size() != 5) return Usage("lun resize needs TARGET LUN SIZE");
    char* end = nullptr;
    const unsigned long lun = std::strtoul(args[3].c_str(), &end, 10);
    if (end == args[3].c_str() || *end != '\0') return Usage("LUN must be a number");
    method = "lun.resize";
    params = {{"target", args[2]}, {"lun", lun}, {"size", args[4]}, {"force", force}};
  } else if (cmd == "lun" && args.size() >= 2 && args[1] == "add") {
    if (args.size() != 4) return Usage("lun add needs TARGET LUN-JSON");
    method = "lun.add";
    try {
      params = {{"target", args[2]}, {"lun", json::parse(args[3])}};
    } catch (const json::exception& e) {
      return Usage(std::string("LUN-JSON: ") + e.what());
    }
  } else if (cmd == "lun" && args.size() >= 2 && args[1] == "remove") {
    const bool force = take_flag("--force");
    if (args.size() != 4) return Usage("lun remove needs TARGET LUN");
    char* end = nullptr;
    const unsigned long lun = std::strtoul(args[3].c_str(), &end, 10);
    if (end == args[3].c_str() || *end != '\0') return Usage("LUN must be a number");
    method = "lun.remove";
    params = {{"target", args[2]}, {"lun", lun}, {"force", force}};
  } else if (cmd == "config" && args.size() >= 2 && args[1] == "save") {
    if (args.size() > 3) return Usage("config save takes at most a path");
    method = "config.save";
    if (args.size() == 3) params["path"] = args[2];
  } else if (cmd == "reload") {
    if (args.size() != 1) return Usage("reload takes no arguments");
    method = "config.reload";
  } else if (cmd == "call") {
    if (args.size() < 2 || args.size() > 3) return Usage("call needs METHOD [PARAMS-JSON]");
    method = args[1];
    if (args.size() == 3) {
      try {
        params = json::parse(args[2]);
      } catch (const json::exception& e) {
        return Usage(std::string("PARAMS-JSON: ") + e.what());
      }
    }
  } else {
    return Usage("unknown command: " + cmd);
  }

  for (;;) {
    std::string error;
    const auto response = Call(socket_path, method, params, &error);
    if (!response) {
      std::fprintf(stderr, "untornctl: %s\n", error.c_str());
      return 1;
    }
    if (response->contains("error")) {
      if (as_json) std::printf("%s\n", (*response)["error"].dump(2).c_str());
      return PrintError((*response)["error"]);
    }
    const json& r = (*response)["result"];
    if (watch > 0 && ::isatty(STDOUT_FILENO)) std::fputs("\033[H\033[2J", stdout);
    if (as_json) {
      std::printf("%s\n", r.dump(2).c_str());
    } else if (method == "status") {
      PrintStatus(r);
    } else if (method == "session.list") {
      PrintSessions(r["sessions"]);
    } else if (method == "session.drop") {
      std::printf("dropped session %u of %s\n", r["dropped"].value("tsih", 0u),
                  r["dropped"].value("initiator", "").c_str());
    } else if (method == "lun.resize") {
      std::printf("%s LUN %u: %s -> %s (%llu blocks)\n", r.value("target", "").c_str(),
                  r.value("lun", 0u), Bytes(r.value("size_before", 0ULL)).c_str(),
                  Bytes(r.value("size", 0ULL)).c_str(),
                  static_cast<unsigned long long>(r.value("blocks", 0ULL)));
    } else if (method == "lun.add") {
      std::printf("%s LUN %u added: %s\n", r.value("target", "").c_str(), r["lun"].value("id", 0u),
                  Bytes(r["lun"].value("size", 0ULL)).c_str());
    } else if (method == "lun.remove") {
      std::printf("%s LUN %u removed (%llu session(s) ended; its files are kept: %s)\n",
                  r.value("target", "").c_str(), r.value("lun", 0u),
                  static_cast<unsigned long long>(r.value("sessions_ended", 0ULL)),
                  r.value("backing_file", "").c_str());
    } else if (method == "config.save") {
      std::printf("saved %s\n", r.value("path", "").c_str());
    } else if (method == "config.reload") {
      std::printf("reloaded: %zu change(s)\n", r["applied"].size());
      for (const auto& c : r["applied"]) std::printf("  %s\n", c.get<std::string>().c_str());
    } else {
      std::printf("%s\n", r.dump(2).c_str());
    }
    std::fflush(stdout);
    if (watch <= 0) return 0;
    std::this_thread::sleep_for(std::chrono::seconds(watch));
  }
}
