# shellcheck shell=bash
# Shared helpers of bench/run and bench/callgrind: fixed upstreams, ports, process
# bookkeeping. Sourced, not run. Everything listens on 127.0.0.1 only.

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$bench_dir")

# Every process started here, killed on exit; and the scratch directory, removed.
bench_pids=()
bench_tmp=$(mktemp -d "${TMPDIR:-/tmp}/backstop-bench.XXXXXX")

bench_cleanup() {
  local pid
  for pid in "${bench_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${bench_pids[@]}"; do
    # A process that ignores TERM for 5 s gets KILL.
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  bench_pids=()
  rm -rf "$bench_tmp"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

die() {
  echo "bench: $*" >&2
  exit 1
}

# Remembers a started process so that it is killed on exit.
track() { bench_pids+=("$1"); }

# Stops one tracked process now and waits for it.
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# A loopback TCP port that nothing listens on right now, below the kernel's ephemeral range
# (a port that a client connection holds cannot be bound either, and wrk opens many).
free_port() {
  local port low
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
  ((low > 12000)) || low=32768
  for _ in $(seq 200); do
    port=$((10000 + RANDOM % (low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "no free port found"
}

# Waits until `url` answers (any HTTP status), up to `seconds`.
wait_http() {
  local url=$1 seconds=${2:-20}
  for _ in $(seq $((seconds * 10))); do
    if curl -s -o /dev/null --max-time 1 "$url"; then return 0; fi
    sleep 0.1
  done
  die "nothing answers at $url after ${seconds}s"
}

# The body text as an nginx single-quoted string (backslashes and quotes escaped).
nginx_quote() {
  sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g" "$1" | tr -d '\n'
}

# Common nginx main-context lines; files under $1, $2 worker processes (1).
nginx_head() {
  local dir=$1 workers=${2:-1}
  # As root the master would switch workers to "nobody", who cannot read the scratch dir.
  if [[ $(id -u) -eq 0 ]]; then echo "user root;"; fi
  cat <<EOF
daemon off;
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
EOF
}

nginx_http_common() {
  local dir=$1
  cat <<EOF
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
EOF
}

# Starts the fixed upstream on $1: nginx answering the same Chat Completion to every POST.
#   /v1/chat/completions      a valid get_weather tool call (passes every check)
#   /bad/v1/chat/completions  a tool call whose arguments break the schema (unit "kelvin")
#   /err/v1/chat/completions  HTTP 500 with an OpenAI error body
#   /v1/messages              the large case's Anthropic answer (an Edit tool_use)
#   /large/v1/chat/completions  the same Edit call as a Chat Completion (translated case)
# Sets upstream_pid (the master).
start_upstream() {
  local port=$1 dir=$bench_tmp/nginx-upstream
  mkdir -p "$dir"
  {
    nginx_head "$dir"
    echo "http {"
    nginx_http_common "$dir"
    cat <<EOF
  default_type application/json;
  server {
    listen 127.0.0.1:$port reuseport backlog=4096;
    location = /v1/chat/completions { return 200 '$(nginx_quote "$bench_dir/fixtures/answer_valid.json")'; }
    location = /bad/v1/chat/completions { return 200 '$(nginx_quote "$bench_dir/fixtures/answer_invalid.json")'; }
    location = /err/v1/chat/completions { return 500 '$(nginx_quote "$bench_dir/fixtures/answer_error.json")'; }
    location = /v1/messages { return 200 '$(nginx_quote "$bench_dir/fixtures/large_answer_anthropic.json")'; }
    location = /large/v1/chat/completions { return 200 '$(nginx_quote "$bench_dir/fixtures/large_answer_openai.json")'; }
    location / { return 404 '{"error":{"message":"not found"}}'; }
  }
}
EOF
  } >"$dir/nginx.conf"
  nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" &
  upstream_pid=$!
  track "$upstream_pid"
  wait_http "http://127.0.0.1:$port/"
}

# Starts nginx as a reverse proxy on $1 to the upstream on $2, with an upstream keep-alive
# pool and $3 workers (1): the ideal-proxy baseline. Sets proxy_pid (the master).
start_nginx_proxy() {
  local port=$1 upstream_port=$2 workers=${3:-1} dir=$bench_tmp/nginx-proxy-$1
  mkdir -p "$dir"
  {
    nginx_head "$dir" "$workers"
    echo "http {"
    nginx_http_common "$dir"
    cat <<EOF
  upstream fixed {
    server 127.0.0.1:$upstream_port;
    keepalive 64;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:$port backlog=4096;
    # The large case's 148 KB bodies stay in memory rather than going to a temporary file.
    client_body_buffer_size 512k;
    location / {
      proxy_pass http://fixed;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  } >"$dir/nginx.conf"
  nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" &
  proxy_pid=$!
  track "$proxy_pid"
  wait_http "http://127.0.0.1:$port/"
}

# The backstop config for the benchmarks: upstream on $1, written to $2.
#   agentic           primary passes the checks (one upstream call per request)
#   agentic-fallback  primary's arguments break the schema, fallback passes (two calls)
#   large             the large Anthropic request to an Anthropic target (same dialect)
#   large-translated  the large Anthropic request to an OpenAI primary (translated)
write_backstop_config() {
  local port=$1 file=$2
  cat >"$file" <<EOF
threads: 1
log: {access_log: ""}
providers:
  primary:
    kind: openai
    base_url: http://127.0.0.1:$port/v1
    model: deepseek-ai/DeepSeek-V4-Flash
    price: {input: 0.14, output: 0.28}
  primary-wrong:
    kind: openai
    base_url: http://127.0.0.1:$port/bad/v1
    model: deepseek-ai/DeepSeek-V4-Flash
    price: {input: 0.14, output: 0.28}
  fallback:
    kind: openai
    base_url: http://127.0.0.1:$port/v1
    model: gpt-4.1
    price: {input: 2.0, output: 8.0}
  claude:
    kind: anthropic
    base_url: http://127.0.0.1:$port
    model: claude-sonnet-4-5
    price: {input: 3.0, output: 15.0}
  primary-large:
    kind: openai
    base_url: http://127.0.0.1:$port/large/v1
    model: deepseek-ai/DeepSeek-V4-Flash
    price: {input: 0.14, output: 0.28}
workloads:
  agentic:
    route: [primary, fallback]
    validate: {tool_call: required, tool_names: declared, arguments: schema}
  agentic-fallback:
    route: [primary-wrong, fallback]
    validate: {tool_call: required, tool_names: declared, arguments: schema}
  large:
    route: [claude]
    validate: {tool_call: required, tool_names: declared, arguments: schema}
  large-translated:
    route: [primary-large]
    validate: {tool_call: required, tool_names: declared, arguments: schema}
EOF
}

# The port a backstop process printed on stderr ("listening on port N"), waiting up to 60 s
# (valgrind starts slowly). $1: its stderr file, $2: its pid.
backstop_port() {
  local err=$1 pid=$2 port
  for _ in $(seq 600); do
    port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$err" | head -1)
    if [[ -n "$port" ]]; then
      echo "$port"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || die "backstop exited: $(cat "$err")"
    sleep 0.1
  done
  die "backstop did not start: $(cat "$err")"
}

# The request body with `model` set to $1, written to $2; $3 the fixture (request.json).
write_request() {
  sed -e "s/\"model\":\"agentic\"/\"model\":\"$1\"/" "$bench_dir/fixtures/${3:-request.json}" >"$2"
}

# The backstop binary: $BACKSTOP_BIN, or build-bench/backstop built now (a no-op when fresh).
backstop_binary() {
  if [[ -n "${BACKSTOP_BIN:-}" ]]; then
    [[ -x "$BACKSTOP_BIN" ]] || die "BACKSTOP_BIN=$BACKSTOP_BIN is not executable"
    echo "$BACKSTOP_BIN"
    return 0
  fi
  local build=$repo_dir/build-bench
  if [[ ! -f "$build/build.ninja" ]]; then
    cmake -S "$repo_dir" -B "$build" -G Ninja -DBACKSTOP_BENCH=ON >&2 || die "cmake failed"
  fi
  ninja -C "$build" -j2 backstop >&2 || die "build failed"
  echo "$build/backstop"
}
