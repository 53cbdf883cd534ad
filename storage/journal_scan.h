// The one journal scan, used by recovery and by untorn-journal: visits, in order, every record
// recovery would replay, and says why the scan stopped (docs/journal-format.md, "Recovery").
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "storage/file_system.h"
#include "storage/journal_format.h"

namespace untorn::storage::journal {

struct ScanResult {
  uint64_t records = 0;
  uint64_t bytes = 0;
  uint64_t last_sequence = 0;  // the superblock's applied sequence if no record is valid
  std::string stop_reason;
};

using RecordVisitor =
    std::function<Status(const RecordHeader& header, uint64_t position, Bytes payload)>;

// Scans `journal` as the superblock `sb` describes a LUN of `lun_size` bytes. A visitor error
// ends the scan and is returned; an invalid record only ends it (that is the journal's end).
Status Scan(File& journal, const Superblock& sb, uint64_t lun_size, const RecordVisitor& visit,
            ScanResult* result);

}  // namespace untorn::storage::journal
