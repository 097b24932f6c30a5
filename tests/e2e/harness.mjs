// The gateway under test: `backstop mock` on an ephemeral port, `backstop serve` in front of it
// with providers in both dialects, both on loopback, both killed at the end (also on failure).

import assert from 'node:assert/strict';
import {spawn} from 'node:child_process';
import {existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

// The binary under test: $BACKSTOP_BIN, or the default build next to the sources.
export const backstopBin = process.env.BACKSTOP_BIN || path.resolve(here, '../../build/backstop');

// Upper bound for one process to start, get ready or stop.
const kStartupMs = 10_000;
const kStopMs = 10_000;

// Every child still alive; killed on exit so a failing or timed-out test leaks nothing.
const alive = new Set();
process.on('exit', () => {
  for (const child of alive) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const child of alive) child.kill('SIGKILL');
    process.exit(128 + os.constants.signals[signal]);
  });
}

// The run script's scratch directory: it kills the processes listed in `pids/` and removes
// everything after the tests, should this process die hard.
const stateDir = process.env.BACKSTOP_E2E_STATE_DIR;

function recordPid(pid) {
  if (stateDir) writeFileSync(path.join(stateDir, 'pids', String(pid)), '');
}

// A tool that the mock answers with arguments satisfying its schema.
export const weatherSchema = {
  type: 'object',
  properties: {
    city: {type: 'string'},
    unit: {type: 'string', enum: ['c', 'f']},
  },
  required: ['city', 'unit'],
};

// `accessLog`: the access log's file, or "" for none.
function configYaml(mockPort, accessLog) {
  return `# written by tests/e2e/harness.mjs
# No drain delay: each test stops its gateway with SIGTERM and waits for the exit.
server: {drain_delay_ms: 0}
providers:
  v4:
    kind: openai
    base_url: http://127.0.0.1:${mockPort}/v1
    model: v4-flash
    timeout_ms: 5000
    connect_timeout_ms: 2000
  claude:
    kind: anthropic
    base_url: http://127.0.0.1:${mockPort}
    model: claude-sonnet
    timeout_ms: 5000
    connect_timeout_ms: 2000
  gpt:
    kind: openai
    base_url: http://127.0.0.1:${mockPort}/v1
    model: gpt-x
    timeout_ms: 5000
    connect_timeout_ms: 2000
workloads:
  agentic:
    route: [v4, claude]
    validate: {tool_call: required, tool_names: declared, arguments: schema}
  docs:
    route: [v4, claude]
    validate: {content: non_empty}
  plain:
    route: [v4, gpt]
  classify:
    route: [v4, gpt]
    validate: {content: schema}
  doomed:
    route: [v4, claude]
    validate: {content: non_empty}
  # Claude Code (claude_code.test.mjs) and the Anthropic SDK on an Anthropic-only route,
  # through a translating route, and with checks (streams buffered).
  claude-only:
    route: [claude]
  cc-translate:
    route: [v4, claude]
  cc-checked:
    route: [v4, claude]
    validate: {content: non_empty}
log: {access_log: ${JSON.stringify(accessLog)}}
`;
}

// A child process whose output is kept for diagnostics and whose exit can be awaited.
class Child {
  constructor(name, args) {
    this.name = name;
    this.output = '';
    this.stdout = '';
    this.exit = null;  // {code, signal} once exited
    this.process = spawn(backstopBin, args, {stdio: ['ignore', 'pipe', 'pipe']});
    alive.add(this.process);
    if (this.process.pid) recordPid(this.process.pid);
    this.exited = new Promise((resolve) => {
      this.process.once('error', (error) => {
        this.output += `${name}: ${error.message}\n`;
        alive.delete(this.process);
        this.exit = {code: null, signal: null, error};
        resolve(this.exit);
      });
      this.process.once('exit', (code, signal) => {
        alive.delete(this.process);
        this.exit = {code, signal};
        resolve(this.exit);
      });
    });
    this.process.stdout.setEncoding('utf8');
    this.process.stderr.setEncoding('utf8');
    this.process.stdout.on('data', (chunk) => {
      this.stdout += chunk;
      this.output += chunk;
    });
    this.process.stderr.on('data', (chunk) => {
      this.output += chunk;
    });
  }

  // Resolves with the first match of `pattern` on stdout; rejects when the process exits first.
  waitForStdout(pattern, timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        done();
        reject(new Error(
            `${this.name}: no ${pattern} on stdout within ${timeoutMs} ms:\n${this.output}`));
      }, timeoutMs);
      const check = () => {
        const match = this.stdout.match(pattern);
        if (match) {
          done();
          resolve(match);
        }
      };
      const exited = () => {
        done();
        reject(new Error(
            `${this.name} exited (${JSON.stringify(this.exit)}) before ready:\n${this.output}`));
      };
      const done = () => {
        clearTimeout(timer);
        this.process.stdout.off('data', check);
        this.process.off('exit', exited);
      };
      this.process.stdout.on('data', check);
      this.process.once('exit', exited);
      check();
    });
  }

  // SIGTERM, then SIGKILL when it has not exited within `timeoutMs`; resolves with the exit.
  async stop(timeoutMs = kStopMs) {
    if (this.exit) return this.exit;
    this.process.kill('SIGTERM');
    let timer;
    const killed = new Promise((resolve) => {
      timer = setTimeout(() => {
        this.output += `${this.name}: no exit ${timeoutMs} ms after SIGTERM, sending SIGKILL\n`;
        this.process.kill('SIGKILL');
        resolve();
      }, timeoutMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    return this.exited;
  }
}

// A free loopback port: serve names the port it bound only in a log line, not a contract.
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const {port} = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitReady(url, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (child.exit) return false;
    try {
      const response = await fetch(url, {signal: AbortSignal.timeout(1000)});
      await response.arrayBuffer();
      if (response.status === 200) return true;
      last = `HTTP ${response.status}`;
    } catch (error) {
      last = error.message;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(
      `${child.name}: ${url} not ready within ${timeoutMs} ms (${last}):\n${child.output}`);
}

// The access log's lines, parsed (one JSON object per API request).
function readAccessLog(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((line) => line !== '').map((line) => {
    try {
      return JSON.parse(line);
    } catch (error) {
      throw new Error(`access log line is not JSON (${error.message}): ${line}`);
    }
  });
}

// Starts the mock and the gateway; resolves with the gateway's URL and a stop() that ends both.
// With `accessLog: true` the gateway writes an access log, read by stop() (after the drain, so
// every request's line is in) and returned by accessLog() from then on.
export async function startGateway({accessLog = false} = {}) {
  const dir = mkdtempSync(path.join(stateDir ?? os.tmpdir(), 'backstop-e2e-'));
  const accessLogFile = accessLog ? path.join(dir, 'access.log') : '';
  let accessEntries = null;
  const children = [];
  const cleanup = async () => {
    const exits = {};
    // The gateway first, so it drains while its upstream still answers.
    for (const child of [...children].reverse()) exits[child.name] = await child.stop();
    if (accessLogFile) accessEntries = readAccessLog(accessLogFile);
    rmSync(dir, {recursive: true, force: true});
    return exits;
  };
  try {
    const mock = new Child('mock', ['mock', '--listen', '127.0.0.1:0']);
    children.push(mock);
    const match = await mock.waitForStdout(/listening on 127\.0\.0\.1:(\d+)/, kStartupMs);
    const mockPort = Number(match[1]);

    const configFile = path.join(dir, 'backstop.yaml');
    writeFileSync(configFile, configYaml(mockPort, accessLogFile));

    // Another process may take the free port between the probe and the bind: try again then.
    let serve;
    let port;
    for (let attempt = 0; attempt < 3 && !serve; ++attempt) {
      port = await freePort();
      const child =
          new Child('serve', ['serve', '--config', configFile, '--listen', `127.0.0.1:${port}`]);
      children.push(child);
      if (await waitReady(`http://127.0.0.1:${port}/readyz`, child, kStartupMs)) {
        serve = child;
      } else {
        children.pop();
        if (attempt === 2)
          throw new Error(`serve exited (${JSON.stringify(child.exit)}):\n${child.output}`);
      }
    }

    let stopped = null;
    return {
      url: `http://127.0.0.1:${port}`,
      // Both processes' output so far, for failure messages.
      logs: () => children.map((c) => `--- ${c.name}\n${c.output}`).join('\n'),
      // Idempotent: the exits of {serve, mock}.
      stop: () => (stopped ??= cleanup()),
      // The access log's entries, once stop() has resolved.
      accessLog: () => {
        assert.ok(accessLogFile, 'startGateway({accessLog: true}) writes an access log');
        assert.ok(accessEntries, 'the access log is read by stop(): await it first');
        return accessEntries;
      },
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

// The same tool offered in each vendor's shape.
export const openaiWeatherTool = {
  type: 'function',
  function:
      {name: 'get_weather', description: 'Current weather in a city', parameters: weatherSchema},
};
export const anthropicWeatherTool = {
  name: 'get_weather',
  description: 'Current weather in a city',
  input_schema: weatherSchema,
};

// A conversation of one user message.
export function ask(text) {
  return [{role: 'user', content: text}];
}

// The error that `request` (a promise) fails with; a test failure when it succeeds.
export async function rejection(request) {
  try {
    await request;
  } catch (error) {
    return error;
  }
  assert.fail('expected the request to fail');
}

// Per-test bound (the clients' own timeout is shorter, so a hang fails with the SDK's error).
export const kTestTimeoutMs = 20_000;
export const kClientTimeoutMs = 10_000;

// Request options for streams: the SDKs' timeout stops at the headers, this bounds the body too.
export function streamOptions() {
  return {signal: AbortSignal.timeout(kClientTimeoutMs)};
}
