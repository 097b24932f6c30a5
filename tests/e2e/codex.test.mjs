// Codex CLI (the real CLI from npm, pinned, headless `codex exec`) through the gateway's
// /v1/responses to `backstop mock`, as a custom model provider (wire_api "responses"): a task
// that takes one tool call (the mock calls Codex's first tool, Codex runs it and sends the
// output back, the mock answers in text). Asserts that Codex finished the turn with an answer,
// ran the tool, and that every request it made got a 2xx.

import assert from 'node:assert/strict';
import {execFile} from 'node:child_process';
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';

import {startGateway} from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const codexBin = path.join(here, 'node_modules', '.bin', 'codex');

const kCodexTimeoutMs = 60_000;
const options = {
  timeout: 80_000
};

// `codex exec --json PROMPT` in a fresh CODEX_HOME whose provider is the gateway; its events.
function codexExec(gatewayUrl, workload, prompt) {
  const home = mkdtempSync(path.join(os.tmpdir(), 'backstop-codex-'));
  const work = path.join(home, 'work');
  mkdirSync(work);
  writeFileSync(path.join(home, 'config.toml'), `model = "${workload}"
model_provider = "backstop"

[model_providers.backstop]
name = "backstop"
base_url = "${gatewayUrl}/v1"
wire_api = "responses"
env_key = "BACKSTOP_E2E_KEY"
`);
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    CODEX_HOME: home,
    BACKSTOP_E2E_KEY: 'unused',
    NO_PROXY: '127.0.0.1,localhost',
  };
  return new Promise((resolve) => {
    const child = execFile(
        codexBin, ['exec', '--skip-git-repo-check', '--json', prompt],
        {cwd: work, env, timeout: kCodexTimeoutMs, maxBuffer: 16 << 20}, (error, stdout, stderr) => {
          rmSync(home, {recursive: true, force: true});
          const events = [];
          for (const line of stdout.split('\n')) {
            if (!line.trim()) continue;
            try {
              events.push(JSON.parse(line));
            } catch {
              // Codex may print a non-JSON line; the events are the JSON ones.
            }
          }
          resolve({code: error ? (error.code ?? 1) : 0, events, stdout, stderr});
        });
    child.stdin?.end();
  });
}

test('codex exec completes a task that takes one tool call', options, async () => {
  const gateway = await startGateway({accessLog: true});
  let run;
  try {
    run = await codexExec(gateway.url, 'plain', 'List the files in this folder.');
  } finally {
    await gateway.stop();
  }
  const context = `codex: ${run.stdout}\n${run.stderr}\n${gateway.logs()}`;
  assert.equal(run.code, 0, context);
  const items = run.events.filter((e) => e.type === 'item.completed').map((e) => e.item);
  assert.ok(items.some((i) => i.type === 'command_execution'), context);
  const answer = items.filter((i) => i.type === 'agent_message').at(-1);
  assert.ok(answer && answer.text.length > 0, context);
  assert.ok(run.events.some((e) => e.type === 'turn.completed'), context);

  const requests = gateway.accessLog().filter((line) => line.path === '/v1/responses');
  assert.ok(requests.length >= 2, JSON.stringify(requests));  // the call, then its output
  for (const line of requests) {
    assert.ok(line.status >= 200 && line.status < 300, JSON.stringify(line));
    assert.equal(line.stream, true);
  }
});
