#include "target/scsi/persistent_reservations.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

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

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::optional<std::string> Unhex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  const auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = digit(hex[i]), lo = digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi << 4 | lo);
  }
  return out;
}

std::optional<uint64_t> Number(std::string_view text, int base) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

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
  unbound_.clear();
  unbound_holder_.clear();
  type_ = 0;
  holder_ = 0;
}

std::optional<uint64_t> PersistentReservations::HolderKey() const {
  if (type_ == 0 || AllRegistrants()) return std::nullopt;
  if (!unbound_holder_.empty()) {
    const auto it = unbound_.find(unbound_holder_);
    return it == unbound_.end() ? std::nullopt : std::optional<uint64_t>(it->second);
  }
  const auto it = keys_.find(holder_);
  return it == keys_.end() ? std::nullopt : std::optional<uint64_t>(it->second);
}

void PersistentReservations::Bind(uint64_t nexus, const std::string& transport_id) {
  const auto it = unbound_.find(transport_id);
  if (it == unbound_.end()) return;
  keys_[nexus] = it->second;
  unbound_.erase(it);
  if (unbound_holder_ == transport_id) {
    holder_ = nexus;
    unbound_holder_.clear();
  }
}

std::string PersistentReservations::Encode(
    const std::map<uint64_t, std::string>& transport_ids) const {
  std::string holder = "-";
  if (type_ != 0 && !AllRegistrants()) {
    if (!unbound_holder_.empty()) {
      holder = Hex(unbound_holder_);
    } else if (const auto t = transport_ids.find(holder_); t != transport_ids.end()) {
      holder = Hex(t->second);
    }
  }
  std::string out = "untorn-pr 1\ngeneration " + std::to_string(generation_) + "\naptpl " +
                    (aptpl_ ? "1" : "0") + "\ntype " + std::to_string(type_) + "\nholder " +
                    holder + "\n";
  char key[17];
  const auto line = [&](uint64_t k, const std::string& tid) {
    std::snprintf(key, sizeof key, "%016llx", static_cast<unsigned long long>(k));
    out += "key " + std::string(key) + " " + Hex(tid) + "\n";
  };
  for (const auto& [n, k] : keys_) {
    if (const auto t = transport_ids.find(n); t != transport_ids.end()) line(k, t->second);
  }
  for (const auto& [tid, k] : unbound_) line(k, tid);
  return out + "end\n";
}

bool PersistentReservations::Decode(std::string_view text, std::string* error) {
  PersistentReservations restored;
  bool ended = false, header = false;
  int line_no = 0;
  std::string holder;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    const auto fail = [&](const std::string& why) {
      *error = "line " + std::to_string(line_no) + ": " + why;
      return false;
    };
    if (ended) return fail("text after \"end\"");
    const size_t sp = line.find(' ');
    const std::string_view word = line.substr(0, sp);
    const std::string_view rest = sp == std::string_view::npos ? "" : line.substr(sp + 1);
    if (!header) {
      if (line != "untorn-pr 1") return fail("not an untorn persistent reservation state");
      header = true;
    } else if (word == "generation") {
      const auto v = Number(rest, 10);
      if (!v || *v > UINT32_MAX) return fail("bad generation");
      restored.generation_ = static_cast<uint32_t>(*v);
    } else if (word == "aptpl") {
      if (rest != "0" && rest != "1") return fail("bad aptpl");
      restored.aptpl_ = rest == "1";
    } else if (word == "type") {
      const auto v = Number(rest, 10);
      if (!v || (*v != 0 && !ValidType(static_cast<uint8_t>(*v)))) return fail("bad type");
      restored.type_ = static_cast<uint8_t>(*v);
    } else if (word == "holder") {
      if (rest != "-") {
        const auto tid = Unhex(rest);
        if (!tid || tid->empty()) return fail("bad holder");
        holder = *tid;
      }
    } else if (word == "key") {
      const size_t sp2 = rest.find(' ');
      const auto key = Number(rest.substr(0, sp2), 16);
      const auto tid = sp2 == std::string_view::npos ? std::nullopt : Unhex(rest.substr(sp2 + 1));
      if (!key || *key == 0 || !tid || tid->empty()) return fail("bad key line");
      if (!restored.unbound_.emplace(*tid, *key).second) return fail("a registrant twice");
    } else if (line == "end") {
      ended = true;
    } else {
      return fail("unknown line");
    }
  }
  if (!ended) {
    *error = "incomplete (no \"end\" line)";
    return false;
  }
  if (restored.type_ != 0 && !restored.AllRegistrants()) {
    if (holder.empty() || restored.unbound_.count(holder) == 0) {
      *error = "the reservation's holder is not a registrant";
      return false;
    }
    restored.unbound_holder_ = holder;
  }
  if (restored.type_ != 0 && restored.NoRegistrations()) {
    *error = "a reservation without registrations";
    return false;
  }
  *this = std::move(restored);
  return true;
}

void PersistentReservations::Unregister(uint64_t nexus, Result* r) {
  keys_.erase(nexus);
  if (type_ == 0) return;
  if (AllRegistrants() ? NoRegistrations() : holder_ == nexus) {
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
      // APTPL counts for the REGISTER actions only, and the last one decides (§6.16.3).
      aptpl_ = (flags & 0x01) != 0;
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
      // Restored registrations not yet bound go the same way, with no one to tell.
      auto remove_with_key = [&](uint64_t k) {
        for (auto p = keys_.begin(); p != keys_.end();) {
          if (p->second == k && p->first != nexus) {
            r.unit_attentions.push_back({p->first, sense::RegistrationsPreempted()});
            p = keys_.erase(p);
          } else {
            ++p;
          }
        }
        std::erase_if(unbound_, [&](const auto& u) { return u.second == k; });
      };
      const bool preempts_holder = HolderKey() == sa_key;
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
        unbound_.clear();
        type_ = type;
        holder_ = nexus;
        unbound_holder_.clear();
      } else if (preempts_holder) {
        remove_with_key(sa_key);
        type_ = type;
        holder_ = nexus;
        unbound_holder_.clear();
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
      const size_t n = keys_.size() + unbound_.size();
      std::vector<uint8_t> b(8 + 8 * n, 0);
      StoreBe32(b, 0, generation_);
      StoreBe32(b, 4, static_cast<uint32_t>(8 * n));
      size_t off = 8;
      for (const auto& [nexus, k] : keys_) {
        StoreBe64(b, off, k);
        off += 8;
      }
      for (const auto& [tid, k] : unbound_) {
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
        if (const auto k = HolderKey()) StoreBe64(b, 8, *k);
        b[21] = type_;  // scope 0 (LU)
      }
      return b;
    }
    case 0x02: {  // REPORT CAPABILITIES
      std::vector<uint8_t> b(8, 0);
      StoreBe16(b, 0, 8);
      b[2] = 0x01;                        // CRH 0, SIP_C 0, ATP_C 0, PTPL_C 1
      b[3] = 0x80 | (aptpl_ ? 0x01 : 0);  // TMV: the type mask is valid; PTPL_A
      b[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;
      b[5] = 0x01;
      return b;
    }
    case 0x03: {  // READ FULL STATUS
      std::vector<uint8_t> b(8, 0);
      StoreBe32(b, 0, generation_);
      const auto descriptor = [&](uint64_t k, const std::string* tid, bool holder) {
        std::vector<uint8_t> id;
        if (tid != nullptr) {
          // iSCSI TransportID, format 01b (SPC-4 §7.6.4.6): name,i,0xISID NUL-padded to 4.
          id.assign(4, 0);
          id[0] = 0x40 | 0x05;
          id.insert(id.end(), tid->begin(), tid->end());
          id.resize(std::max<size_t>(20, (id.size() + 4) & ~size_t{3}), 0);
          StoreBe16(id, 2, static_cast<uint16_t>(id.size() - 4));
        }
        std::vector<uint8_t> d(24, 0);
        StoreBe64(d, 0, k);
        if (holder) {
          d[12] = 0x01;  // R_HOLDER
          d[13] = type_;
        }
        StoreBe16(d, 18, 1);  // RELATIVE TARGET PORT IDENTIFIER
        StoreBe32(d, 20, static_cast<uint32_t>(id.size()));
        b.insert(b.end(), d.begin(), d.end());
        b.insert(b.end(), id.begin(), id.end());
      };
      for (const auto& [n, k] : keys_) {
        const auto tid = transport_ids.find(n);
        descriptor(k, tid == transport_ids.end() ? nullptr : &tid->second, IsHolder(n));
      }
      for (const auto& [tid, k] : unbound_) {
        descriptor(k, &tid, type_ != 0 && (AllRegistrants() || unbound_holder_ == tid));
      }
      StoreBe32(b, 4, static_cast<uint32_t>(b.size() - 8));
      return b;
    }
    default:
      return std::nullopt;
  }
}

}  // namespace untorn::target
