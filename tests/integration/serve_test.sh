#!/usr/bin/env bash
# backstop serve as a process: a port held by another process stops it (exit 1); an access
# log reader that dies does not kill it (SIGPIPE); the first SIGTERM drains with /readyz
# 503 while still accepting, a second one exits at once with 143; with drain_delay_ms 0 a
# SIGTERM stops it with exit 0.
set -u
bin=$1
dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$dir"/*.err; do echo "--- $f"; cat "$f"; done; exit 1; }

# Waits (bounded) until FILE has a line matching REGEX; prints the first match.
wait_for_line() {
  local file=$1 regex=$2
  for _ in $(seq 1 600); do
    if grep -m1 -E "$regex" "$file" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  return 1
}

status_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$1$2"; }

write_config() {  # FILE DRAIN_DELAY_MS ACCESS_LOG
  cat >"$1" <<YAML
listen: 127.0.0.1:0
threads: 1
server: {drain_delay_ms: $2}
log: {access_log: "$3"}
providers:
  v4: {kind: simulated, model: m}
workloads:
  plain: {route: [v4]}
YAML
}

# 1. The port is held by another process (a backstop mock, with SO_REUSEPORT too).
"$bin" mock --listen 127.0.0.1:0 >"$dir/mock.out" 2>"$dir/mock.err" &
pids+=($!)
line=$(wait_for_line "$dir/mock.out" 'listening on') || fail "mock did not start"
port=${line##*:}
write_config "$dir/quiet.yaml" 0 ""
"$bin" serve --config "$dir/quiet.yaml" --listen "127.0.0.1:$port" >/dev/null 2>"$dir/taken.err"
rc=$?
[[ $rc -eq 1 ]] || fail "port taken: exit $rc, want 1"
grep -q "cannot listen on 127.0.0.1:$port: the port is already in use" "$dir/taken.err" ||
  fail "port taken: no clear error"

# 2. The access log goes to a pipe whose reader exits at once; requests keep being served.
write_config "$dir/stdout.yaml" 0 "-"
"$bin" serve --config "$dir/stdout.yaml" 2>"$dir/pipe.err" > >(exec true) &
serve=$!
pids+=($serve)
line=$(wait_for_line "$dir/pipe.err" 'listening on port') || fail "serve (pipe) did not start"
port=$(sed -E 's/.*listening on port ([0-9]+).*/\1/' <<<"$line")
for _ in 1 2 3 4 5; do
  curl -s -o /dev/null --max-time 5 -H 'content-type: application/json' \
    -d '{"model":"nope","messages":[{"role":"user","content":"x"}]}' \
    "http://127.0.0.1:$port/v1/chat/completions"
done
[[ $(status_of "$port" /healthz) == 200 ]] || fail "serve died after its access log reader did"
kill -TERM "$serve"
wait "$serve"
rc=$?
[[ $rc -eq 0 ]] || fail "drain_delay_ms 0: exit $rc after SIGTERM, want 0"
grep -q "backstop: stopped" "$dir/pipe.err" || fail "no 'stopped' line"
# The open-file limit it raised itself is logged, for serve and for the mock alike.
grep -Eq "backstop: open-file limit $(ulimit -Hn) \(was [0-9]+\)" "$dir/pipe.err" ||
  fail "serve: no line with the open-file limit raised to the hard one: $(cat "$dir/pipe.err")"
grep -Eq "backstop: open-file limit $(ulimit -Hn) \(was [0-9]+\)" "$dir/mock.err" ||
  fail "mock: no line with the open-file limit: $(cat "$dir/mock.err")"

# 3. Drain: /readyz 503 while still accepting; a second SIGTERM exits at once with 143.
write_config "$dir/drain.yaml" 600000 ""
"$bin" serve --config "$dir/drain.yaml" 2>"$dir/drain.err" >/dev/null &
serve=$!
pids+=($serve)
line=$(wait_for_line "$dir/drain.err" 'listening on port') || fail "serve (drain) did not start"
port=$(sed -E 's/.*listening on port ([0-9]+).*/\1/' <<<"$line")
[[ $(status_of "$port" /readyz) == 200 ]] || fail "readyz before the signal"
kill -TERM "$serve"
ready=""
for _ in $(seq 1 600); do
  ready=$(status_of "$port" /readyz)
  [[ $ready == 503 ]] && break
  sleep 0.05
done
[[ $ready == 503 ]] || fail "readyz during the drain delay: $ready, want 503"
[[ $(status_of "$port" /healthz) == 200 ]] || fail "not accepting during the drain delay"
kill -TERM "$serve"
wait "$serve"
rc=$?
[[ $rc -eq 143 ]] || fail "second SIGTERM: exit $rc, want 143"
grep -q "SIGTERM again, exiting at once" "$dir/drain.err" || fail "no line for the second signal"
echo "serve ok"
