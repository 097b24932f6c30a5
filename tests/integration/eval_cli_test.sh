#!/usr/bin/env bash
# backstop eval run | list | diff as a process: a bad suite line is reported with its line
# number and the run goes on; runs end with "run RUN_ID" and are listed oldest first; a diff
# of a run with many more schema failures exits 1, a run against itself 0; through real HTTP
# (backstop mock) a 500 is retried and a schema fault fails its case. The stack bump of a
# simulated provider (simulation.stacks) is what the diff catches.
set -u
bin=$1
dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$dir"/*.err "$dir"/*.out; do echo "--- $f"; cat "$f"; done; exit 1; }

tool='{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}'
weather_case() {  # ID [USER TEXT]
  echo "{\"id\": \"$1\", \"workload\": \"agentic\", \"request\": {\"messages\": [{\"role\": \"user\", \"content\": \"${2:-Weather?}\"}], \"tools\": [$tool]}, \"expect\": {\"tool\": \"get_weather\"}}"
}
{
  weather_case w1
  weather_case w2
  echo 'not json'
  echo '{"id": "x", "workload": "nope", "request": {"messages": []}}'
  for i in $(seq 3 30); do weather_case "w$i"; done
} >"$dir/suite.jsonl"

# The simulated provider runs on vllm-0.7.3 without faults; on sglang-0.4.6 70 % of its tool
# calls violate the schema.
cat >"$dir/sim.yaml" <<YAML
ledger: {path: $dir/runs.db}
providers:
  sim:
    kind: simulated
    model: sim-1
    stack: vllm-0.7.3
    simulation:
      latency_p50_ms: 0
      latency_p99_ms: 0
      seed: 5
      stacks:
        sglang-0.4.6: {schema: 0.7}
workloads:
  agentic:
    route: [sim]
    validate: {tool_call: required, tool_names: declared, arguments: schema}
YAML

"$bin" eval run --config "$dir/sim.yaml" --suite "$dir/suite.jsonl" --provider sim \
  >"$dir/a.out" 2>"$dir/a.err"
rc=$?
[[ $rc -eq 0 ]] || fail "run A: exit $rc"
grep -q "suite.jsonl:3: " "$dir/a.err" || fail "run A: line 3 not reported"
grep -q "suite.jsonl:4: workload \"nope\"" "$dir/a.err" || fail "run A: line 4 not reported"
grep -q "30/30 passed" "$dir/a.out" || fail "run A: not every case passed"
run_a=$(tail -n1 "$dir/a.out" | sed -n 's/^run //p')
[[ -n "$run_a" ]] || fail "run A: last line is not run RUN_ID"

"$bin" eval run --config "$dir/sim.yaml" --suite "$dir/suite.jsonl" --provider sim \
  --stack sglang-0.4.6 --concurrency 8 >"$dir/b.out" 2>"$dir/b.err" || fail "run B failed"
run_b=$(tail -n1 "$dir/b.out" | sed -n 's/^run //p')

"$bin" eval list --config "$dir/sim.yaml" >"$dir/list.out" 2>"$dir/list.err" || fail "list"
[[ $(wc -l <"$dir/list.out") -eq 2 ]] || fail "list: want 2 lines"
[[ $(cut -d' ' -f1 "$dir/list.out" | tr '\n' ' ') == "$run_a $run_b " ]] || fail "list order"
grep -q "stack vllm-0.7.3" "$dir/list.out" || fail "list: no configured stack label"
grep -q "stack sglang-0.4.6" "$dir/list.out" || fail "list: no --stack label"

"$bin" eval diff "$run_a" "$run_b" --ledger "$dir/runs.db" >"$dir/diff.out" 2>"$dir/diff.err"
rc=$?
[[ $rc -eq 1 ]] || fail "diff A B: exit $rc, want 1"
grep -q "REGRESSION" "$dir/diff.out" || fail "diff A B: no REGRESSION line"
grep -q "pass -> fail: schema" "$dir/diff.out" || fail "diff A B: no flipped case"
"$bin" eval diff "$run_a" "$run_b" --ledger "$dir/runs.db" --format html --out "$dir/diff.html" \
  >"$dir/html.out" 2>"$dir/html.err"
rc=$?
[[ $rc -eq 1 ]] || fail "diff A B --format html: exit $rc, want 1"
[[ ! -s "$dir/html.out" ]] || fail "diff --out: the page went to stdout"
head -c 15 "$dir/diff.html" | grep -q "<!DOCTYPE html>" || fail "diff --format html: no page"
grep -q "drift: B is significantly worse" "$dir/diff.html" || fail "diff html: no verdict"
grep -q "sglang-0.4.6" "$dir/diff.html" || fail "diff html: no stack of B"
"$bin" eval diff "$run_a" "$run_a" --ledger "$dir/runs.db" >"$dir/same.out" 2>&1 ||
  fail "diff A A: exit $?, want 0"
"$bin" eval diff "$run_a" nosuchrun --ledger "$dir/runs.db" >/dev/null 2>"$dir/none.err"
[[ $? -eq 1 ]] && grep -q "no run nosuchrun" "$dir/none.err" || fail "diff of an unknown run"

# Through real HTTP: the mock answers 500 to the first try of r1, and a schema fault to r2.
"$bin" mock --listen 127.0.0.1:0 >"$dir/mock.out" 2>"$dir/mock.err" &
pids+=($!)
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$dir/mock.out")
  [[ -n "$port" ]] && break
  sleep 0.05
done
[[ -n "$port" ]] || fail "mock did not start"
cat >"$dir/http.yaml" <<YAML
ledger: {path: $dir/runs.db}
providers:
  v4: {kind: openai, base_url: "http://127.0.0.1:$port/v1", model: m}
workloads:
  agentic:
    route: [v4]
    validate: {tool_call: required, tool_names: declared, arguments: schema}
YAML
{
  weather_case r1 'Weather? [mock:server_error*1]'
  weather_case r2 'Weather? [mock:schema]'
} >"$dir/http.jsonl"
"$bin" eval run --config "$dir/http.yaml" --suite "$dir/http.jsonl" --provider v4 \
  --stack mock >"$dir/http.out" 2>"$dir/http.err" || fail "run over HTTP failed"
grep -q "1/2 passed" "$dir/http.out" || fail "over HTTP: want 1/2 passed"
grep -q "fail r2 (agentic): schema" "$dir/http.out" || fail "over HTTP: r2 should fail schema"
echo "eval cli ok"
