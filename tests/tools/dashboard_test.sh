#!/usr/bin/env bash
# Every query of the Grafana dashboard (docs/grafana/untornd-dashboard.json) names metrics that
# a live untornd exports: the daemon runs on its embedded default with --metrics, answers a few
# commands (a good atomic write, a refused one), and each untorn_* name in every expr (and in
# the template variables' queries) must be a metric family of /metrics (histogram series by
# their _bucket/_sum/_count names).
set -euo pipefail
untornd=${1:?usage: dashboard_test.sh UNTORND TOOLS_DIR}
tools=${2:?usage: dashboard_test.sh UNTORND TOOLS_DIR}
dashboard=$(dirname "$0")/../../docs/grafana/untornd-dashboard.json
source "$(dirname "$0")/../lib/untornd.sh"
start_untornd "$untornd" --metrics 127.0.0.1:0
metrics_port=
for _ in $(seq 1 200); do
  metrics_port=$(sed -n 's|.*metrics on http://127\.0\.0\.1:\([0-9]*\)/metrics.*|\1|p' "$work/untornd.log")
  [ -n "$metrics_port" ] && break
  sleep 0.05
done
[ -n "$metrics_port" ] || { cat "$work/untornd.log"; echo "no metrics port"; exit 1; }
url="iscsi://127.0.0.1:$untornd_port/iqn.2026-11.org.untorn:disk0/0"
"$tools/untorn-write" "$url" --lba 8 --blocks 8 --atomic > /dev/null
"$tools/untorn-write" "$url" --lba 1 --blocks 8 --atomic > /dev/null 2>&1 || true  # misaligned: refused
python3 - "$dashboard" "http://127.0.0.1:$metrics_port/metrics" <<'PY'
import json, re, sys, urllib.request
dashboard, url = sys.argv[1], sys.argv[2]
d = json.load(open(dashboard))
exprs = []
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k in ("expr", "query") and isinstance(v, str):
                exprs.append(v)
            else:
                walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
walk(d)
text = urllib.request.urlopen(url, timeout=10).read().decode()
families = {}
for line in text.splitlines():
    m = re.match(r"# TYPE (\S+) (\S+)", line)
    if m:
        families[m.group(1)] = m.group(2)
exported = set()
for name, kind in families.items():
    exported.add(name)
    if kind == "histogram":
        exported.update({name + "_bucket", name + "_sum", name + "_count"})
failed = 0
names = set()
for e in exprs:
    for n in re.findall(r"\buntorn_[a-z0-9_]+", e):
        names.add(n)
        if n not in exported:
            print(f"FAIL {n} (in: {e}) is not exported")
            failed = 1
print(f"{len(exprs)} queries name {len(names)} metrics; {len(names - exported)} not exported")
for n in sorted(names & exported):
    print(f"ok   {n}")
if len(exprs) < 10 or not names:
    print("FAIL the dashboard has too few queries to be the one meant")
    failed = 1
sys.exit(failed)
PY
finish_untornd
