#!/usr/bin/env bash
# check-config: a bad config prints FILE:LINE: PATH: MESSAGE and exits 1; a good one exits 0.
set -u
bin=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/bad.yaml" <<'YAML'
providers:
  v4:
    kind: openai
    base_url: http://127.0.0.1:8000/v1
    model: m
workloads:
  agentic:
    route: [v4, claud]
YAML
out=$("$bin" check-config "$dir/bad.yaml" 2>&1)
rc=$?
if [[ $rc -ne 1 ]]; then echo "bad config: exit $rc, want 1"; exit 1; fi
if [[ "$out" != *"bad.yaml:8: workloads.agentic.route[1]"*"claud"* ]]; then
  echo "bad config: unexpected output: $out"; exit 1
fi
cat >"$dir/good.yaml" <<'YAML'
providers:
  v4:
    kind: openai
    base_url: http://127.0.0.1:8000/v1
    model: m
workloads:
  agentic:
    route: [v4]
YAML
if ! "$bin" check-config "$dir/good.yaml" >/dev/null 2>&1; then echo "good config rejected"; exit 1; fi
echo "cli check-config ok"
