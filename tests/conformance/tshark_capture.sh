#!/usr/bin/env bash
# Captures libiscsi's conformance run (iscsi-test-cu, every family) against untornd on the
# loopback interface (as root) and decodes it with tshark's iSCSI dissector: every PDU untornd
# sends must dissect without a "malformed packet" or an expert error, save Data-In replies cut
# at the initiator's allocation length (see below). Prints the PDU counts by opcode.
set -euo pipefail
untornd=${1:?usage: tshark_capture.sh PATH_TO_UNTORND}
for t in tshark dumpcap iscsi-test-cu; do
  command -v "$t" >/dev/null || { echo "$t not installed"; exit 1; }
done
source "$(dirname "$0")/../lib/untornd.sh"
start_untornd "$untornd"
port=$untornd_port
cap=$work/conformance.pcapng
tshark -i lo -f "tcp port $port" -w "$cap" -q > "$work/tshark.log" 2>&1 &
tshark_pid=$!
for _ in $(seq 1 200); do  # until dumpcap says it is capturing (up to 10 s)
  grep -q "Capturing on" "$work/tshark.log" && break
  kill -0 "$tshark_pid" 2>/dev/null || { cat "$work/tshark.log"; exit 1; }
  sleep 0.05
done
url="iscsi://127.0.0.1:$port/iqn.2026-11.org.untorn:disk0/0"
timeout 900 iscsi-test-cu --dataloss --test ALL "$url" > "$work/cu.txt" 2>&1 || true
kill -INT "$tshark_pid"
wait "$tshark_pid" || true
finish_untornd
decode=(-r "$cap" -d "tcp.port==$port,iscsi" -o tcp.desegment_tcp_streams:TRUE)
pdus=$(tshark "${decode[@]}" -Y iscsi -T fields -e iscsi.opcode 2>/dev/null | tr ',' '\n' | sort | uniq -c)
total=$(echo "$pdus" | awk '{s += $1} END {print s + 0}')
# Frames untornd sent that the dissector flags. A Data-In cut at the initiator's allocation
# length (iscsi-test-cu asks READ CAPACITY(16), PERSISTENT RESERVE IN... for 1..15 bytes) is
# what SPC-4 requires; the dissector decodes such a reply as if whole and calls it malformed,
# so those are counted apart: their length must equal the command's expected length.
bad=$(tshark "${decode[@]}" -Y "(_ws.malformed || _ws.expert.severity == error) && tcp.srcport == $port" \
        -T fields -e frame.number -e iscsi.opcode -e iscsi.datasegmentlength -e iscsi.request_frame 2>/dev/null)
edtl=$(tshark "${decode[@]}" -Y "iscsi.opcode == 0x01 && tcp.dstport == $port" \
         -T fields -e frame.number -e iscsi.scsicommand.expecteddatatransferlength 2>/dev/null)
truncated=0 malformed=0
while read -r frame opcode length request; do
  [ -n "$frame" ] || continue
  want=$(awk -v f="$request" '$1 == f {print $2}' <<< "$edtl")
  if [ "$opcode" = 0x25 ] && [ -n "$want" ] && [ "$length" = "$want" ]; then
    truncated=$((truncated + 1))
  else
    malformed=$((malformed + 1))
    echo "malformed: frame $frame opcode $opcode length $length (request frame $request, expected ${want:-?})"
  fi
done <<< "$bad"
from_initiator=$(tshark "${decode[@]}" -Y "_ws.malformed && tcp.dstport == $port" 2>/dev/null | wc -l)
echo "iSCSI PDUs dissected by opcode:"; echo "$pdus"
echo "$total PDUs; from untornd: $malformed malformed, $truncated Data-In cut at the allocation length"
echo "(from iscsi-test-cu itself, not judged here: $from_initiator flagged)"
[ "$malformed" = 0 ] || exit 1
[ "$total" -gt 1000 ] || { echo "too few PDUs captured"; exit 1; }
