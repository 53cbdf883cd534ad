# Shell helpers for tests that run a live untornd: source this, then
#   start_untornd UNTORND_PATH [untornd args...]   sets $untornd_pid and $untornd_port
# The daemon listens on 127.0.0.1 at a port the kernel picks; $work (made here) holds its data
# and log, and everything is stopped and removed on exit.
work=$(mktemp -d /tmp/untorn-test-XXXXXX)
untornd_pid=
untornd_port=
stop_untornd() {
  if [ -n "$untornd_pid" ] && kill -0 "$untornd_pid" 2>/dev/null; then
    kill -TERM "$untornd_pid" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$untornd_pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$untornd_pid" 2>/dev/null || true
  fi
  untornd_pid=
}
trap 'stop_untornd; rm -rf "$work"' EXIT

start_untornd() {
  local bin=$1; shift
  "$bin" --listen 127.0.0.1:0 --data-dir "$work/data" "$@" >"$work/untornd.log" 2>&1 &
  untornd_pid=$!
  untornd_port=
  for _ in $(seq 1 400); do  # up to 20 s
    untornd_port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/untornd.log" | head -n1)
    [ -n "$untornd_port" ] && return 0
    kill -0 "$untornd_pid" 2>/dev/null || break
    sleep 0.05
  done
  cat "$work/untornd.log" >&2
  echo "untornd did not start" >&2
  exit 1
}

# Stops the daemon with SIGTERM as a user would; fails (returns 1, says why) if it does not exit
# 0 or its log holds a sanitizer report.
finish_untornd() {
  local pid=$untornd_pid rc=0
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  untornd_pid=
  if [ "$rc" != 0 ]; then echo "untornd exited with status $rc after SIGTERM"; return 1; fi
  if grep -qE 'Sanitizer|runtime error' "$work/untornd.log"; then
    echo "untornd reported a sanitizer error:"; cat "$work/untornd.log"; return 1
  fi
}
