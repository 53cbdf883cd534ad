#include "config/config.h"

#include <gtest/gtest.h>

namespace untorn::config {
namespace {

std::string Lun(const std::string& extra) {
  return R"({"portals":[{"listen":"127.0.0.1:3260"}],"targets":[{"iqn":"iqn.2026-11.org.untorn:t",
    "luns":[{"id":0,"backing_file":"a.img","size":"1GiB")" +
         extra + "}]}]}";
}

std::string ErrorOf(const std::string& json) {
  Config c;
  std::string error;
  EXPECT_FALSE(Parse(json, &c, &error));
  return error;
}

TEST(Config, EmbeddedDefaultIsValidAndMatchesTheDocumentedDisk) {
  Config c;
  std::string error;
  ASSERT_TRUE(Parse(EmbeddedDefault(), &c, &error)) << error;
  ASSERT_EQ(c.targets.size(), 1u);
  EXPECT_EQ(c.targets[0].iqn, "iqn.2026-11.org.untorn:disk0");
  EXPECT_EQ(c.portals[0].host, "0.0.0.0");
  EXPECT_EQ(c.portals[0].port, 3260);
  EXPECT_EQ(c.data_dir, "./untorn-data");
  const auto& l = c.targets[0].luns[0];
  EXPECT_EQ(l.size, 1ULL << 30);
  const LinuxAtomicUnits u = LinuxAtomicView(l.atomic, l.block_size, l.physical_block_size);
  EXPECT_EQ(u.unit_min * l.block_size, 4096u);
  EXPECT_EQ(u.unit_max * l.block_size, 512u * 1024);
  EXPECT_GE(l.atomic.max_transfer_length, 256u);  // iscsi-test-cu's WriteAtomic16 needs it
}

TEST(Config, JournalSizeDefaultsToAQuarterOfTheLunWithinBounds) {
  const auto journal_of = [](const std::string& extra) {
    Config c;
    std::string error;
    EXPECT_TRUE(Parse(Lun(extra), &c, &error)) << error;
    return c.targets.empty() ? 0 : c.targets[0].luns[0].journal_size;
  };
  EXPECT_EQ(journal_of(""), 256ull << 20);                     // 1 GiB
  EXPECT_EQ(journal_of(R"(,"size":"64MiB")"), 64ull << 20);    // the floor
  EXPECT_EQ(journal_of(R"(,"size":"600MiB")"), 150ull << 20);  // a quarter
  EXPECT_EQ(journal_of(R"(,"size":"64GiB")"), 256ull << 20);   // the cap
  EXPECT_EQ(journal_of(R"(,"journal_size":"8MiB","max_transfer_length":1024)"), 8ull << 20);
  // Never below four times the largest transfer (65535 blocks of 4 KiB, plus a header).
  const uint64_t largest = 65535ull * 4096 + 512;
  EXPECT_EQ(journal_of(R"(,"block_size":4096,"max_transfer_length":65535)"), 4 * largest);
}

TEST(Config, ErrorsNameTheField) {
  EXPECT_EQ(ErrorOf(Lun(R"(,"size":"1GB")")),
            "targets[0].luns[0].size: must look like 1073741824, \"512MiB\" or \"1GiB\"");
  EXPECT_EQ(ErrorOf(R"({"portals":[{"listen":"127.0.0.1:3260"}],"targets":[{"iqn":"iqn.x",
    "luns":[{"id":0,"backing_file":"a","size":4097,"block_size":4096}]}]})"),
            "targets[0].luns[0].size: must be a multiple of block_size 4096");
  EXPECT_EQ(ErrorOf(Lun(R"(,"blok_size":512)")), "targets[0].luns[0].blok_size: unknown field");
  EXPECT_EQ(ErrorOf(R"({"portals":[{"listen":"nope"}],"targets":[]})"),
            "portals[0].listen: must look like HOST:PORT");
  EXPECT_NE(ErrorOf("{").find("invalid JSON"), std::string::npos);
}

TEST(Config, RefusesBadNamesAndDuplicates) {
  EXPECT_EQ(ErrorOf(R"({"portals":[{"listen":"0.0.0.0:1"}],"targets":[{"iqn":"Disk",
    "luns":[{"id":0,"backing_file":"a","size":4096}]}]})"),
            "targets[0].iqn: must be an iqn., eui. or naa. name");
  EXPECT_NE(ErrorOf(R"({"portals":[{"listen":"0.0.0.0:1"}],"targets":[{"iqn":"iqn.a",
    "luns":[{"id":0,"backing_file":"a","size":4096},{"id":0,"backing_file":"b","size":4096}]}]})")
                .find("luns[1].id: duplicate LUN id 0"),
            std::string::npos);
}

TEST(Config, ChapSecretsAreChecked) {
  const std::string base = R"({"portals":[{"listen":"0.0.0.0:1"}],"targets":[{"iqn":"iqn.a",
    "luns":[{"id":0,"backing_file":"a","size":4096}],)";
  EXPECT_EQ(ErrorOf(base + R"("chap":{"username":"u","secret":"short"}}]})"),
            "targets[0].chap.secret: must be 12 to 255 characters long");
  EXPECT_EQ(ErrorOf(base + R"("mutual_chap":{"username":"u","secret":"abcdefghijkl"}}]})"),
            "targets[0].mutual_chap: requires chap");
}

TEST(Config, AclsAreChecked) {
  const std::string base = R"({"portals":[{"listen":"0.0.0.0:1"}],"targets":[{"iqn":"iqn.a",
    "luns":[{"id":0,"backing_file":"a","size":4096}],)";
  EXPECT_EQ(ErrorOf(base + R"("allowed_initiators":["iqn.x"],"acls":[{"initiator":"iqn.x"}]}]})"),
            "targets[0].acls[0].initiator: names iqn.x twice");
  EXPECT_EQ(ErrorOf(base + R"("acls":[{"initiator":""}]}]})"),
            "targets[0].acls[0].initiator: must be an initiator name of 1 to 223 bytes");
  EXPECT_EQ(ErrorOf(base + R"("acls":[{"initiator":"iqn.x","user":"u"}]}]})"),
            "targets[0].acls[0].user: unknown field");
  EXPECT_EQ(ErrorOf(base + R"("acls":[{"initiator":"iqn.x",
      "mutual_chap":{"username":"t","secret":"abcdefghijkl"}}]}]})"),
            "targets[0].acls[0].mutual_chap: requires chap");
  EXPECT_EQ(ErrorOf(base + R"("acls":[{"initiator":"iqn.x",
      "chap":{"username":"u","secret":"abcdefghijkl"},
      "mutual_chap":{"username":"t","secret":"abcdefghijkl"}}]}]})"),
            "targets[0].acls[0].chap.secret: must differ from the mutual CHAP secret (RFC 7143 "
            "§12.1.3)");
  config::Config c;
  std::string error;
  ASSERT_TRUE(config::Parse(base + R"("chap":{"username":"all","secret":"target-secret"},
      "allowed_initiators":["iqn.y"],
      "acls":[{"initiator":"iqn.x","chap":{"username":"x","secret":"x-own-secret"}}]}]})",
                            &c, &error))
      << error;
  const config::Target& t = c.targets[0];
  EXPECT_TRUE(t.Admits("iqn.x"));
  EXPECT_TRUE(t.Admits("iqn.y"));
  EXPECT_FALSE(t.Admits("iqn.z"));
  EXPECT_EQ(t.ChapFor("iqn.x")->username, "x");
  EXPECT_EQ(t.ChapFor("iqn.y")->username, "all");
}

// A transfer of 2^32 bytes or more wraps iSCSI's 32-bit expected data length to a small
// number (0 for exactly 4 GiB): a WRITE would be acknowledged with its data never sent.
TEST(Config, TransfersOfFourGiBOrMoreAreRefused) {
  EXPECT_NE(ErrorOf(Lun(R"(,"block_size":4096,"max_transfer_length":1048576)"))
                .find("targets[0].luns[0].max_transfer_length: times block_size 4096 must stay "
                      "below 4 GiB"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Lun(R"(,"max_transfer_length":4294967295)")).find("below 4 GiB"),
            std::string::npos);
  Config c;
  std::string error;
  EXPECT_TRUE(
      Parse(Lun(R"(,"block_size":4096,"max_transfer_length":1048575,"journal":false)"), &c, &error))
      << error;
}

// Limits measured against Linux 6.12 (docs/reference table): the ones sd silently ignores are
// refused unless asked for.
TEST(Config, AtomicLimitsLinuxWouldIgnoreAreRefused) {
  const auto e = ErrorOf(Lun(R"(,"atomic":{"max_transfer_length":128,"granularity":3})"));
  EXPECT_NE(e.find("targets[0].luns[0].atomic: Linux would silently disable atomic writes"),
            std::string::npos)
      << e;
  EXPECT_NE(ErrorOf(Lun(R"(,"atomic":{"max_transfer_length":128,"granularity":8,"alignment":16})"))
                .find("alignment 16 does not divide"),
            std::string::npos);
  Config c;
  std::string error;
  EXPECT_TRUE(Parse(Lun(R"(,"atomic":{"max_transfer_length":128,"granularity":3,
      "allow_ignored_by_linux":true})"),
                    &c, &error))
      << error;
}

TEST(Config, AtomicMaximumBoundByWriteAtomic16AndMaxTransfer) {
  EXPECT_NE(ErrorOf(Lun(R"(,"atomic":{"max_transfer_length":70000})")).find("65535"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Lun(R"(,"max_transfer_length":64,"atomic":{"max_transfer_length":128})"))
                .find("must not exceed the LUN's max_transfer_length 64"),
            std::string::npos);
}

TEST(Config, LinuxViewMatchesMeasuredKernelTable) {
  // Rows of the table measured on Linux 6.12 (shared reference); units in blocks of 512 B.
  // AtomicLimits is {max_transfer_length, alignment, granularity}.
  struct Row {
    AtomicLimits a;
    uint32_t physical;
    uint32_t min, max;
  } rows[] = {
      {{8192, 2, 2}, 512, 2, 8192},   {{128, 8, 8}, 512, 8, 128}, {{128, 0, 0}, 4096, 8, 128},
      {{100, 8, 8}, 512, 8, 64},      {{128, 0, 3}, 512, 0, 0},   {{128, 16, 8}, 512, 0, 0},
      {{65535, 8, 8}, 512, 8, 32768},
  };
  for (const auto& r : rows) {
    const auto u = LinuxAtomicView(r.a, 512, r.physical);
    EXPECT_EQ(u.unit_min, r.min) << r.a.max_transfer_length << "/" << r.a.granularity;
    EXPECT_EQ(u.unit_max, r.max) << r.a.max_transfer_length << "/" << r.a.granularity;
  }
}

TEST(Config, HostPortParsing) {
  Portal p;
  std::string e;
  ASSERT_TRUE(ParseHostPort("[::1]:3261", &p, &e));
  EXPECT_EQ(p.host, "::1");
  EXPECT_EQ(p.port, 3261);
  EXPECT_FALSE(ParseHostPort("host:70000", &p, &e));
  EXPECT_FALSE(ParseHostPort(":1", &p, &e));
}

}  // namespace
}  // namespace untorn::config

namespace untorn::config {
namespace {

// ToJson writes what Parse reads back to the same configuration (what `config save` relies on).
TEST(Config, ToJsonRoundTrips) {
  const std::string rich = R"({"portals":[{"listen":"127.0.0.1:3260","advertise":"10.0.0.1:3260"},
      {"listen":"[::1]:3261"}],
    "data_dir":"/var/lib/untorn","metrics":"127.0.0.1:9100","log_level":"debug","io_threads":8,
    "control_socket":"/run/untorn/ctl.sock",
    "limits":{"max_connections":32,"nop_interval_seconds":0,"max_burst_length":65536,
              "first_burst_length":16384},
    "targets":[{"iqn":"iqn.2026-11.org.untorn:a","alias":"a",
      "chap":{"username":"u","secret":"target-secret-1"},
      "mutual_chap":{"username":"t","secret":"target-secret-2"},
      "allowed_initiators":["iqn.x"],
      "acls":[{"initiator":"iqn.y","chap":{"username":"y","secret":"y-own-secret"}}],
      "luns":[{"id":3,"backing_file":"a.img","size":"64MiB","block_size":4096,
               "physical_block_size":4096,"write_cache":false,"thin":false,"serial":"s1",
               "max_transfer_length":256,
               "journal_size":"16MiB","atomic":{"max_transfer_length":64,"alignment":1,
               "granularity":1}}]}]})";
  for (const std::string_view text : {std::string_view(rich), EmbeddedDefault()}) {
    Config a, b;
    std::string error;
    ASSERT_TRUE(Parse(text, &a, &error)) << error;
    const std::string once = ToJson(a);
    ASSERT_TRUE(Parse(once, &b, &error)) << error << "\n" << once;
    EXPECT_EQ(ToJson(b), once);
    EXPECT_EQ(b.targets[0].luns[0].size, a.targets[0].luns[0].size);
    EXPECT_EQ(b.targets[0].acls.size(), a.targets[0].acls.size());
    EXPECT_EQ(b.control_socket, a.control_socket);
  }
}

}  // namespace
}  // namespace untorn::config

namespace untorn::config {
namespace {

Config ParseOk(const std::string& text) {
  Config c;
  std::string error;
  EXPECT_TRUE(Parse(text, &c, &error)) << error;
  return c;
}

std::string Cfg(const std::string& target_extra, const std::string& lun_extra,
                const std::string& top = "") {
  return R"({"portals":[{"listen":"0.0.0.0:3260"}],)" + top +
         R"("targets":[{"iqn":"iqn.2026-11.org.untorn:t",)" + target_extra +
         R"("luns":[{"id":0,"backing_file":"a","size":"64MiB")" + lun_extra + "}]}]}";
}

bool Mentions(const std::vector<std::string>& list, const std::string& field) {
  for (const auto& s : list) {
    if (s.rfind(field, 0) == 0) return true;
  }
  return false;
}

// What a reload may change live, and what it refuses, each named by its field.
TEST(Config, PlanReloadSortsLiveChangesFromRefusals) {
  const Config running = ParseOk(Cfg("", ""));
  ReloadPlan same = PlanReload(running, running);
  EXPECT_TRUE(same.live.empty());
  EXPECT_TRUE(same.refused.empty());

  const ReloadPlan live =
      PlanReload(running, ParseOk(Cfg(R"("alias":"b","allowed_initiators":["iqn.x"],)",
                                      R"(,"size":"128MiB")", R"("log_level":"debug",)")));
  EXPECT_TRUE(live.refused.empty()) << live.refused.front();
  EXPECT_TRUE(Mentions(live.live, "log_level"));
  EXPECT_TRUE(Mentions(live.live, "targets[0].alias"));
  EXPECT_TRUE(Mentions(live.live, "targets[0].acls"));
  EXPECT_TRUE(Mentions(live.live, "targets[0].luns[0].size"));

  const ReloadPlan refused = PlanReload(
      running, ParseOk(Cfg("", R"(,"size":"32MiB","block_size":4096,"physical_block_size":4096)",
                           R"("io_threads":4,"limits":{"max_connections":8},)")));
  EXPECT_TRUE(Mentions(refused.refused, "targets[0].luns[0].size"));
  EXPECT_TRUE(Mentions(refused.refused, "targets[0].luns[0].block_size"));
  EXPECT_TRUE(Mentions(refused.refused, "io_threads"));
  EXPECT_TRUE(Mentions(refused.live, "limits"));

  Config more = running;
  more.targets[0].luns.push_back(more.targets[0].luns[0]);
  more.targets[0].luns[1].id = 1;
  more.targets.push_back(more.targets[0]);
  more.targets[1].iqn = "iqn.2026-11.org.untorn:u";
  const ReloadPlan added = PlanReload(running, more);
  EXPECT_TRUE(Mentions(added.refused, "targets[0].luns[1].backing_file"))
      << "LUN 1 on LUN 0's backing file";
  EXPECT_TRUE(Mentions(added.live, "targets[0].luns[1]: LUN 1 added"));
  EXPECT_TRUE(Mentions(added.live, "targets[1]: target iqn.2026-11.org.untorn:u added"));
  EXPECT_TRUE(Mentions(added.refused, "targets[1].luns[0].backing_file"))
      << "the new target's LUN on LUN 0's backing file";
  more.targets[0].luns[1].backing_file = "b";
  const ReloadPlan added_ok = PlanReload(running, more);
  EXPECT_FALSE(Mentions(added_ok.refused, "targets[0].luns[1]"));
  const ReloadPlan removed = PlanReload(more, running);
  EXPECT_TRUE(Mentions(removed.refused, "targets[0].luns: LUN 1"));
  EXPECT_TRUE(Mentions(removed.live, "targets: iqn.2026-11.org.untorn:u removed"));
}

}  // namespace
}  // namespace untorn::config

namespace untorn::config {
namespace {

// Two LUNs on one backing file would be two journals over one data file: refused, across
// targets too, however the path is spelt.
TEST(Config, ABackingFileServesOneLunAcrossTargets) {
  const std::string two = R"({"portals":[{"listen":"0.0.0.0:1"}],"data_dir":"/d","targets":[
    {"iqn":"iqn.2026-11.org.untorn:a","luns":[{"id":0,"backing_file":"x.img","size":4096}]},
    {"iqn":"iqn.2026-11.org.untorn:b","luns":[{"id":0,"backing_file":"./x.img","size":4096}]}]})";
  Config c;
  std::string error;
  EXPECT_FALSE(Parse(two, &c, &error));
  EXPECT_EQ(error,
            "targets[1].luns[0].backing_file: is also the backing file of "
            "iqn.2026-11.org.untorn:a LUN 0");
  std::string absolute = two;
  absolute.replace(absolute.find("./x.img"), 7, "/d/x.img");
  EXPECT_FALSE(Parse(absolute, &c, &error));
  std::string other = two;
  other.replace(other.find("./x.img"), 7, "y.img");
  EXPECT_TRUE(Parse(other, &c, &error)) << error;
}

}  // namespace
}  // namespace untorn::config
