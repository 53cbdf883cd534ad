#include "target/control/control_service.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "storage/journaled_store.h"
#include "target/iscsi/connection.h"
#include "target/log.h"

namespace untorn::target {

using json = nlohmann::json;

namespace {

// JSON-RPC 2.0 error codes (§5.1).
constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;
constexpr int kServerError = -32000;  // the method ran and failed: data.reason says why

struct RpcError {
  int code;
  std::string message;
  json data;
};

[[noreturn]] void BadParam(const std::string& field, const std::string& reason) {
  throw RpcError{
      kInvalidParams, "invalid params", {{"field", "params." + field}, {"reason", reason}}};
}

[[noreturn]] void Failed(const std::string& reason) {
  throw RpcError{kServerError, reason, {{"reason", reason}}};
}

// Rejects parameters the method does not know, as the config parser does: a typo is an error.
void CheckParams(const json& p, std::initializer_list<const char*> known) {
  for (const auto& [key, value] : p.items()) {
    bool ok = false;
    for (const char* k : known) ok = ok || key == k;
    if (!ok) BadParam(key, "unknown parameter");
  }
}

const json* Param(const json& p, const char* key, bool required) {
  if (!p.contains(key)) {
    if (required) BadParam(key, "is required");
    return nullptr;
  }
  return &p[key];
}

std::string StringParam(const json& p, const char* key, bool required) {
  const json* v = Param(p, key, required);
  if (v == nullptr) return {};
  if (!v->is_string()) BadParam(key, "must be a string");
  return v->get<std::string>();
}

uint64_t UnsignedParam(const json& p, const char* key, uint64_t max) {
  const json* v = Param(p, key, true);
  if (!v->is_number_unsigned()) BadParam(key, "must be a non-negative integer");
  const uint64_t n = v->get<uint64_t>();
  if (n > max) BadParam(key, "must be at most " + std::to_string(max));
  return n;
}

bool BoolParam(const json& p, const char* key) {
  const json* v = Param(p, key, false);
  if (v == nullptr) return false;
  if (!v->is_boolean()) BadParam(key, "must be true or false");
  return v->get<bool>();
}

std::string Iso8601(std::chrono::system_clock::time_point t) {
  const std::time_t s = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Hex(uint64_t v, int digits) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%0*llx", digits, static_cast<unsigned long long>(v));
  return buf;
}

json SessionJson(const SessionInfo& s) {
  const auto now = std::chrono::system_clock::now();
  return {{"tsih", s.tsih},
          {"initiator", s.session.initiator},
          {"isid", Hex(s.session.isid, 12)},
          {"target", s.session.target},
          {"address", s.session.peer},
          {"chap_name", s.session.identity},
          {"since", Iso8601(s.since)},
          {"seconds", std::chrono::duration_cast<std::chrono::seconds>(now - s.since).count()},
          {"commands", s.counters->commands.load(std::memory_order_relaxed)},
          {"bytes_read", s.counters->bytes_read.load(std::memory_order_relaxed)},
          {"bytes_written", s.counters->bytes_written.load(std::memory_order_relaxed)}};
}

// Writes `text` to `path` atomically: a temporary file beside it, fsync, rename, fsync of the
// directory. Mode 0600: the configuration holds CHAP secrets.
void WriteFileAtomically(const std::string& path, const std::string& text) {
  const std::filesystem::path target(path);
  const std::filesystem::path dir =
      target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) Failed("cannot create " + tmp + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      Failed("cannot write " + tmp + ": " + why);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    Failed("cannot sync " + tmp + ": " + why);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    Failed("cannot rename " + tmp + " to " + path + ": " + why);
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    const int rc = ::fsync(dfd);
    ::close(dfd);
    if (rc != 0) Failed("cannot sync directory " + dir.string() + ": " + std::strerror(errno));
  }
}

class Methods {
 public:
  explicit Methods(ControlService::Runtime& rt) : rt_(rt) {}

  json Call(const std::string& method, const json& params) {
    if (method == "status") return Status(params);
    if (method == "session.list") return SessionList(params);
    if (method == "session.drop") return SessionDrop(params);
    if (method == "lun.resize") return LunResize(params);
    if (method == "lun.add") return LunAdd(params);
    if (method == "lun.remove") return LunRemove(params);
    if (method == "config.save") return ConfigSave(params);
    if (method == "config.reload") return ConfigReload(params);
    throw RpcError{kMethodNotFound, "method not found: " + method, {{"method", method}}};
  }

 private:
  json Status(const json& p) {
    CheckParams(p, {});
    json portals = json::array();
    for (const auto& portal : rt_.config->portals) {
      portals.push_back({{"host", portal.host}, {"port", portal.port}});
    }
    json targets = json::array();
    for (const auto& t : rt_.targets->All()) {
      json luns = json::array();
      for (const auto& lu : t->Luns()) luns.push_back(LunJson(*t, *lu));
      targets.push_back({{"iqn", t->config->iqn}, {"alias", t->config->alias}, {"luns", luns}});
    }
    return {{"version", rt_.version},
            {"config_file", rt_.config_file},
            {"portals", portals},
            {"targets", targets},
            {"sessions", Sessions()}};
  }

  json SessionList(const json& p) {
    CheckParams(p, {});
    return {{"sessions", Sessions()}};
  }

  json SessionDrop(const json& p) {
    CheckParams(p, {"tsih"});
    const auto tsih = UnsignedParam(p, "tsih", 0xffff);
    for (const auto& s : rt_.sessions->List()) {
      if (s.tsih != tsih) continue;
      json dropped = SessionJson(s);
      UNTORN_LOG_INFO("control: dropping session ", s.tsih, " of ", s.session.initiator, " from ",
                      s.session.peer);
      s.conn->Stop();
      return {{"dropped", dropped}};
    }
    BadParam("tsih", "no session with TSIH " + std::to_string(tsih));
  }

  json LunResize(const json& p) {
    CheckParams(p, {"target", "lun", "size", "force"});
    auto [rt, lu, lun] = FindLun(p);
    const json* size = Param(p, "size", true);
    uint64_t bytes = 0;
    if (size->is_number_unsigned()) {
      bytes = size->get<uint64_t>();
    } else if (size->is_string()) {
      std::string error;
      if (!config::ParseSize(size->get<std::string>(), &bytes, &error)) BadParam("size", error);
    } else {
      BadParam("size", "must be a byte count or a string like \"2GiB\"");
    }
    const bool force = BoolParam(p, "force");
    const uint64_t before = lu->BlockCount() * lun->block_size;
    const storage::Status s = lu->Resize(bytes, force);
    if (!s.ok()) {
      if (s.code() == storage::Status::Code::kInvalid) BadParam("size", s.message());
      Failed("resize of " + rt->config->iqn + " LUN " + std::to_string(lu->id()) +
             " failed: " + s.message());
    }
    lun->size = bytes;
    UNTORN_LOG_INFO("control: ", rt->config->iqn, " LUN ", lu->id(), " resized from ", before,
                    " to ", bytes, " bytes");
    return {{"target", rt->config->iqn},
            {"lun", lu->id()},
            {"size_before", before},
            {"size", bytes},
            {"blocks", lu->BlockCount()}};
  }

  // A LUN, given as its object in the configuration file, added to a target that serves.
  json LunAdd(const json& p) {
    CheckParams(p, {"target", "lun"});
    const std::string iqn = StringParam(p, "target", true);
    TargetRuntime* rt = FindTarget(iqn);
    const json* spec = Param(p, "lun", true);
    if (!spec->is_object()) BadParam("lun", "must be a LUN object, as in the configuration file");
    config::Lun lun;
    std::string error;
    if (!config::ParseLunJson(spec->dump(), "params.lun", &lun, &error)) {
      const size_t colon = error.find(':');
      throw RpcError{kInvalidParams,
                     "invalid params",
                     {{"field", error.substr(0, colon)},
                      {"reason", colon == std::string::npos ? error : error.substr(colon + 2)}}};
    }
    if (rt->Find(lun.id) != nullptr) {
      BadParam("lun.id", iqn + " has a LUN " + std::to_string(lun.id) + " already");
    }
    const std::string path = config::BackingPath(*rt_.config, lun);
    config::Target* target = nullptr;
    for (auto& t : rt_.config->targets) {
      if (t.iqn == iqn) target = &t;
      for (const auto& l : t.luns) {
        if (config::BackingPath(*rt_.config, l) == path) {
          BadParam("lun.backing_file",
                   path + " is the backing file of " + t.iqn + " LUN " + std::to_string(l.id));
        }
      }
    }
    if (target == nullptr) Failed("target " + iqn + " is missing from the configuration");
    std::shared_ptr<LogicalUnit> lu = AddLun(rt, target, lun);
    if (rt_.publish_config) rt_.publish_config();
    return {{"target", iqn}, {"lun", LunJson(*rt, *lu)}};
  }

  // Opens `lun` and puts it into service in `rt`, and into the running configuration's
  // `target`. The caller publishes the configuration.
  std::shared_ptr<LogicalUnit> AddLun(TargetRuntime* rt, config::Target* target,
                                      const config::Lun& lun) {
    const std::string& iqn = rt->config->iqn;
    std::shared_ptr<LogicalUnit> lu = rt_.open_lun(*target, lun);
    if (lu == nullptr) {
      Failed(iqn + " LUN " + std::to_string(lun.id) + " could not be opened (see the log)");
    }
    // The sessions already logged in are its I_T nexuses too.
    for (const auto& s : rt_.sessions->List()) {
      if (s.session.target == iqn) lu->AddNexus({s.nexus_id, s.session.initiator, s.session.isid});
    }
    if (!rt->Add(lu, true)) Failed(iqn + " LUN " + std::to_string(lun.id) + " was added meanwhile");
    target->luns.push_back(lun);
    UNTORN_LOG_INFO("control: ", iqn, " LUN ", lun.id, " added (",
                    config::BackingPath(*rt_.config, lun), ")");
    return lu;
  }

  // A LUN taken out of service: refused while sessions are logged into its target, unless
  // `force`, which ends them first. Its files stay where they are.
  json LunRemove(const json& p) {
    CheckParams(p, {"target", "lun", "force"});
    auto [rt, lu, lun] = FindLun(p);
    const bool force = BoolParam(p, "force");
    const std::string iqn = rt->config->iqn;
    const auto users = [&] {
      std::vector<SessionInfo> out;
      for (auto& s : rt_.sessions->List()) {
        if (s.session.target == iqn) out.push_back(std::move(s));
      }
      return out;
    };
    const std::vector<SessionInfo> sessions = users();
    if (!sessions.empty() && !force) {
      Failed(std::to_string(sessions.size()) + " session(s) are logged into " + iqn +
             ": force ends them");
    }
    for (const auto& s : sessions) s.conn->Stop();
    // Bounded waits (10 s each): the sessions end, then the tasks that still hold the LU.
    for (int i = 0; i < 1000 && !users().empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const uint16_t id = lu->id();
    const std::string path = config::BackingPath(*rt_.config, *lun);
    rt->Remove(id);
    for (auto& t : rt_.config->targets) {
      if (t.iqn == iqn) std::erase_if(t.luns, [&](const config::Lun& l) { return l.id == id; });
    }
    if (rt_.publish_config) rt_.publish_config();
    for (int i = 0; i < 1000 && lu.use_count() > 1; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const storage::Status flushed = lu->Flush();
    lu.reset();  // closed here, off the network threads, unless a task still holds it
    UNTORN_LOG_INFO("control: ", iqn, " LUN ", id, " removed; ", sessions.size(),
                    " session(s) ended; its files are kept: ", path);
    if (!flushed.ok())
      Failed("LUN " + std::to_string(id) + " removed, but its flush failed: " + flushed.message());
    return {
        {"target", iqn}, {"lun", id}, {"sessions_ended", sessions.size()}, {"backing_file", path}};
  }

  // The target's runtime; the registry keeps it (only this service removes targets, one
  // request at a time).
  TargetRuntime* FindTarget(const std::string& iqn) {
    if (auto t = rt_.targets->Find(iqn)) return t.get();
    BadParam("target", "no target named " + iqn);
  }

  json ConfigSave(const json& p) {
    CheckParams(p, {"path"});
    std::string path = StringParam(p, "path", false);
    if (path.empty()) path = rt_.config_file;
    if (path.empty()) {
      BadParam("path", "untornd runs on its embedded default configuration: name a file");
    }
    const std::string text = config::ToJson(*rt_.config);
    config::Config check;
    std::string error;
    if (!config::Parse(text, &check, &error)) {  // never write what would not start
      Failed("the running configuration does not validate: " + error);
    }
    WriteFileAtomically(path, text);
    UNTORN_LOG_INFO("control: configuration saved to ", path);
    return {{"path", path}, {"bytes", text.size()}};
  }

  // The configuration file read again (with the command line's overrides): what can change
  // live is applied, LUN growth first; anything that needs a restart refuses the whole reload,
  // and a file that does not load changes nothing.
  json ConfigReload(const json& p) {
    CheckParams(p, {});
    if (!rt_.load_config) {
      Failed("untornd runs on its embedded default configuration: there is no file to reload");
    }
    config::Config next;
    std::string error;
    if (!rt_.load_config(&next, &error)) {
      throw RpcError{
          kServerError, "the configuration does not load: " + error, {{"reason", error}}};
    }
    config::Config running = *rt_.config;
    running.portals = rt_.portals_as_loaded;  // compared as loaded, before ports were bound
    config::ReloadPlan plan = config::PlanReload(running, next);
    // A target gone from the file goes only if no session is logged into it (a reload does not
    // end sessions; untornctl session drop does).
    std::vector<std::string> removed_targets;
    for (const auto& t : rt_.config->targets) {
      if (std::none_of(next.targets.begin(), next.targets.end(),
                       [&](const config::Target& n) { return n.iqn == t.iqn; })) {
        removed_targets.push_back(t.iqn);
      }
    }
    for (const auto& iqn : removed_targets) {
      size_t n = 0;
      for (const auto& s : rt_.sessions->List()) n += s.session.target == iqn ? 1 : 0;
      if (n > 0) {
        plan.refused.push_back("targets: " + iqn + " is gone from the file but " +
                               std::to_string(n) + " session(s) are logged into it");
      }
    }
    if (!plan.refused.empty()) {
      std::string first = plan.refused.front();
      if (plan.refused.size() > 1) {
        first += " (and " + std::to_string(plan.refused.size() - 1) + " more)";
      }
      throw RpcError{
          kServerError, "reload refused, nothing changed: " + first, {{"refused", plan.refused}}};
    }
    // Targets and LUNs added, LUNs that grow, targets removed, first: a failure here is
    // reported, with what was done before it kept.
    for (const auto& nt : next.targets) {
      if (rt_.targets->Find(nt.iqn) != nullptr) continue;
      std::shared_ptr<TargetRuntime> added = rt_.open_target(nt);
      if (added == nullptr)
        Failed("reload: target " + nt.iqn + " could not be opened (see the log)");
      rt_.targets->Add(std::move(added));
      rt_.config->targets.push_back(nt);
      UNTORN_LOG_INFO("reload: target ", nt.iqn, " added");
    }
    for (const auto& iqn : removed_targets) {
      std::shared_ptr<TargetRuntime> gone = rt_.targets->Remove(iqn);
      if (gone == nullptr) continue;
      for (const auto& lu : gone->Luns()) {
        if (const storage::Status st = lu->Flush(); !st.ok()) {
          UNTORN_LOG_ERROR("reload: flush of ", iqn, " LUN ", lu->id(), " failed: ", st.message());
        }
      }
      UNTORN_LOG_INFO("reload: target ", iqn, " removed (its files are kept)");
    }
    for (const auto& nt : next.targets) {
      for (const auto& nl : nt.luns) {
        TargetRuntime* target_rt = FindTarget(nt.iqn);
        if (target_rt->Find(nl.id) == nullptr) {
          config::Target* running_target = nullptr;
          for (auto& t : rt_.config->targets) {
            if (t.iqn == nt.iqn) running_target = &t;
          }
          AddLun(target_rt, running_target, nl);
          continue;
        }
        json q = {{"target", nt.iqn}, {"lun", nl.id}};
        auto [rt, lu, lun] = FindLun(q);
        if (nl.size <= lun->size) continue;
        const storage::Status s = lu->Resize(nl.size, false);
        if (!s.ok()) {
          Failed("reload: " + nt.iqn + " LUN " + std::to_string(nl.id) +
                 " not resized: " + s.message());
        }
        UNTORN_LOG_INFO("reload: ", nt.iqn, " LUN ", nl.id, " grown from ", lun->size, " to ",
                        nl.size, " bytes");
        lun->size = nl.size;
      }
    }
    LogLevel level{};
    if (ParseLogLevel(next.log_level, &level)) SetLogLevel(level);
    next.portals = rt_.config->portals;  // as bound
    *rt_.config = std::move(next);
    if (rt_.publish_config) rt_.publish_config();
    for (const auto& change : plan.live) UNTORN_LOG_INFO("reload: ", change);
    UNTORN_LOG_INFO("configuration reloaded from ", rt_.config_file, ": ", plan.live.size(),
                    " change(s)");
    return {{"applied", plan.live}};
  }

  json Sessions() {
    json out = json::array();
    for (const auto& s : rt_.sessions->List()) out.push_back(SessionJson(s));
    return out;
  }

  json LunJson(const TargetRuntime& t, LogicalUnit& lu) {
    const config::Lun* lun = nullptr;
    for (const auto& l : t.config->luns) {
      if (l.id == lu.id()) lun = &l;
    }
    const protocol::DiskDescription d = lu.Describe();
    json j = {{"id", lu.id()},
              {"size", d.block_count * d.block_size},
              {"blocks", d.block_count},
              {"block_size", d.block_size},
              {"physical_block_size", d.block_size << d.physical_exponent},
              {"write_cache", lu.WriteCacheEnabled()},
              {"read_only", d.read_only},
              {"thin", d.thin}};
    if (lun != nullptr) {
      j["backing_file"] = config::BackingPath(*rt_.config, *lun);
      const auto u =
          config::LinuxAtomicView(lun->atomic, lun->block_size, lun->physical_block_size);
      j["atomic"] = {
          {"max_transfer_length", lun->atomic.max_transfer_length},
          {"alignment", lun->atomic.alignment},
          {"granularity", lun->atomic.granularity},
          {"max_transfer_length_with_boundary", lun->atomic.max_transfer_length_with_boundary},
          {"max_boundary_size", lun->atomic.max_boundary_size},
          {"linux_unit_min_bytes", uint64_t{u.unit_min} * lun->block_size},
          {"linux_unit_max_bytes", uint64_t{u.unit_max} * lun->block_size}};
    }
    if (auto* js = dynamic_cast<storage::JournaledStore*>(&lu.store())) {
      const auto st = js->stats();
      j["store"] = "journaled";
      j["journal"] = {{"used_bytes", st.journal_used},
                      {"size_bytes", st.journal_size},
                      {"checkpoints", st.checkpoints}};
    } else {
      j["store"] = "file";
    }
    return j;
  }

  struct Found {
    TargetRuntime* rt;
    std::shared_ptr<LogicalUnit> lu;
    config::Lun* lun;
  };
  Found FindLun(const json& p) {
    const std::string iqn = StringParam(p, "target", true);
    const auto id = UnsignedParam(p, "lun", 16383);
    for (const auto& t : rt_.targets->All()) {
      if (t->config->iqn != iqn) continue;
      std::shared_ptr<LogicalUnit> lu = t->Find(static_cast<uint16_t>(id));
      if (lu == nullptr) BadParam("lun", "target " + iqn + " has no LUN " + std::to_string(id));
      for (auto& ct : rt_.config->targets) {
        if (ct.iqn != iqn) continue;
        for (auto& l : ct.luns) {
          if (l.id == id) return {t.get(), lu, &l};
        }
      }
      Failed("LUN " + std::to_string(id) + " of " + iqn + " is missing from the configuration");
    }
    BadParam("target", "no target named " + iqn);
  }

  ControlService::Runtime& rt_;
};

json ErrorResponse(const json& id, int code, const std::string& message, const json& data) {
  json e = {{"code", code}, {"message", message}};
  if (!data.is_null()) e["data"] = data;
  return {{"jsonrpc", "2.0"}, {"error", std::move(e)}, {"id", id}};
}

// One request object; null for a notification (no id: nothing is answered).
json HandleOne(Methods& m, const json& req) {
  if (!req.is_object()) return ErrorResponse(nullptr, kInvalidRequest, "invalid request", nullptr);
  const bool notification = !req.contains("id");
  json id = notification ? json(nullptr) : req["id"];
  if (!id.is_null() && !id.is_string() && !id.is_number()) {
    return ErrorResponse(nullptr, kInvalidRequest, "invalid request",
                         {{"field", "id"}, {"reason", "must be a string, a number or null"}});
  }
  try {
    if (!req.contains("jsonrpc") || req["jsonrpc"] != "2.0") {
      throw RpcError{kInvalidRequest,
                     "invalid request",
                     {{"field", "jsonrpc"}, {"reason", "must be \"2.0\""}}};
    }
    if (!req.contains("method") || !req["method"].is_string()) {
      throw RpcError{kInvalidRequest,
                     "invalid request",
                     {{"field", "method"}, {"reason", "must be a string"}}};
    }
    json params = req.contains("params") ? req["params"] : json::object();
    if (!params.is_object()) {
      throw RpcError{
          kInvalidParams, "invalid params", {{"field", "params"}, {"reason", "must be an object"}}};
    }
    json result = m.Call(req["method"].get<std::string>(), params);
    if (notification) return nullptr;
    return {{"jsonrpc", "2.0"}, {"result", std::move(result)}, {"id", id}};
  } catch (const RpcError& e) {
    if (notification) return nullptr;
    return ErrorResponse(id, e.code, e.message, e.data);
  } catch (const json::exception& e) {
    if (notification) return nullptr;
    return ErrorResponse(id, kServerError, "internal error", {{"reason", e.what()}});
  }
}

}  // namespace

std::string ControlService::Handle(std::string_view request) {
  std::lock_guard lk(mu_);
  json req;
  try {
    req = json::parse(request);
  } catch (const json::parse_error& e) {
    return ErrorResponse(nullptr, kParseError, "parse error", {{"reason", e.what()}})
               .dump(-1, ' ', false, json::error_handler_t::replace) +
           "\n";
  }
  Methods m(rt_);
  json out;
  if (req.is_array()) {
    if (req.empty()) {
      out = ErrorResponse(nullptr, kInvalidRequest, "invalid request", {{"reason", "empty batch"}});
    } else {
      out = json::array();
      for (const auto& r : req) {
        json one = HandleOne(m, r);
        if (!one.is_null()) out.push_back(std::move(one));
      }
      if (out.empty()) return {};
    }
  } else {
    out = HandleOne(m, req);
    if (out.is_null()) return {};
  }
  // Strings from the peer (a method name, a session's initiator) are dumped with invalid UTF-8
  // replaced, never thrown on.
  return out.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace untorn::target
