#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora: well-formed inputs of the kinds real initiators send,
built from the RFC 7143 / SPC-4 / SBC-4 layouts and docs/journal-format.md.
usage: make_seeds.py OUT_DIR  (makes OUT_DIR/<target>/seed-N)"""
import os
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def keys(*pairs):
    return b"".join(f"{k}={v}".encode() + b"\0" for k, v in pairs)


def bhs(opcode, flags=0, data_len=0, lun=0, itt=1, rest=b"", immediate=False):
    b = bytearray(48)
    b[0] = opcode | (0x40 if immediate else 0)
    b[1] = flags
    b[5:8] = data_len.to_bytes(3, "big")
    b[8:16] = lun.to_bytes(8, "big")
    b[16:20] = itt.to_bytes(4, "big")
    b[20:20 + len(rest)] = rest
    return bytes(b)


def pad4(d):
    return d + b"\0" * (-len(d) % 4)


LINUX_OFFERS = keys(("HeaderDigest", "None"), ("DataDigest", "None"),
                    ("MaxRecvDataSegmentLength", "262144"), ("MaxBurstLength", "16776192"),
                    ("FirstBurstLength", "262144"), ("InitialR2T", "No"), ("ImmediateData", "Yes"),
                    ("MaxOutstandingR2T", "1"), ("DefaultTime2Wait", "2"),
                    ("DefaultTime2Retain", "0"), ("MaxConnections", "1"),
                    ("DataPDUInOrder", "Yes"), ("DataSequenceInOrder", "Yes"),
                    ("ErrorRecoveryLevel", "0"), ("IFMarker", "No"), ("OFMarker", "No"))
SECURITY = keys(("InitiatorName", "iqn.2026-11.org.untorn:fuzz"),
                ("TargetName", "iqn.2026-11.org.untorn:open"), ("SessionType", "Normal"),
                ("AuthMethod", "None"))
CHAP = keys(("InitiatorName", "iqn.2026-11.org.untorn:fuzz"),
            ("TargetName", "iqn.2026-11.org.untorn:chap"), ("AuthMethod", "CHAP,None"))


def login_bhs(csg, nsg, transit, data_len, isid=b"\x80\x00\x00\x00\x00\x01"):
    """Login Request BHS, RFC 7143 section 11.12."""
    b = bytearray(48)
    b[0] = 0x43
    b[1] = (0x80 if transit else 0) | (csg << 2) | nsg
    b[5:8] = data_len.to_bytes(3, "big")
    b[8:14] = isid
    b[16:20] = (1).to_bytes(4, "big")   # ITT
    b[24:28] = (1).to_bytes(4, "big")   # CmdSN
    return bytes(b)


def cdb(*b, length=None):
    c = bytes(b)
    return c + b"\0" * ((length or len(c)) - len(c))


def scsi_cmd(c, expected=0, read=False, write=False, data=b""):
    flags = 0x80 | (0x40 if read else 0) | (0x20 if write else 0)
    b = bytearray(bhs(0x01, flags, len(data), itt=7))
    b[20:24] = expected.to_bytes(4, "big")
    b[24:28] = (1).to_bytes(4, "big")
    b[32:32 + len(c)] = c[:16]
    return bytes(b) + pad4(data)


def be(v, n):
    return v.to_bytes(n, "big")


def record(kind, epoch, seq, offset, payload):
    h = bytearray(48)
    struct.pack_into("<IHHQQQI", h, 0, 0x524A5455, 1, kind, epoch, seq, offset, len(payload))
    struct.pack_into("<I", h, 40, crc32c(bytes(h) + payload))
    r = bytes(h) + payload
    return r + b"\0" * (-len(r) % 512)


def superblock(epoch, applied, jsize, start=0):
    b = bytearray(64)
    struct.pack_into("<IIQQQQI", b, 0, 0x42535455, 1, epoch, applied, jsize, 1 << 20, 512)
    struct.pack_into("<Q", b, 48, start)
    struct.pack_into("<I", b, 60, crc32c(bytes(b[:60])))
    return bytes(b)


def main():
    out = sys.argv[1]
    seeds = {"pdu": [], "text_keys": [], "login": [], "scsi": [], "journal": []}
    write10 = cdb(0x2A, 0, *be(16, 4), 0, *be(8, 2), 0)
    atomic = cdb(0x9C, 0x08, *be(64, 8), 0, 0, *be(8, 2), 0, 0)
    seeds["pdu"] += [
        login_bhs(1, 3, True, len(SECURITY)) + pad4(SECURITY),
        scsi_cmd(cdb(0x28, 0, *be(0, 4), 0, *be(8, 2), 0), 4096, read=True),
        scsi_cmd(write10, 4096, write=True, data=b"\xab" * 512),
        scsi_cmd(atomic, 4096, write=True, data=b"\x5a" * 4096),
        bhs(0x00, 0x80, 0, itt=9, immediate=True),
        bhs(0x05, 0x80, 512, itt=7) + b"\x11" * 512,
        bhs(0x04, 0x80, len(keys(("SendTargets", "All"))), itt=3) + pad4(keys(("SendTargets", "All"))),
        bhs(0x06, 0x80, 0, itt=4),
        bhs(0x02, 0x81, 0, itt=5),
    ]
    seeds["text_keys"] += [LINUX_OFFERS, SECURITY, keys(("SendTargets", "All")),
                           keys(("CHAP_A", "5,7,6")),
                           keys(("CHAP_N", "user"), ("CHAP_R", "0x" + "ab" * 16)),
                           keys(("X-com.example.Key", "1"), ("MaxBurstLength", "512"),
                                ("FirstBurstLength", "4096"))]

    def framed(b, data):
        return be(len(data), 2) + b + data
    seeds["login"] += [
        framed(login_bhs(1, 3, True, len(SECURITY)), SECURITY),
        framed(login_bhs(0, 1, True, len(SECURITY)), SECURITY) +
        framed(login_bhs(1, 3, True, len(LINUX_OFFERS)), LINUX_OFFERS),
        framed(login_bhs(0, 0, False, len(CHAP)), CHAP) +
        framed(login_bhs(0, 0, False, len(keys(("CHAP_A", "5")))), keys(("CHAP_A", "5"))) +
        framed(login_bhs(0, 1, True, 0), keys(("CHAP_N", "user"), ("CHAP_R", "0x" + "00" * 16))),
    ]
    cdbs = [
        (cdb(0x12, 0, 0, 0, 255, 0), b""), (cdb(0x12, 1, 0xB0, 0, 255, 0), b""),
        (cdb(0x12, 1, 0x83, 0, 255, 0), b""), (cdb(0x9E, 0x10, length=16)[:13] + b"\0\0\x20\0\0", b""),
        (cdb(0x00, 0, 0, 0, 0, 0), b""), (cdb(0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0), b""),
        (cdb(0x1A, 0, 0x3F, 0, 255, 0), b""), (cdb(0x5A, 0, 0x08, 0, 0, 0, 0, 1, 0, 0), b""),
        (write10, b"\xab" * 4096), (atomic, b"\x5a" * 4096),
        (cdb(0x9C, 0, *be(0, 8), 0, 8, *be(16, 2), 0, 0), b"\x33" * 8192),
        (cdb(0x89, 0, *be(0, 8), 0, 0, 0, 1, 0, 0), b"\0" * 512 + b"\1" * 512),
        (cdb(0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0), be(22, 2) + be(16, 2) + b"\0" * 4 + be(8, 8) + be(8, 4) + b"\0" * 4),
        (cdb(0x93, 0x08, *be(32, 8), *be(8, 4), 0, 0), b""),
        (cdb(0x5F, 0, 0, 0, 0, 0, 0, 0, 24, 0), be(0x1234, 8) + b"\0" * 16),
        (cdb(0x5E, 0, 0, 0, 0, 0, 0, 0, 0x20, 0), b""),
        (cdb(0xA3, 0x0C, 1, 0x9C, 0, 0, 0, 0, 2, 0, 0, 0), b""),
        (cdb(0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0), b""), (cdb(0x1B, 0, 0, 0, 1, 0), b""),
        (cdb(0x15, 0x10, 0, 0, 28, 0), b"\0" * 4 + bytes([0x08, 0x12, 0x04]) + b"\0" * 21),
        (cdb(0x7F, 0, 0, 0, 0, 0, 0, 0x20, 0, 0x0F, length=32), b""),
    ]
    seeds["scsi"] += [bytes([len(c) - 6]) + c + d for c, d in cdbs]
    j = 1 << 16
    recs = record(1, 3, 11, 4096, b"\x77" * 4096) + record(2, 3, 12, 0, b"\x12" * 512)
    seeds["journal"] += [superblock(3, 10, j) + recs,
                         superblock(3, 10, j, start=512) + b"\0" * 512 + recs,
                         superblock(2, 0, j) + recs]
    for name, items in seeds.items():
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        for i, item in enumerate(items):
            with open(os.path.join(d, f"seed-{i}"), "wb") as f:
                f.write(item)


main()
