#include "storage/journal_scan.h"

#include <vector>

namespace untorn::storage::journal {

namespace {

// The record at `pos` if it is the one due: valid, of the superblock's epoch, with sequence
// `due`, inside the LUN and the journal. Otherwise nullopt and *why says what was there.
struct Found {
  RecordHeader header;
  std::vector<uint8_t> header_bytes, payload;
};

Status ReadDue(File& journal, uint64_t pos, const Superblock& sb, uint64_t due, uint64_t lun_size,
               std::optional<Found>* out, std::string* why) {
  const uint64_t epoch = sb.epoch;
  out->reset();
  const uint64_t size = journal.Size();
  if (pos + kHeaderSize > size) {
    *why = "end of journal";
    return Status::Ok();
  }
  Found f;
  f.header_bytes.resize(kHeaderSize);
  if (Status s = journal.PRead(pos, f.header_bytes); !s.ok()) {
    // A sector the device lost while writing it when the power went: that is where the
    // journal's writes stopped (a later group commit starts only after this one's sync).
    *why = "unreadable (" + s.message() + ")";
    return Status::Ok();
  }
  Invalid invalid;
  const auto h = DecodeHeader(f.header_bytes, &invalid);
  if (!h) {
    *why = InvalidName(invalid);
    return Status::Ok();
  }
  if (h->epoch != epoch) {
    *why = "record of epoch " + std::to_string(h->epoch) + ", journal is in epoch " +
           std::to_string(epoch) + " (stale)";
    return Status::Ok();
  }
  if (h->sequence != due) {
    *why = "sequence " + std::to_string(h->sequence) + " where " + std::to_string(due) +
           " was due (" + (h->sequence < due ? "stale" : "gap") + ")";
    return Status::Ok();
  }
  if (h->offset > lun_size || h->length > lun_size - h->offset ||
      pos + RecordSpan(h->length, sb.record_align) > size) {
    *why = "record out of bounds";
    return Status::Ok();
  }
  f.payload.resize(h->length);
  if (Status s = journal.PRead(pos + kHeaderSize, f.payload); !s.ok()) {
    *why = "unreadable (" + s.message() + ")";
    return Status::Ok();
  }
  if (!CheckCrc(*h, f.header_bytes, f.payload)) {
    *why = InvalidName(Invalid::kChecksum);
    return Status::Ok();
  }
  f.header = *h;
  *out = std::move(f);
  return Status::Ok();
}

}  // namespace

Status Scan(File& journal, const Superblock& sb, uint64_t lun_size, const RecordVisitor& visit,
            ScanResult* result) {
  const uint64_t size = journal.Size();
  uint64_t pos = sb.start_offset;
  uint64_t scanned = 0;  // bytes passed over since start_offset, wasted tails included
  result->last_sequence = sb.applied_sequence;
  while (true) {
    if (scanned >= size) {
      result->stop_reason = "at " + std::to_string(pos) + ": the whole journal was scanned";
      break;
    }
    const uint64_t due = result->last_sequence + 1;
    std::optional<Found> found;
    std::string why;
    if (Status s = ReadDue(journal, pos, sb, due, lun_size, &found, &why); !s.ok()) {
      return s;
    }
    if (!found && pos != 0) {
      // The writer puts a record that does not fit before the end at offset 0: the due record
      // may be there. Only the due sequence of this epoch with a matching CRC is taken, and a
      // sequence is written once per epoch, so this cannot pick up a stale record.
      std::string why_at_zero;
      if (Status s = ReadDue(journal, 0, sb, due, lun_size, &found, &why_at_zero); !s.ok()) {
        return s;
      }
      if (found) {
        scanned += size - pos;
        pos = 0;
      }
    }
    if (!found) {
      result->stop_reason = "at " + std::to_string(pos) + ": " + why;
      break;
    }
    if (Status s = visit(found->header, pos, found->payload); !s.ok()) return s;
    result->last_sequence = found->header.sequence;
    ++result->records;
    result->bytes += found->header.length;
    const uint64_t span = RecordSpan(found->header.length, sb.record_align);
    pos += span;
    scanned += span;
    if (pos >= size) pos = 0;
  }
  return Status::Ok();
}

}  // namespace untorn::storage::journal
