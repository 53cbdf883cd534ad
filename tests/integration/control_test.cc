// The control interface against a live untornd, over its real UNIX socket: every method, bad
// input answered with a JSON-RPC error naming the field, and the daemon (and an iSCSI session
// beside it) unaffected.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "raw_test_util.h"

namespace untorn::testing {
namespace {

using json = nlohmann::json;

// One connection to the control socket; requests are lines, answers are lines.
class ControlClient {
 public:
  explicit ControlClient(const UntorndProcess& d) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string path = d.dir() + "/data/untornd.sock";
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
    timeval tv{10, 0};  // a missing answer fails the test instead of hanging it
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~ControlClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] bool connected() const { return fd_ >= 0; }

  bool SendLine(const std::string& line) {
    const std::string text = line + "\n";
    return ::send(fd_, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
  }
  // The next answer line parsed, or null (connection closed, timeout).
  json ReadLine() {
    while (buffer_.find('\n') == std::string::npos) {
      char buf[65536];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return nullptr;
      buffer_.append(buf, static_cast<size_t>(n));
    }
    const size_t nl = buffer_.find('\n');
    const std::string line = buffer_.substr(0, nl);
    buffer_.erase(0, nl + 1);
    return json::parse(line, nullptr, false);
  }
  json Call(const std::string& method, const json& params = json::object()) {
    SendLine(
        json{{"jsonrpc", "2.0"}, {"method", method}, {"params", params}, {"id", ++id_}}.dump());
    return ReadLine();
  }

 private:
  int fd_ = -1;
  int id_ = 0;
  std::string buffer_;
};

// The error's code and data.field, "" when the answer is not an error.
std::pair<int, std::string> ErrorOf(const json& r) {
  if (!r.is_object() || !r.contains("error")) return {0, ""};
  const json& e = r["error"];
  return {e.value("code", 0), e.contains("data") ? e["data"].value("field", "") : ""};
}

TEST(Control, StatusDescribesLunsAndSessions) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander session(d);
  ASSERT_EQ(session.WriteStatus(8, 0x5a), 0);
  ControlClient c(d);
  ASSERT_TRUE(c.connected());
  const json r = c.Call("status");
  ASSERT_TRUE(r.contains("result")) << r.dump();
  const json& s = r["result"];
  ASSERT_EQ(s["targets"].size(), 1u);
  const json& lun = s["targets"][0]["luns"][0];
  EXPECT_EQ(lun["size"], 64u << 20);
  EXPECT_EQ(lun["block_size"], 512);
  EXPECT_EQ(lun["store"], "journaled");
  EXPECT_GT(lun["journal"]["size_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(lun["write_cache"], true);
  EXPECT_EQ(lun["atomic"]["linux_unit_max_bytes"], 512 * 1024);
  EXPECT_EQ(s["portals"][0]["port"], d.port());
  ASSERT_EQ(s["sessions"].size(), 1u);
  const json& ses = s["sessions"][0];
  EXPECT_EQ(ses["initiator"], "iqn.2026-11.org.untorn:bystander");
  EXPECT_EQ(ses["target"], kTargetIqn);
  EXPECT_NE(ses["address"].get<std::string>().find("127.0.0.1:"), std::string::npos);
  EXPECT_GE(ses["commands"].get<uint64_t>(), 1u);
  EXPECT_EQ(ses["bytes_written"], 8 * 512);
  EXPECT_EQ(c.Call("session.list")["result"]["sessions"].size(), 1u);
}

TEST(Control, BadRequestsAreAnsweredWithTheFieldAndChangeNothing) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander session(d);
  ControlClient c(d);
  ASSERT_TRUE(c.connected());
  EXPECT_EQ(ErrorOf(c.Call("no.such.method")).first, -32601);
  EXPECT_EQ(ErrorOf(c.Call("lun.resize", {{"target", kTargetIqn}, {"lun", "0"}, {"size", "1GiB"}})),
            std::make_pair(-32602, std::string("params.lun")));
  EXPECT_EQ(ErrorOf(c.Call("lun.resize", {{"target", kTargetIqn}, {"lun", 7}, {"size", "1GiB"}})),
            std::make_pair(-32602, std::string("params.lun")));
  EXPECT_EQ(ErrorOf(c.Call("lun.resize", {{"target", "iqn.nope"}, {"lun", 0}, {"size", 1}})),
            std::make_pair(-32602, std::string("params.target")));
  EXPECT_EQ(ErrorOf(c.Call("lun.resize", {{"target", kTargetIqn}, {"lun", 0}, {"size", true}})),
            std::make_pair(-32602, std::string("params.size")));
  EXPECT_EQ(ErrorOf(c.Call("lun.resize", {{"target", kTargetIqn}, {"lun", 0}, {"size", "12XB"}})),
            std::make_pair(-32602, std::string("params.size")));
  EXPECT_EQ(ErrorOf(c.Call("lun.resize", {{"target", kTargetIqn}, {"lun", 0}, {"size", "1MiB"}})),
            std::make_pair(-32602, std::string("params.size")))
      << "a shrink without force";
  EXPECT_EQ(
      ErrorOf(c.Call("lun.resize", {{"target", kTargetIqn}, {"lun", 0}, {"size", 1}, {"x", 1}})),
      std::make_pair(-32602, std::string("params.x")));
  EXPECT_EQ(ErrorOf(c.Call("session.drop", {{"tsih", 999}})),
            std::make_pair(-32602, std::string("params.tsih")));
  EXPECT_EQ(ErrorOf(c.Call("status", json::array({1}))).first, -32602);
  // Not JSON; not a request; a batch; a notification (no answer: the next line is the status).
  c.SendLine("{not json");
  EXPECT_EQ(ErrorOf(c.ReadLine()).first, -32700);
  c.SendLine(R"({"jsonrpc":"1.0","method":"status","id":5})");
  EXPECT_EQ(ErrorOf(c.ReadLine()), std::make_pair(-32600, std::string("jsonrpc")));
  c.SendLine(
      R"([{"jsonrpc":"2.0","method":"session.list","id":1},{"jsonrpc":"2.0","method":"x","id":2}])");
  const json batch = c.ReadLine();
  ASSERT_TRUE(batch.is_array()) << batch.dump();
  EXPECT_EQ(batch.size(), 2u);
  c.SendLine(R"({"jsonrpc":"2.0","method":"session.list"})");
  c.SendLine(R"({"jsonrpc":"2.0","method":"status","id":"after"})");
  const json after = c.ReadLine();
  EXPECT_EQ(after.value("id", ""), "after") << after.dump();
  // The LUN is as it was, the session works, and a line over 1 MiB ends only that client.
  EXPECT_EQ(c.Call("status")["result"]["targets"][0]["luns"][0]["size"], 64u << 20);
  EXPECT_TRUE(session.Works());
  c.SendLine(std::string(2 << 20, ' '));
  EXPECT_EQ(ErrorOf(c.ReadLine()).first, -32600);
  ControlClient again(d);
  EXPECT_TRUE(again.Call("status").contains("result"));
  EXPECT_TRUE(session.Works());
}

// A resize under a logged-in session: the unit attention, the new capacity, the data.
TEST(Control, LunResizeUnderASession) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  std::string error;
  Context s = Login(d.portal(), kTargetIqn, {}, &error);
  ASSERT_TRUE(s) << error;
  ClearUnitAttentions(s.get());
  std::vector<uint8_t> data(4096, 0x6b);
  {
    Task w(iscsi_write16_sync(s.get(), 0, 100, data.data(), 4096, 512, 0, 0, 0, 0, 0));
    ASSERT_TRUE(w && w->status == SCSI_STATUS_GOOD);
  }
  ControlClient c(d);
  const json r = c.Call("lun.resize", {{"target", kTargetIqn}, {"lun", 0}, {"size", "128MiB"}});
  ASSERT_TRUE(r.contains("result")) << r.dump();
  EXPECT_EQ(r["result"]["size"], 128u << 20);
  {
    Task t(iscsi_testunitready_sync(s.get(), 0));
    ASSERT_TRUE(t);
    EXPECT_EQ(t->status, SCSI_STATUS_CHECK_CONDITION);
    EXPECT_EQ(t->sense.key, SCSI_SENSE_UNIT_ATTENTION);
    EXPECT_EQ(t->sense.ascq, 0x2a09);  // CAPACITY DATA HAS CHANGED
  }
  {
    Task t(iscsi_readcapacity16_sync(s.get(), 0));
    ASSERT_TRUE(t && t->status == SCSI_STATUS_GOOD);
    auto* rc = static_cast<scsi_readcapacity16*>(scsi_datain_unmarshall(t.get()));
    ASSERT_NE(rc, nullptr);
    EXPECT_EQ(rc->returned_lba, (128u << 20) / 512 - 1);
  }
  {
    Task r2(iscsi_read16_sync(s.get(), 0, 100, 4096, 512, 0, 0, 0, 0, 0));
    ASSERT_TRUE(r2 && r2->status == SCSI_STATUS_GOOD);
    EXPECT_EQ(std::vector<uint8_t>(r2->datain.data, r2->datain.data + r2->datain.size), data);
    Task w(iscsi_write16_sync(s.get(), 0, (128u << 20) / 512 - 8, data.data(), 4096, 512, 0, 0, 0,
                              0, 0));
    ASSERT_TRUE(w);
    EXPECT_EQ(w->status, SCSI_STATUS_GOOD) << "a write to the new end";
  }
  // Saved, the running configuration starts the daemon again at the new size.
  const json saved = c.Call("config.save");
  ASSERT_TRUE(saved.contains("result")) << saved.dump();
  s.reset();
  ASSERT_EQ(d.Stop(), 0);
  ASSERT_TRUE(d.Restart()) << d.Log();
  ControlClient after(d);
  EXPECT_EQ(after.Call("status")["result"]["targets"][0]["luns"][0]["size"], 128u << 20);
}

TEST(Control, SessionDropEndsTheSession) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  Bystander bystander(d);
  RawClient raw(d.port());
  ASSERT_TRUE(raw.Login(kTargetIqn, {}));
  ControlClient c(d);
  uint64_t tsih = 0;
  const json list = c.Call("session.list");
  for (const auto& s : list["result"]["sessions"]) {
    if (s["initiator"] == "iqn.2026-11.org.untorn:raw") tsih = s["tsih"].get<uint64_t>();
  }
  ASSERT_NE(tsih, 0u) << list.dump();
  const json r = c.Call("session.drop", {{"tsih", tsih}});
  ASSERT_TRUE(r.contains("result")) << r.dump();
  EXPECT_TRUE(raw.ClosedWithin(5000));
  EXPECT_TRUE(bystander.Works());
  // The registry lets the session go once its connection has closed (polled, bounded).
  size_t left = 2;
  for (int i = 0; i < 100 && left != 1; ++i) {
    left = c.Call("session.list")["result"]["sessions"].size();
    if (left != 1) ::usleep(20000);
  }
  EXPECT_EQ(left, 1u);
}

// At most 16 control clients: the 17th is closed unanswered, and a slot that frees is taken
// again. A second daemon does not take over a socket a live one answers on.
TEST(Control, ClientsAreCappedAndALiveSocketIsNotTakenOver) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  std::vector<std::unique_ptr<ControlClient>> clients;
  for (int i = 0; i < 16; ++i) {
    clients.push_back(std::make_unique<ControlClient>(d));
    ASSERT_TRUE(clients.back()->Call("session.list").contains("result")) << i;
  }
  {
    ControlClient extra(d);
    EXPECT_TRUE(extra.Call("session.list").is_null()) << "a 17th client was served";
  }
  clients.pop_back();
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {  // the slot frees when the server sees the close
    ControlClient again(d);
    served = again.Call("session.list").contains("result");
    if (!served) ::usleep(20000);
  }
  EXPECT_TRUE(served);

  UntorndProcess second(DefaultConfig(), {"--control-socket", d.dir() + "/data/untornd.sock"});
  EXPECT_FALSE(second.ok());
  EXPECT_NE(second.Log().find("another untornd answers"), std::string::npos) << second.Log();
  EXPECT_TRUE(clients.front()->Call("status").contains("result"));
}

// A config file as DefaultConfig() writes it, with `target_extra` in the target and the LUN at
// `size`, and @DATA_DIR@ replaced as UntorndProcess does.
void RewriteConfig(const UntorndProcess& d, const std::string& target_extra,
                   const std::string& lun_extra) {
  std::string text = DefaultConfig(target_extra, lun_extra);
  const std::string marker = "@DATA_DIR@";
  text.replace(text.find(marker), marker.size(), d.dir() + "/data");
  std::ofstream(d.config_path()) << text;
}

bool CanLogIn(const UntorndProcess& d, const std::string& initiator) {
  LoginOptions o;
  o.initiator = initiator;
  std::string error;
  return static_cast<bool>(Login(d.portal(), kTargetIqn, o, &error));
}

// config.reload applies what can change live (ACLs for new logins, a LUN that grows, the log
// level) and refuses, changing nothing, what cannot (a block size), naming the field; a file
// that does not parse changes nothing; a running session is not touched. SIGHUP does the same.
TEST(Control, ReloadAppliesWhatCanChangeLiveAndRefusesTheRest) {
  const std::string x = "iqn.2026-11.org.untorn:x", y = "iqn.2026-11.org.untorn:y";
  UntorndProcess d(DefaultConfig(R"("allowed_initiators": ["iqn.2026-11.org.untorn:x"])"),
                   {"--log-level", "debug"});
  ASSERT_TRUE(d.ok()) << d.Log();
  LoginOptions ox;
  ox.initiator = x;
  std::string error;
  Context sx = Login(d.portal(), kTargetIqn, ox, &error);
  ASSERT_TRUE(sx) << error;
  EXPECT_FALSE(CanLogIn(d, y));
  ControlClient c(d);

  RewriteConfig(d, R"("allowed_initiators": [")" + x + R"(", ")" + y + R"("])",
                R"("size": "128MiB")");
  const json r = c.Call("config.reload");
  ASSERT_TRUE(r.contains("result")) << r.dump();
  EXPECT_GE(r["result"]["applied"].size(), 2u) << r.dump();
  EXPECT_TRUE(CanLogIn(d, y)) << "the new ACL does not let y in";
  EXPECT_EQ(c.Call("status")["result"]["targets"][0]["luns"][0]["size"], 128u << 20);
  ClearUnitAttentions(sx.get());
  Task rc(iscsi_readcapacity16_sync(sx.get(), 0));
  ASSERT_TRUE(rc && rc->status == SCSI_STATUS_GOOD);
  auto* cap = static_cast<scsi_readcapacity16*>(scsi_datain_unmarshall(rc.get()));
  ASSERT_NE(cap, nullptr);
  EXPECT_EQ(cap->returned_lba, (128u << 20) / 512 - 1);

  // A new LUN in the file is put into service (its target's sessions are told).
  const std::string lun1 = R"(}, {"id": 1, "backing_file": "lun1.img", "size": "16MiB")";
  RewriteConfig(d, R"("allowed_initiators": [")" + x + R"(", ")" + y + R"("])",
                R"("size": "128MiB")" + lun1);
  const json with_lun = c.Call("config.reload");
  ASSERT_TRUE(with_lun.contains("result")) << with_lun.dump();
  EXPECT_EQ(c.Call("status")["result"]["targets"][0]["luns"].size(), 2u);
  ClearUnitAttentions(sx.get());
  Task luns(iscsi_reportluns_sync(sx.get(), 0, 4096));
  ASSERT_TRUE(luns && luns->status == SCSI_STATUS_GOOD);
  auto* list = static_cast<scsi_reportluns_list*>(scsi_datain_unmarshall(luns.get()));
  ASSERT_NE(list, nullptr);
  EXPECT_EQ(list->num, 2u);

  // A block size change (and a lost ACL entry with it) is refused whole: y still gets in.
  RewriteConfig(d, R"("allowed_initiators": [")" + x + R"("])",
                R"("size": "128MiB", "block_size": 4096, "physical_block_size": 4096)" + lun1);
  const json refused = c.Call("config.reload");
  ASSERT_TRUE(refused.contains("error")) << refused.dump();
  EXPECT_EQ(refused["error"]["code"], -32000);
  EXPECT_NE(refused["error"]["data"]["refused"].dump().find("targets[0].luns[0].block_size"),
            std::string::npos)
      << refused.dump();
  EXPECT_TRUE(CanLogIn(d, y)) << "a refused reload changed the ACL";

  std::ofstream(d.config_path()) << "{ not json";
  const json broken = c.Call("config.reload");
  ASSERT_TRUE(broken.contains("error")) << broken.dump();
  EXPECT_TRUE(CanLogIn(d, y));
  EXPECT_EQ(c.Call("status")["result"]["targets"][0]["luns"][0]["size"], 128u << 20);

  // SIGHUP: y leaves the ACL (polled: the reload runs off the signal handler).
  RewriteConfig(d, R"("allowed_initiators": [")" + x + R"("])", R"("size": "128MiB")" + lun1);
  ASSERT_EQ(::kill(d.pid(), SIGHUP), 0);
  bool refused_now = false;
  for (int i = 0; i < 100 && !refused_now; ++i) {
    refused_now = !CanLogIn(d, y);
    if (!refused_now) ::usleep(20000);
  }
  EXPECT_TRUE(refused_now) << d.Log();
  EXPECT_NE(d.Log().find("configuration reloaded"), std::string::npos);
  Task t(iscsi_testunitready_sync(sx.get(), 0));
  EXPECT_TRUE(t && t->status == SCSI_STATUS_GOOD) << "x's session was touched";
  d.Stop();
  std::fprintf(stderr, "%s\n", d.Log().c_str());
}

// Limits change with a reload: here the per-address connection cap, at once for new
// connections; connections already open stand. (Raw sockets: libiscsi leaks a little when a
// connection is closed before its login is answered.)
TEST(Control, ReloadChangesLimitsForNewConnections) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  ControlClient c(d);
  RawClient first(d.port());
  ASSERT_TRUE(first.Login(kTargetIqn, {}));
  const auto second_served = [&] {  // another initiator: no reinstatement of the first
    RawClient second(d.port());
    auto r = LoginStep(second, 1, 3, true,
                       {{"InitiatorName", "iqn.2026-11.org.untorn:second"},
                        {"TargetName", kTargetIqn},
                        {"SessionType", "Normal"}});
    return LoginStatusOf(r) == 0;
  };
  EXPECT_TRUE(second_served());
  const auto set_cap = [&](int cap) {
    std::string text = WithLimits("\"max_connections_per_address\": " + std::to_string(cap));
    const std::string marker = "@DATA_DIR@";
    text.replace(text.find(marker), marker.size(), d.dir() + "/data");
    std::ofstream(d.config_path()) << text;
    return c.Call("config.reload");
  };
  const json r = set_cap(1);
  ASSERT_TRUE(r.contains("result")) << r.dump();
  EXPECT_FALSE(second_served()) << "the new cap is not applied";
  ExpectTestUnitReadyGood(first, 5, first.next_cmd_sn());
  ASSERT_TRUE(set_cap(64).contains("result"));
  EXPECT_TRUE(second_served());
}

// Targets added and removed by a reload: a new one serves at once; one gone from the file is
// refused while a session is logged into it, and goes once the session has ended.
TEST(Control, ReloadAddsAndRemovesTargets) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  ControlClient c(d);
  const std::string second = "iqn.2026-11.org.untorn:second";
  const auto write = [&](bool with_second) {
    std::string text = DefaultConfig();
    const std::string marker = "@DATA_DIR@";
    text.replace(text.find(marker), marker.size(), d.dir() + "/data");
    if (with_second) {
      const size_t end = text.rfind(']');  // the end of "targets"
      text.insert(end,
                  R"(, {"iqn": ")" + second +
                      R"(", "luns": [{"id": 0, "backing_file": "second.img", "size": "16MiB"}]})");
    }
    std::ofstream(d.config_path()) << text;
  };
  std::string error;
  EXPECT_FALSE(Login(d.portal(), second, {}, &error));
  write(true);
  const json added = c.Call("config.reload");
  ASSERT_TRUE(added.contains("result")) << added.dump();
  Context s = Login(d.portal(), second, {}, &error);
  ASSERT_TRUE(s) << error;
  EXPECT_TRUE(ClearUnitAttentions(s.get()));
  EXPECT_EQ(c.Call("status")["result"]["targets"].size(), 2u);

  write(false);
  const json busy = c.Call("config.reload");
  ASSERT_TRUE(busy.contains("error")) << busy.dump();
  EXPECT_NE(busy["error"]["data"]["refused"].dump().find(second), std::string::npos) << busy.dump();
  EXPECT_TRUE(ClearUnitAttentions(s.get())) << "a refused reload touched the session";
  s.reset();  // logs out
  json removed;
  for (int i = 0; i < 100; ++i) {  // the logout reaches the daemon (bounded)
    removed = c.Call("config.reload");
    if (removed.contains("result")) break;
    ::usleep(20000);
  }
  ASSERT_TRUE(removed.contains("result")) << removed.dump();
  EXPECT_FALSE(Login(d.portal(), second, {}, &error));
  EXPECT_EQ(c.Call("status")["result"]["targets"].size(), 1u);
  EXPECT_TRUE(std::filesystem::exists(d.dir() + "/data/second.img"));
}

std::vector<uint16_t> ReportLuns(iscsi_context* c) {
  Task t(iscsi_reportluns_sync(c, 0, 4096));
  if (!t || t->status != SCSI_STATUS_GOOD) return {0xffff};
  auto* list = static_cast<scsi_reportluns_list*>(scsi_datain_unmarshall(t.get()));
  if (list == nullptr) return {0xffff};
  return std::vector<uint16_t>(list->luns, list->luns + list->num);
}

// lun.add puts a LUN into service under a logged-in session (REPORTED LUNS DATA HAS CHANGED,
// REPORT LUNS, I/O); bad LUN objects are refused with the field; lun.remove is refused while a
// session is logged in, and with force ends it; the LUN's files stay, and added again it holds
// what was written.
TEST(Control, LunAddAndRemove) {
  UntorndProcess d(DefaultConfig());
  ASSERT_TRUE(d.ok()) << d.Log();
  std::string error;
  Context s = Login(d.portal(), kTargetIqn, {}, &error);
  ASSERT_TRUE(s) << error;
  ClearUnitAttentions(s.get());
  ControlClient c(d);
  const json lun1 = {
      {"id", 1},
      {"backing_file", "lun1.img"},
      {"size", "32MiB"},
      {"atomic", {{"max_transfer_length", 1024}, {"alignment", 8}, {"granularity", 8}}}};
  const json added = c.Call("lun.add", {{"target", kTargetIqn}, {"lun", lun1}});
  ASSERT_TRUE(added.contains("result")) << added.dump();
  EXPECT_EQ(added["result"]["lun"]["size"], 32u << 20);
  {
    Task t(iscsi_testunitready_sync(s.get(), 0));
    ASSERT_TRUE(t);
    EXPECT_EQ(t->status, SCSI_STATUS_CHECK_CONDITION);
    EXPECT_EQ(t->sense.ascq, 0x3f0e) << "REPORTED LUNS DATA HAS CHANGED";
  }
  EXPECT_EQ(ReportLuns(s.get()), (std::vector<uint16_t>{0, 1}));
  std::vector<uint8_t> data(4096, 0x3c);
  ClearUnitAttentions(s.get(), 1);
  {
    Task w(iscsi_write10_sync(s.get(), 1, 64, data.data(), 4096, 512, 0, 0, 0, 0, 0));
    ASSERT_TRUE(w && w->status == SCSI_STATUS_GOOD);
  }

  EXPECT_EQ(ErrorOf(c.Call("lun.add", {{"target", kTargetIqn}, {"lun", lun1}})),
            std::make_pair(-32602, std::string("params.lun.id")));
  json other = lun1;
  other["id"] = 2;
  EXPECT_EQ(ErrorOf(c.Call("lun.add", {{"target", kTargetIqn}, {"lun", other}})),
            std::make_pair(-32602, std::string("params.lun.backing_file")));
  other["backing_file"] = "lun2.img";
  other["size"] = "1000";
  EXPECT_EQ(ErrorOf(c.Call("lun.add", {{"target", kTargetIqn}, {"lun", other}})),
            std::make_pair(-32602, std::string("params.lun.size")));
  EXPECT_EQ(ErrorOf(c.Call("lun.add", {{"target", "iqn.nope"}, {"lun", other}})),
            std::make_pair(-32602, std::string("params.target")));

  const json busy = c.Call("lun.remove", {{"target", kTargetIqn}, {"lun", 1}});
  ASSERT_TRUE(busy.contains("error")) << busy.dump();
  EXPECT_NE(busy["error"]["message"].get<std::string>().find("force"), std::string::npos);
  EXPECT_EQ(ReportLuns(s.get()), (std::vector<uint16_t>{0, 1})) << "a refused remove removed";
  const json removed = c.Call("lun.remove", {{"target", kTargetIqn}, {"lun", 1}, {"force", true}});
  ASSERT_TRUE(removed.contains("result")) << removed.dump();
  EXPECT_EQ(removed["result"]["sessions_ended"], 1);
  s.reset();
  EXPECT_EQ(c.Call("status")["result"]["targets"][0]["luns"].size(), 1u);
  EXPECT_TRUE(std::filesystem::exists(d.dir() + "/data/lun1.img")) << "files must stay";

  Context again = Login(d.portal(), kTargetIqn, {}, &error);
  ASSERT_TRUE(again) << error;
  EXPECT_EQ(ReportLuns(again.get()), (std::vector<uint16_t>{0}));
  ASSERT_TRUE(c.Call("lun.add", {{"target", kTargetIqn}, {"lun", lun1}}).contains("result"));
  ClearUnitAttentions(again.get(), 1);
  Task r(iscsi_read10_sync(again.get(), 1, 64, 4096, 512, 0, 0, 0, 0, 0));
  ASSERT_TRUE(r && r->status == SCSI_STATUS_GOOD);
  EXPECT_EQ(std::vector<uint8_t>(r->datain.data, r->datain.data + r->datain.size), data)
      << "what was written before the remove is gone";
}

}  // namespace
}  // namespace untorn::testing
