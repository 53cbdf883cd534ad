#include "target/scsi/persistent_reservations.h"

#include <algorithm>

namespace untorn::target {

using protocol::LoadBe32;
using protocol::LoadBe64;
using protocol::StoreBe16;
using protocol::StoreBe32;
using protocol::StoreBe64;
namespace sense = protocol::sense;

namespace {

bool ValidType(uint8_t t) { return t == 1 || t == 3 || (t >= 5 && t <= 8); }

bool RegistrantsType(uint8_t t) { return t >= 5 && t <= 8; }

bool ExclusiveAccessType(uint8_t t) { return t == 3 || t == 6 || t == 8; }

}  // namespace

bool PersistentReservations::IsHolder(uint64_t nexus) const {
  if (type_ == 0) return false;
  if (AllRegistrants()) return keys_.count(nexus) != 0;
  return holder_ == nexus;
}

bool PersistentReservations::Conflicts(uint64_t nexus, AccessKind kind) const {
  if (type_ == 0 || kind == AccessKind::kAlways || IsHolder(nexus)) return false;
  if (RegistrantsType(type_) && keys_.count(nexus) != 0) return false;
  if (kind == AccessKind::kWrite) return true;
  return ExclusiveAccessType(type_);  // reads and other medium access under exclusive access
}

void PersistentReservations::Clear() {
  keys_.clear();
  type_ = 0;
  holder_ = 0;
}

void PersistentReservations::Unregister(uint64_t nexus, Result* r) {
  keys_.erase(nexus);
  if (type_ == 0) return;
  if (AllRegistrants() ? keys_.empty() : holder_ == nexus) {
    // A released registrants-only reservation is announced to the remaining registrants.
    if (RegistrantsType(type_) && !AllRegistrants()) {
      for (const auto& [n, k] : keys_)
        r->unit_attentions.push_back({n, sense::ReservationsReleased()});
    }
    type_ = 0;
    holder_ = 0;
  }
}

PersistentReservations::Result PersistentReservations::Out(uint64_t nexus, protocol::Bytes cdb,
                                                           protocol::Bytes params) {
  Result r;
  const uint8_t action = cdb[1] & 0x1f;
  const uint8_t scope = cdb[2] >> 4;
  const uint8_t type = cdb[2] & 0x0f;
  if (params.size() < 24) {
    r.sense = sense::ParameterListLengthError();
    return r;
  }
  const uint64_t key = LoadBe64(params, 0);
  const uint64_t sa_key = LoadBe64(params, 8);
  const uint8_t flags = params[20];
  if (flags & 0x01) {  // APTPL: persistence through power loss is not supported
    r.sense = sense::InvalidFieldInParameterList(20, 0);
    return r;
  }
  if (flags & 0x08) {  // SPEC_I_PT
    r.sense = sense::InvalidFieldInParameterList(20, 3);
    return r;
  }
  const auto it = keys_.find(nexus);
  const bool registered = it != keys_.end();

  switch (action) {
    case 0x00:    // REGISTER
    case 0x06: {  // REGISTER AND IGNORE EXISTING KEY
      if (action == 0x00 && (registered ? it->second != key : key != 0)) {
        r.conflict = true;
        return r;
      }
      if (sa_key == 0) {
        if (registered) Unregister(nexus, &r);
      } else {
        keys_[nexus] = sa_key;
      }
      ++generation_;
      return r;
    }
    case 0x01: {  // RESERVE
      if (!registered || it->second != key) {
        r.conflict = true;
        return r;
      }
      if (scope != 0) {
        r.sense = sense::InvalidFieldInCdb(2, 7);
        return r;
      }
      if (!ValidType(type)) {
        r.sense = sense::InvalidFieldInCdb(2, 3);
        return r;
      }
      if (type_ == 0) {
        type_ = type;
        holder_ = nexus;
        return r;
      }
      if (IsHolder(nexus) && type_ == type) return r;
      r.conflict = true;
      return r;
    }
    case 0x02: {  // RELEASE
      if (!registered || it->second != key) {
        r.conflict = true;
        return r;
      }
      if (type_ == 0 || !IsHolder(nexus)) return r;
      if (scope != 0 || type != type_) {
        r.sense = sense::InvalidReleaseOfPersistentReservation();
        return r;
      }
      if (RegistrantsType(type_)) {
        for (const auto& [n, k] : keys_) {
          if (n != nexus) r.unit_attentions.push_back({n, sense::ReservationsReleased()});
        }
      }
      type_ = 0;
      holder_ = 0;
      return r;
    }
    case 0x03: {  // CLEAR
      if (!registered || it->second != key) {
        r.conflict = true;
        return r;
      }
      for (const auto& [n, k] : keys_) {
        if (n != nexus) r.unit_attentions.push_back({n, sense::ReservationsPreempted()});
      }
      Clear();
      ++generation_;
      return r;
    }
    case 0x04:    // PREEMPT
    case 0x05: {  // PREEMPT AND ABORT
      if (!registered || it->second != key) {
        r.conflict = true;
        return r;
      }
      if (type_ != 0 && !ValidType(type)) {
        r.sense = sense::InvalidFieldInCdb(2, 3);
        return r;
      }
      auto remove_with_key = [&](uint64_t k) {
        for (auto p = keys_.begin(); p != keys_.end();) {
          if (p->second == k && p->first != nexus) {
            r.unit_attentions.push_back({p->first, sense::RegistrationsPreempted()});
            p = keys_.erase(p);
          } else {
            ++p;
          }
        }
      };
      const bool preempts_holder = type_ != 0 && !AllRegistrants() && keys_.count(holder_) != 0 &&
                                   keys_.at(holder_) == sa_key;
      if (AllRegistrants() && sa_key == 0) {
        // Every other registration goes; the preempter holds a new reservation.
        for (auto p = keys_.begin(); p != keys_.end();) {
          if (p->first != nexus) {
            r.unit_attentions.push_back({p->first, sense::RegistrationsPreempted()});
            p = keys_.erase(p);
          } else {
            ++p;
          }
        }
        type_ = type;
        holder_ = nexus;
      } else if (preempts_holder) {
        remove_with_key(sa_key);
        type_ = type;
        holder_ = nexus;
      } else {
        if (sa_key == 0) {
          r.sense = sense::InvalidFieldInParameterList(8);
          return r;
        }
        remove_with_key(sa_key);
      }
      ++generation_;
      return r;
    }
    default:
      r.sense = sense::InvalidFieldInCdb(1, 4);
      return r;
  }
}

std::optional<std::vector<uint8_t>> PersistentReservations::In(
    uint8_t service_action, const std::map<uint64_t, std::string>& transport_ids) const {
  switch (service_action) {
    case 0x00: {  // READ KEYS
      std::vector<uint8_t> b(8 + 8 * keys_.size(), 0);
      StoreBe32(b, 0, generation_);
      StoreBe32(b, 4, static_cast<uint32_t>(8 * keys_.size()));
      size_t off = 8;
      for (const auto& [n, k] : keys_) {
        StoreBe64(b, off, k);
        off += 8;
      }
      return b;
    }
    case 0x01: {  // READ RESERVATION
      std::vector<uint8_t> b(type_ == 0 ? 8 : 24, 0);
      StoreBe32(b, 0, generation_);
      if (type_ != 0) {
        StoreBe32(b, 4, 16);
        if (!AllRegistrants() && keys_.count(holder_) != 0) StoreBe64(b, 8, keys_.at(holder_));
        b[21] = type_;  // scope 0 (LU)
      }
      return b;
    }
    case 0x02: {  // REPORT CAPABILITIES
      std::vector<uint8_t> b(8, 0);
      StoreBe16(b, 0, 8);
      b[2] = 0x00;  // CRH 0, SIP_C 0, ATP_C 0, PTPL_C 0
      b[3] = 0x80;  // TMV: the type mask is valid
      b[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;
      b[5] = 0x01;
      return b;
    }
    case 0x03: {  // READ FULL STATUS
      std::vector<uint8_t> b(8, 0);
      StoreBe32(b, 0, generation_);
      for (const auto& [n, k] : keys_) {
        const auto tid = transport_ids.find(n);
        std::vector<uint8_t> id;
        if (tid != transport_ids.end()) {
          // iSCSI TransportID, format 01b (SPC-4 §7.6.4.6): name,i,0xISID NUL-padded to 4.
          id.assign(4, 0);
          id[0] = 0x40 | 0x05;
          id.insert(id.end(), tid->second.begin(), tid->second.end());
          id.resize(std::max<size_t>(20, (id.size() + 4) & ~size_t{3}), 0);
          StoreBe16(id, 2, static_cast<uint16_t>(id.size() - 4));
        }
        std::vector<uint8_t> d(24, 0);
        StoreBe64(d, 0, k);
        if (IsHolder(n)) {
          d[12] = 0x01;  // R_HOLDER
          d[13] = type_;
        }
        StoreBe16(d, 18, 1);  // RELATIVE TARGET PORT IDENTIFIER
        StoreBe32(d, 20, static_cast<uint32_t>(id.size()));
        b.insert(b.end(), d.begin(), d.end());
        b.insert(b.end(), id.begin(), id.end());
      }
      StoreBe32(b, 4, static_cast<uint32_t>(b.size() - 8));
      return b;
    }
    default:
      return std::nullopt;
  }
}

}  // namespace untorn::target
