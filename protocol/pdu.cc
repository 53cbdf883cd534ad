#include "protocol/pdu.h"

namespace untorn::protocol {
namespace {

Pdu NewTargetPdu(Opcode op, uint8_t flags, const SeqNumbers& sn) {
  Pdu p;
  p.bhs[0] = static_cast<uint8_t>(op);
  p.bhs[1] = flags;
  StoreBe32(p.bhs, 24, sn.stat_sn);
  StoreBe32(p.bhs, 28, sn.exp_cmd_sn);
  StoreBe32(p.bhs, 32, sn.max_cmd_sn);
  return p;
}

uint8_t ResidualFlags(bool overflow, bool underflow) {
  return static_cast<uint8_t>((overflow ? 0x04 : 0) | (underflow ? 0x02 : 0));
}

}  // namespace

void Pdu::SyncLengths() {
  bhs[4] = static_cast<uint8_t>(ahs.size() / 4);
  StoreBe24(bhs, 5, static_cast<uint32_t>(data.size()));
}

std::optional<ScsiCommandPdu> DecodeScsiCommand(const Pdu& pdu) {
  ScsiCommandPdu c;
  const auto& b = pdu.bhs;
  c.immediate = pdu.Immediate();
  c.final = (b[1] & 0x80) != 0;
  c.read = (b[1] & 0x40) != 0;
  c.write = (b[1] & 0x20) != 0;
  c.task_attr = b[1] & 0x07;
  c.lun = pdu.Lun();
  c.itt = pdu.Itt();
  c.expected_length = LoadBe32(b, 20);
  c.cmd_sn = LoadBe32(b, 24);
  c.exp_stat_sn = LoadBe32(b, 28);
  c.cdb.assign(b.begin() + 32, b.begin() + 48);
  // AHS walk (§11.2.2): 2-byte AHSLength, 1-byte type, then AHSLength bytes, padded to 4.
  size_t off = 0;
  while (off < pdu.ahs.size()) {
    if (pdu.ahs.size() - off < 4) return std::nullopt;
    const uint16_t len = LoadBe16(pdu.ahs, off);
    const uint8_t type = pdu.ahs[off + 2];
    const size_t padded = (static_cast<size_t>(len) + 3 + 3) / 4 * 4;  // header 3 bytes + len
    if (len == 0 || off + padded > pdu.ahs.size()) return std::nullopt;
    if (type == 1) {  // Extended CDB: 1 reserved byte then CDB bytes 16..
      c.cdb.insert(c.cdb.end(), pdu.ahs.begin() + static_cast<ptrdiff_t>(off + 4),
                   pdu.ahs.begin() + static_cast<ptrdiff_t>(off + 3 + len));
    }
    off += padded;
  }
  return c;
}

DataOutPdu DecodeDataOut(const Pdu& pdu) {
  DataOutPdu d;
  d.final = pdu.Final();
  d.lun = pdu.Lun();
  d.itt = pdu.Itt();
  d.ttt = pdu.Field32(20);
  d.exp_stat_sn = pdu.Field32(28);
  d.data_sn = pdu.Field32(36);
  d.buffer_offset = pdu.Field32(40);
  return d;
}

NopOutPdu DecodeNopOut(const Pdu& pdu) {
  return NopOutPdu{pdu.Immediate(), pdu.Lun(),       pdu.Itt(),
                   pdu.Field32(20), pdu.Field32(24), pdu.Field32(28)};
}

TmfRequestPdu DecodeTmfRequest(const Pdu& pdu) {
  TmfRequestPdu t;
  t.immediate = pdu.Immediate();
  t.function = pdu.bhs[1] & 0x7f;
  t.lun = pdu.Lun();
  t.itt = pdu.Itt();
  t.referenced_tag = pdu.Field32(20);
  t.cmd_sn = pdu.Field32(24);
  t.exp_stat_sn = pdu.Field32(28);
  t.ref_cmd_sn = pdu.Field32(32);
  return t;
}

LoginRequestPdu DecodeLoginRequest(const Pdu& pdu) {
  LoginRequestPdu l;
  const auto& b = pdu.bhs;
  l.transit = (b[1] & 0x80) != 0;
  l.cont = (b[1] & 0x40) != 0;
  l.csg = (b[1] >> 2) & 0x03;
  l.nsg = b[1] & 0x03;
  l.version_max = b[2];
  l.version_min = b[3];
  l.isid = (uint64_t{LoadBe16(b, 8)} << 32) | LoadBe32(b, 10);
  l.tsih = LoadBe16(b, 14);
  l.itt = pdu.Itt();
  l.cid = LoadBe16(b, 20);
  l.cmd_sn = LoadBe32(b, 24);
  l.exp_stat_sn = LoadBe32(b, 28);
  return l;
}

TextRequestPdu DecodeTextRequest(const Pdu& pdu) {
  TextRequestPdu t;
  t.immediate = pdu.Immediate();
  t.final = pdu.Final();
  t.cont = (pdu.bhs[1] & 0x40) != 0;
  t.lun = pdu.Lun();
  t.itt = pdu.Itt();
  t.ttt = pdu.Field32(20);
  t.cmd_sn = pdu.Field32(24);
  t.exp_stat_sn = pdu.Field32(28);
  return t;
}

LogoutRequestPdu DecodeLogoutRequest(const Pdu& pdu) {
  LogoutRequestPdu l;
  l.immediate = pdu.Immediate();
  l.reason = pdu.bhs[1] & 0x7f;
  l.itt = pdu.Itt();
  l.cid = LoadBe16(pdu.bhs, 20);
  l.cmd_sn = pdu.Field32(24);
  l.exp_stat_sn = pdu.Field32(28);
  return l;
}

Pdu EncodeScsiResponse(const ScsiResponse& r, const SeqNumbers& sn) {
  Pdu p = NewTargetPdu(Opcode::kScsiResponse, 0x80 | ResidualFlags(r.overflow, r.underflow), sn);
  p.bhs[2] = r.response;
  p.bhs[3] = r.status;
  StoreBe32(p.bhs, 16, r.itt);
  StoreBe32(p.bhs, 36, r.exp_data_sn);
  StoreBe32(p.bhs, 44, r.residual);
  if (!r.sense.empty()) {
    p.data.resize(2 + r.sense.size());
    StoreBe16(p.data, 0, static_cast<uint16_t>(r.sense.size()));
    std::copy(r.sense.begin(), r.sense.end(), p.data.begin() + 2);
  }
  p.SyncLengths();
  return p;
}

Pdu EncodeDataInHeader(const DataIn& d, uint32_t data_length, const SeqNumbers& sn) {
  uint8_t flags = d.final ? 0x80 : 0;
  SeqNumbers seq = sn;
  if (d.status) {
    flags |= 0x81 | ResidualFlags(d.overflow, d.underflow);  // S implies F
  } else {
    seq.stat_sn = 0;  // StatSN is reserved without the S bit
  }
  Pdu p = NewTargetPdu(Opcode::kDataIn, flags, seq);
  if (d.status) p.bhs[3] = *d.status;
  StoreBe24(p.bhs, 5, data_length);
  StoreBe64(p.bhs, 8, d.lun);
  StoreBe32(p.bhs, 16, d.itt);
  StoreBe32(p.bhs, 20, kReservedTag);
  StoreBe32(p.bhs, 36, d.data_sn);
  StoreBe32(p.bhs, 40, d.buffer_offset);
  if (d.status) StoreBe32(p.bhs, 44, d.residual);
  return p;
}

Pdu EncodeDataIn(const DataIn& d, std::vector<uint8_t> data, const SeqNumbers& sn) {
  Pdu p = EncodeDataInHeader(d, static_cast<uint32_t>(data.size()), sn);
  p.data = std::move(data);
  return p;
}

Pdu EncodeR2t(const R2t& r, const SeqNumbers& sn) {
  Pdu p = NewTargetPdu(Opcode::kR2t, 0x80, sn);
  StoreBe64(p.bhs, 8, r.lun);
  StoreBe32(p.bhs, 16, r.itt);
  StoreBe32(p.bhs, 20, r.ttt);
  StoreBe32(p.bhs, 36, r.r2t_sn);
  StoreBe32(p.bhs, 40, r.buffer_offset);
  StoreBe32(p.bhs, 44, r.length);
  return p;
}

Pdu EncodeNopIn(uint64_t lun, uint32_t itt, uint32_t ttt, std::vector<uint8_t> data,
                const SeqNumbers& sn) {
  Pdu p = NewTargetPdu(Opcode::kNopIn, 0x80, sn);
  StoreBe64(p.bhs, 8, lun);
  StoreBe32(p.bhs, 16, itt);
  StoreBe32(p.bhs, 20, ttt);
  p.data = std::move(data);
  p.SyncLengths();
  return p;
}

Pdu EncodeTmfResponse(uint32_t itt, TmfResponse response, const SeqNumbers& sn) {
  Pdu p = NewTargetPdu(Opcode::kTaskMgmtResponse, 0x80, sn);
  p.bhs[2] = static_cast<uint8_t>(response);
  StoreBe32(p.bhs, 16, itt);
  return p;
}

Pdu EncodeLoginResponse(const LoginResponse& r, std::vector<uint8_t> data, const SeqNumbers& sn) {
  const auto flags = static_cast<uint8_t>((r.transit ? 0x80 : 0) | (r.cont ? 0x40 : 0) |
                                          ((r.csg & 3) << 2) | (r.nsg & 3));
  Pdu p = NewTargetPdu(Opcode::kLoginResponse, flags, sn);
  p.bhs[2] = 0x00;  // Version-max
  p.bhs[3] = 0x00;  // Version-active
  StoreBe16(p.bhs, 8, static_cast<uint16_t>(r.isid >> 32));
  StoreBe32(p.bhs, 10, static_cast<uint32_t>(r.isid));
  StoreBe16(p.bhs, 14, r.tsih);
  StoreBe32(p.bhs, 16, r.itt);
  p.bhs[36] = r.status_class;
  p.bhs[37] = r.status_detail;
  p.data = std::move(data);
  p.SyncLengths();
  return p;
}

Pdu EncodeTextResponse(uint32_t itt, uint32_t ttt, bool final, bool cont, std::vector<uint8_t> data,
                       const SeqNumbers& sn) {
  Pdu p = NewTargetPdu(Opcode::kTextResponse,
                       static_cast<uint8_t>((final ? 0x80 : 0) | (cont ? 0x40 : 0)), sn);
  StoreBe32(p.bhs, 16, itt);
  StoreBe32(p.bhs, 20, ttt);
  p.data = std::move(data);
  p.SyncLengths();
  return p;
}

Pdu EncodeLogoutResponse(uint32_t itt, uint8_t response, const SeqNumbers& sn) {
  Pdu p = NewTargetPdu(Opcode::kLogoutResponse, 0x80, sn);
  p.bhs[2] = response;
  StoreBe32(p.bhs, 16, itt);
  return p;
}

Pdu EncodeReject(RejectReason reason, const std::array<uint8_t, kBhsLength>& rejected,
                 const SeqNumbers& sn) {
  Pdu p = NewTargetPdu(Opcode::kReject, 0x80, sn);
  p.bhs[2] = static_cast<uint8_t>(reason);
  StoreBe32(p.bhs, 16, kReservedTag);
  p.data.assign(rejected.begin(), rejected.end());
  p.SyncLengths();
  return p;
}

Pdu EncodeAsyncMessage(uint8_t event, uint16_t param3_time2retain, const SeqNumbers& sn) {
  Pdu p = NewTargetPdu(Opcode::kAsyncMessage, 0x80, sn);
  StoreBe32(p.bhs, 16, kReservedTag);
  p.bhs[36] = event;
  StoreBe16(p.bhs, 42, param3_time2retain);
  return p;
}

}  // namespace untorn::protocol
