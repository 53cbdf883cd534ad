# Turns config/README.md into the untornd.json(5) man page, so the two never disagree:
#   awk -v version=X -f md2man.awk config/README.md > untornd.json.5
# "#" headings become .SH/.SS, table rows ".TP field / default: ... / meaning", paragraphs
# stay paragraphs; backticks, bold and link targets are dropped.
function clean(s) {
  while (match(s, /\[[^]]*\]\([^)]*\)/)) {
    t = substr(s, RSTART, RLENGTH); sub(/^\[/, "", t); sub(/\]\(.*$/, "", t)
    s = substr(s, 1, RSTART - 1) t substr(s, RSTART + RLENGTH)
  }
  gsub(/`/, "", s); gsub(/\*\*/, "", s)
  gsub(/\\/, "\\\\", s)                          # troff escapes
  gsub(/-/, "\\-", s)
  gsub(/…/, "...", s); gsub(/—/, "\\(em", s); gsub(/–/, "\\(en", s); gsub(/→/, "\\(->", s)
  gsub(/×/, "\\(mu", s); gsub(/µ/, "\\(mc", s); gsub(/§/, "\\(sc", s)
  gsub(/≥/, "\\(>=", s); gsub(/≤/, "\\(<=", s); gsub(/⁶⁴/, "^64", s)
  sub(/^[.']/, "\\\\\\&&", s)                    # a line may not start with . or '
  return s
}
BEGIN {
  print ".TH UNTORND.JSON 5 \"December 2026\" \"untorn " version "\" \"File Formats\""
  print ".SH NAME"
  print "untornd.json \\- configuration of untornd(8)"
  print ".SH DESCRIPTION"
  in_table = 0
}
NR == 1 && /^# / { next }                          # the title: NAME says it
/^## / { h = substr($0, 4); print ".SH " toupper(clean(h)); in_table = 0; next }
/^### / { print ".SS " clean(substr($0, 5)); in_table = 0; next }
/^\|[- |]+\|$/ { next }                            # table rule
/^\| field \|/ { in_table = 1; next }              # table header
/^\|/ {
  n = split($0, c, /\|/)
  # c[1] is empty; c[2] field, c[3] default, c[4..n-1] meaning (a meaning may hold "|")
  meaning = c[4]; for (i = 5; i < n; ++i) meaning = meaning "|" c[i]
  f = c[2]; d = c[3]; gsub(/^ +| +$/, "", f); gsub(/^ +| +$/, "", d); gsub(/^ +| +$/, "", meaning)
  print ".TP"
  print ".B " clean(f)
  print "Default: " clean(d) "."
  print clean(meaning)
  next
}
/^```/ { print (code = !code) ? ".nf" : ".fi"; next }
/^$/ { if (!code) print ".PP"; next }
{ print clean($0) }
END {
  print ".SH SEE ALSO"
  print ".BR untornd (8),"
  print ".BR untornctl (8)"
}
