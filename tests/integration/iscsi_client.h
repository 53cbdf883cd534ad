// Small RAII helpers over libiscsi's synchronous API for the integration tests.
#pragma once

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include <memory>
#include <string>

namespace untorn::testing {

struct ContextDeleter {
  void operator()(iscsi_context* c) const {
    if (c != nullptr) iscsi_destroy_context(c);
  }
};
using Context = std::unique_ptr<iscsi_context, ContextDeleter>;

struct TaskDeleter {
  void operator()(scsi_task* t) const {
    if (t != nullptr) scsi_free_scsi_task(t);
  }
};
using Task = std::unique_ptr<scsi_task, TaskDeleter>;

struct LoginOptions {
  std::string initiator = "iqn.2026-11.org.untorn:test-initiator";
  std::string user, secret;                // CHAP
  std::string target_user, target_secret;  // mutual CHAP
  bool header_digest = false;
  uint32_t isid_random = 0;  // non-zero: fixed ISID (for reinstatement)
};

// Logs into `iqn` at `portal`, LUN 0; returns null and sets *error on failure.
inline Context Login(const std::string& portal, const std::string& iqn, const LoginOptions& o,
                     std::string* error) {
  Context c(iscsi_create_context(o.initiator.c_str()));
  iscsi_set_targetname(c.get(), iqn.c_str());
  iscsi_set_session_type(c.get(), ISCSI_SESSION_NORMAL);
  iscsi_set_header_digest(c.get(),
                          o.header_digest ? ISCSI_HEADER_DIGEST_CRC32C : ISCSI_HEADER_DIGEST_NONE);
  if (!o.user.empty()) iscsi_set_initiator_username_pwd(c.get(), o.user.c_str(), o.secret.c_str());
  if (!o.target_user.empty()) {
    iscsi_set_target_username_pwd(c.get(), o.target_user.c_str(), o.target_secret.c_str());
  }
  if (o.isid_random != 0) iscsi_set_isid_random(c.get(), o.isid_random, 0);
  iscsi_set_timeout(c.get(), 10);
  if (iscsi_full_connect_sync(c.get(), portal.c_str(), 0) != 0) {
    if (error) *error = iscsi_get_error(c.get());
    return nullptr;
  }
  return c;
}

// Answers the unit attentions pending for this nexus on `lun` (POWER ON of a new nexus, a
// capacity change, ...) with TEST UNIT READY until one is GOOD (at most 4); true then.
inline bool ClearUnitAttentions(iscsi_context* c, int lun = 0) {
  for (int i = 0; i < 4; ++i) {
    Task t(iscsi_testunitready_sync(c, lun));
    if (t && t->status == SCSI_STATUS_GOOD) return true;
  }
  return false;
}

}  // namespace untorn::testing
