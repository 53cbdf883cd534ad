# Reduces iscsi-test-cu's output to one line per test: "Suite.Test pass", "Suite.Test fail", or
# "Suite.Test skip: REASON" (the suite's first [SKIPPED] message for it; CUnit counts a skip as
# passed, so this is the only place the two differ).
function flush() {
  if (test == "") return
  if (skip != "") print suite "." test " skip: " skip
  else if (failed) print suite "." test " fail"
  else print suite "." test " pass"
  test = ""; skip = ""; failed = 0
}
/^Suite: / { flush(); suite = $2; next }
/^  Test: / {
  flush()
  t = $0; sub(/^  Test: /, "", t); sub(/ \.\.\..*$/, "", t); test = t
}
/\[SKIPPED\]/ && test != "" && skip == "" {
  r = $0; sub(/.*\[SKIPPED\] */, "", r); sub(/[ \t]+$/, "", r); skip = r
}
/FAILED/ && test != "" { failed = 1 }
/^Run Summary:/ { flush() }
END { flush() }
