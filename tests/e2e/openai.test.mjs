// The official OpenAI SDK against the gateway's /v1/chat/completions.

import assert from 'node:assert/strict';
import {after, before, test} from 'node:test';
import OpenAI from 'openai';

import {ask, kClientTimeoutMs, kTestTimeoutMs, openaiWeatherTool, rejection, startGateway, streamOptions} from './harness.mjs';

const options = {
  timeout: kTestTimeoutMs
};

let gateway;
let client;

before(async () => {
  gateway = await startGateway();
  client = new OpenAI({
    baseURL: `${gateway.url}/v1`,
    apiKey: 'test',
    organization: null,
    project: null,
    maxRetries: 0,
    timeout: kClientTimeoutMs,
  });
}, options);

after(async () => {
  await gateway?.stop();
}, options);

const textRequest = {
  model: 'docs',
  messages: ask('What is backstop?')
};
const toolRequest = {
  model: 'agentic',
  messages: ask('Weather in Paris?'),
  tools: [openaiWeatherTool]
};
// The primary's arguments do not parse, so the anthropic fallback answers.
const brokenPrimaryRequest = {
  ...toolRequest,
  messages: ask('Paris? [mock:invalid_json@v4-flash]')
};
const doomedRequest = {
  model: 'doomed',
  messages: ask('Hi [mock:server_error@v4-flash] [mock:server_error@claude-sonnet]'),
};

// The tool call the SDK parsed, with its arguments checked against get_weather's schema.
function assertWeatherCall(call) {
  assert.equal(call.type, 'function');
  assert.equal(typeof call.id, 'string');
  assert.ok(call.id.length > 0);
  assert.equal(call.function.name, 'get_weather');
  const args = JSON.parse(call.function.arguments);
  assert.equal(typeof args, 'object');
  assert.equal(typeof args.city, 'string');
  assert.ok(['c', 'f'].includes(args.unit), `unit ${args.unit}`);
}

test('non-streaming text (docs) is served by the primary', options, async () => {
  const {data, response} = await client.chat.completions.create(textRequest).withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.model, 'v4-flash');
  assert.equal(data.choices.length, 1);
  assert.equal(data.choices[0].message.role, 'assistant');
  assert.equal(typeof data.choices[0].message.content, 'string');
  assert.ok(data.choices[0].message.content.length > 0);
  assert.equal(data.choices[0].finish_reason, 'stop');
  assert.ok(data.usage.prompt_tokens > 0);
  assert.ok(data.usage.completion_tokens > 0);
  assert.equal(response.headers.get('x-backstop-workload'), 'docs');
  assert.equal(response.headers.get('x-backstop-served-by'), 'v4');
  assert.equal(response.headers.get('x-backstop-attempts'), '1');
  assert.equal(response.headers.get('x-backstop-fallback-reason'), null);
  assert.ok(response.headers.get('x-request-id'));
});

test('non-streaming tool call (agentic) is parsed by the SDK', options, async () => {
  const completion = await client.chat.completions.create(toolRequest);
  assert.equal(completion.model, 'v4-flash');
  assert.equal(completion.choices[0].finish_reason, 'tool_calls');
  const calls = completion.choices[0].message.tool_calls;
  assert.equal(calls.length, 1);
  assertWeatherCall(calls[0]);
});

test('invalid primary arguments: asResponse() shows the fallback', options, async () => {
  const response = await client.chat.completions.create(brokenPrimaryRequest).asResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('x-backstop-served-by'), 'claude');
  assert.equal(response.headers.get('x-backstop-fallback-reason'), 'invalid_json');
  assert.equal(response.headers.get('x-backstop-attempts'), '2');
  const completion = await response.json();
  assert.equal(completion.model, 'claude-sonnet');
  assert.equal(completion.choices[0].finish_reason, 'tool_calls');
  assertWeatherCall(completion.choices[0].message.tool_calls[0]);
});

test('invalid primary arguments: the SDK parses the fallback tool call', options, async () => {
  const {data, response} =
      await client.chat.completions.create(brokenPrimaryRequest).withResponse();
  assert.equal(response.headers.get('x-backstop-served-by'), 'claude');
  assert.equal(response.headers.get('x-backstop-fallback-reason'), 'invalid_json');
  assert.equal(data.model, 'claude-sonnet');
  assert.equal(data.choices[0].message.tool_calls.length, 1);
  assertWeatherCall(data.choices[0].message.tool_calls[0]);
});

test('every target failed: APIError, status 502, with the attempts', options, async () => {
  const error = await rejection(client.chat.completions.create(doomedRequest));
  assert.ok(error instanceof OpenAI.APIError, `got ${error}`);
  assert.ok(error instanceof OpenAI.InternalServerError);
  assert.equal(error.status, 502);
  assert.equal(error.code, 'all_targets_failed');
  assert.equal(error.type, 'server_error');
  assert.match(error.message, /every target of workload "doomed" failed \(2 attempts\)/);
  assert.equal(error.error.code, 'all_targets_failed');
  assert.equal(error.headers.get('x-backstop-workload'), 'doomed');
  const attempts = error.error.attempts;
  assert.deepEqual(attempts.map((a) => [a.provider, a.model, a.reason, a.status]), [
    ['v4', 'v4-flash', 'upstream_error', 500],
    ['claude', 'claude-sonnet', 'upstream_error', 500],
  ]);
  for (const a of attempts) {
    assert.equal(a.detail, 'HTTP 500: mock: server error');
    assert.equal(typeof a.latency_ms, 'number');
  }
});

test('an unknown workload is a NotFoundError naming the workloads', options, async () => {
  const error = await rejection(client.chat.completions.create({...textRequest, model: 'nope'}));
  assert.ok(error instanceof OpenAI.NotFoundError, `got ${error}`);
  assert.equal(error.status, 404);
  assert.equal(error.code, 'model_not_found');
  assert.match(error.message, /agentic/);
});

test('models.list() lists the workloads', options, async () => {
  const ids = [];
  for await (const model of client.models.list()) ids.push(model.id);
  assert.deepEqual(
      ids.sort(),
      ['agentic', 'cc-checked', 'cc-translate', 'classify', 'claude-only', 'docs', 'doomed', 'plain']);
});

// Streaming (DESIGN.md: `stream` true or false on both endpoints).

test('streaming text (docs): deltas add up to the final completion', options, async () => {
  const stream = client.chat.completions.stream(textRequest, streamOptions());
  let text = '';
  stream.on('content', (delta) => {
    text += delta;
  });
  const completion = await stream.finalChatCompletion();
  assert.ok(text.length > 0);
  assert.equal(completion.choices[0].message.content, text);
  assert.equal(completion.choices[0].finish_reason, 'stop');
  assert.equal(completion.model, 'v4-flash');
});

test('streaming tool call (agentic): the helper assembles valid arguments', options, async () => {
  const stream = client.chat.completions.stream(toolRequest, streamOptions());
  const done = [];
  stream.on('tool_calls.function.arguments.done', (event) => done.push(event));
  const completion = await stream.finalChatCompletion();
  assert.equal(completion.choices[0].finish_reason, 'tool_calls');
  const calls = completion.choices[0].message.tool_calls;
  assert.equal(calls.length, 1);
  assertWeatherCall(calls[0]);
  assert.deepEqual(done.map((event) => [event.index, event.name, event.arguments]), [
    [0, 'get_weather', calls[0].function.arguments],
  ]);
});

test('streaming fallback: the client sees only the fallback stream', options, async () => {
  const request = {...brokenPrimaryRequest, stream: true};
  const {data: stream, response} =
      await client.chat.completions.create(request, streamOptions()).withResponse();
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^text\/event-stream/);
  assert.equal(response.headers.get('x-backstop-served-by'), 'claude');
  assert.equal(response.headers.get('x-backstop-fallback-reason'), 'invalid_json');
  const models = new Set();
  const ids = new Set();
  const calls = new Map();  // index -> {id, name, arguments}
  let finish = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    models.add(chunk.model);
    ids.add(chunk.id);
    for (const choice of chunk.choices) {
      for (const delta of choice.delta.tool_calls ?? []) {
        const call = calls.get(delta.index) ?? {id: '', name: '', arguments: ''};
        if (delta.id) call.id = delta.id;
        if (delta.function?.name) call.name += delta.function.name;
        if (delta.function?.arguments) call.arguments += delta.function.arguments;
        calls.set(delta.index, call);
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  assert.deepEqual([...models], ['claude-sonnet']);
  assert.equal(ids.size, 1, 'one completion id across the stream');
  assert.equal(finish, 'tool_calls');
  assert.equal(calls.size, 1);
  const call = calls.get(0);
  assertWeatherCall(
      {type: 'function', id: call.id, function: {name: call.name, arguments: call.arguments}});
});

test('streaming with stream_options.include_usage ends with a usage chunk', options, async () => {
  const chunks = [];
  const request = {...textRequest, stream: true, stream_options: {include_usage: true}};
  const stream = await client.chat.completions.create(request, streamOptions());
  for await (const chunk of stream) chunks.push(chunk);
  assert.ok(chunks.length >= 2);
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.ok(last.usage, 'the last chunk carries usage');
  assert.ok(last.usage.prompt_tokens > 0);
  assert.ok(last.usage.completion_tokens > 0);
  assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens);
  for (const chunk of chunks.slice(0, -1)) {
    assert.ok(chunk.usage == null, 'usage only on the last chunk');
  }
});

test('serve drains and exits 0 on SIGTERM', options, async () => {
  const exits = await gateway.stop();
  assert.deepEqual(exits.serve, {code: 0, signal: null}, gateway.logs());
  assert.deepEqual(exits.mock, {code: 0, signal: null}, gateway.logs());
});
