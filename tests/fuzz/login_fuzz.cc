// libFuzzer target: the login state machine (security and operational negotiation, CHAP,
// stage transitions) fed a sequence of Login Request PDUs. The input is split into PDUs:
// two length bytes, then a BHS (its opcode forced to Login Request) and that many data bytes.
#include <cstddef>
#include <cstdint>

#include "config/config.h"
#include "protocol/pdu.h"
#include "target/iscsi/login.h"

using namespace untorn;

namespace {
config::Config MakeConfig() {
  config::Config c;
  config::Target open_target;
  open_target.iqn = "iqn.2026-11.org.untorn:open";
  open_target.luns.push_back({});
  config::Target chap_target;
  chap_target.iqn = "iqn.2026-11.org.untorn:chap";
  chap_target.chap = config::ChapCredentials{"user", "secret-0123456"};
  chap_target.mutual_chap = config::ChapCredentials{"target", "secret-6543210"};
  chap_target.luns.push_back({});
  c.targets = {open_target, chap_target};
  return c;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const config::Config config = MakeConfig();
  target::Login::Environment env;
  env.config = &config;
  env.local_address = "127.0.0.1:3260";
  env.random = [](uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(i * 7 + 1);
  };
  env.admit = [](const target::Login&, target::LoginStatus*) -> std::optional<uint16_t> {
    return 7;
  };
  target::Login login(std::move(env));
  size_t at = 0;
  for (int n = 0; n < 16 && at + 2 + protocol::kBhsLength <= size; ++n) {
    const size_t len = std::min<size_t>(size_t{data[at]} << 8 | data[at + 1],
                                        size - at - 2 - protocol::kBhsLength);
    at += 2;
    protocol::Pdu pdu;
    std::copy(data + at, data + at + protocol::kBhsLength, pdu.bhs.begin());
    pdu.bhs[0] = static_cast<uint8_t>((pdu.bhs[0] & 0x40) | 0x03);
    at += protocol::kBhsLength;
    pdu.data.assign(data + at, data + at + len);
    at += len;
    pdu.SyncLengths();
    const target::LoginOutcome out = login.OnPdu(pdu, static_cast<uint32_t>(n), 32);
    if (out.failed || out.complete) break;  // closed, or in full feature phase
  }
  return 0;
}
