#include "storage/journal_scan.h"

#include <vector>

namespace untorn::storage::journal {

Status Scan(File& journal, const Superblock& sb, uint64_t lun_size, const RecordVisitor& visit,
            ScanResult* result) {
  const uint64_t size = journal.Size();
  uint64_t pos = 0;
  result->last_sequence = sb.applied_sequence;
  result->stop_reason = "end of journal";
  std::vector<uint8_t> header(kHeaderSize), payload;
  const auto stop = [&](const std::string& why) {
    result->stop_reason = "at " + std::to_string(pos) + ": " + why;
  };
  while (pos + kHeaderSize <= size) {
    if (Status s = journal.PRead(pos, header); !s.ok()) return s;
    Invalid why;
    const auto h = DecodeHeader(header, &why);
    if (!h) {
      stop(InvalidName(why));
      break;
    }
    if (h->epoch != sb.epoch) {
      stop("record of epoch " + std::to_string(h->epoch) + ", journal is in epoch " +
           std::to_string(sb.epoch) + " (stale)");
      break;
    }
    if (h->sequence != result->last_sequence + 1) {
      stop("sequence " + std::to_string(h->sequence) + " where " +
           std::to_string(result->last_sequence + 1) + " was due (gap)");
      break;
    }
    if (h->offset > lun_size || h->length > lun_size - h->offset ||
        pos + RecordSpan(h->length) > size) {
      stop("record out of bounds");
      break;
    }
    payload.resize(h->length);
    if (Status s = journal.PRead(pos + kHeaderSize, payload); !s.ok()) return s;
    if (!CheckCrc(*h, header, payload)) {
      stop(InvalidName(Invalid::kChecksum));
      break;
    }
    if (Status s = visit(*h, pos, payload); !s.ok()) return s;
    result->last_sequence = h->sequence;
    ++result->records;
    result->bytes += h->length;
    pos += RecordSpan(h->length);
  }
  return Status::Ok();
}

}  // namespace untorn::storage::journal
