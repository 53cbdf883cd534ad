// PlanReload: what a running untornd can take from a new configuration, and what needs a
// restart. Kept with the configuration because it is a question about two of them.
#include <algorithm>
#include <string>

#include "config/config.h"

namespace untorn::config {
namespace {

std::string Index(const char* what, size_t i) {
  return std::string(what) + "[" + std::to_string(i) + "]";
}

// A LUN's fields other than its size: none may change under sessions.
void CompareLun(const Lun& a, const Lun& b, const std::string& p, ReloadPlan* plan) {
  const auto refuse = [&](const char* field, bool changed) {
    if (changed)
      plan->refused.push_back(p + "." + field + ": cannot change while the LUN is served");
  };
  refuse("backing_file", a.backing_file != b.backing_file);
  refuse("block_size", a.block_size != b.block_size);
  refuse("physical_block_size", a.physical_block_size != b.physical_block_size);
  refuse("write_cache", a.write_cache != b.write_cache);
  refuse("read_only", a.read_only != b.read_only);
  refuse("thin", a.thin != b.thin);
  refuse("max_transfer_length", a.max_transfer_length != b.max_transfer_length);
  refuse("atomic", !(a.atomic == b.atomic));
  refuse("serial", a.serial != b.serial);
  refuse("journal", a.journal != b.journal);
  refuse("journal_size", a.journal_size != b.journal_size);
  if (b.size > a.size) {
    plan->live.push_back(p + ".size: grown from " + std::to_string(a.size) + " to " +
                         std::to_string(b.size) + " bytes");
  } else if (b.size < a.size) {
    plan->refused.push_back(p + ".size: smaller than the running " + std::to_string(a.size) +
                            " bytes (a shrink loses data: untornctl lun resize --force)");
  }
}

}  // namespace

ReloadPlan PlanReload(const Config& running, const Config& next) {
  ReloadPlan plan;
  const auto refuse = [&](const std::string& field, bool changed) {
    if (changed) plan.refused.push_back(field + ": cannot change while untornd runs (restart)");
  };
  refuse("portals", !(running.portals == next.portals));
  refuse("data_dir", running.data_dir != next.data_dir);
  refuse("metrics", running.metrics != next.metrics);
  refuse("io_threads", running.io_threads != next.io_threads);
  refuse("control_socket", running.control_socket != next.control_socket);
  if (!(running.limits == next.limits)) {
    plan.live.push_back(
        "limits: the daemon-wide budget and caps at once, the rest for new connections");
  }
  if (running.log_level != next.log_level) {
    plan.live.push_back("log_level: " + running.log_level + " to " + next.log_level);
  }
  for (size_t i = 0; i < next.targets.size(); ++i) {
    const Target& b = next.targets[i];
    const std::string p = Index("targets", i);
    const auto a = std::find_if(running.targets.begin(), running.targets.end(),
                                [&](const Target& t) { return t.iqn == b.iqn; });
    if (a == running.targets.end()) {
      for (size_t j = 0; j < b.luns.size(); ++j) {
        for (const Target& t : running.targets) {
          for (const Lun& l : t.luns) {
            if (BackingPath(running, l) == BackingPath(next, b.luns[j])) {
              plan.refused.push_back(p + Index(".luns", j) + ".backing_file: served by " + t.iqn +
                                     " LUN " + std::to_string(l.id));
            }
          }
        }
      }
      plan.live.push_back(p + ": target " + b.iqn + " added");
      continue;
    }
    if (a->alias != b.alias) plan.live.push_back(p + ".alias: for new logins");
    if (a->chap != b.chap || a->mutual_chap != b.mutual_chap) {
      plan.live.push_back(p + ".chap: credentials for new logins");
    }
    if (a->acls != b.acls) plan.live.push_back(p + ".acls: for new logins");
    for (size_t j = 0; j < b.luns.size(); ++j) {
      const Lun& lb = b.luns[j];
      const std::string lp = p + Index(".luns", j);
      const auto la =
          std::find_if(a->luns.begin(), a->luns.end(), [&](const Lun& l) { return l.id == lb.id; });
      if (la == a->luns.end()) {
        // Its backing file must not be one a running LUN already serves (Parse checked the
        // new file's own LUNs against each other).
        for (const Target& t : running.targets) {
          for (const Lun& l : t.luns) {
            if (BackingPath(running, l) == BackingPath(next, lb)) {
              plan.refused.push_back(lp + ".backing_file: served by " + t.iqn + " LUN " +
                                     std::to_string(l.id));
            }
          }
        }
        plan.live.push_back(lp + ": LUN " + std::to_string(lb.id) + " added");
      } else {
        CompareLun(*la, lb, lp, &plan);
      }
    }
    for (const Lun& la : a->luns) {
      if (std::none_of(b.luns.begin(), b.luns.end(), [&](const Lun& l) { return l.id == la.id; })) {
        plan.refused.push_back(p + ".luns: LUN " + std::to_string(la.id) +
                               " is gone from the file; untornctl lun remove takes a LUN out");
      }
    }
  }
  for (const Target& a : running.targets) {
    if (std::none_of(next.targets.begin(), next.targets.end(),
                     [&](const Target& t) { return t.iqn == a.iqn; })) {
      plan.live.push_back("targets: " + a.iqn +
                          " removed (refused while sessions are logged into it)");
    }
  }
  return plan;
}

}  // namespace untorn::config
