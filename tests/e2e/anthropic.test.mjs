// The official Anthropic SDK against the gateway's /v1/messages.

import Anthropic from '@anthropic-ai/sdk';
import assert from 'node:assert/strict';
import {after, before, test} from 'node:test';

import {anthropicWeatherTool, ask, kClientTimeoutMs, kTestTimeoutMs, rejection, startGateway, streamOptions} from './harness.mjs';

const options = {
  timeout: kTestTimeoutMs
};

let gateway;
let client;

before(async () => {
  gateway = await startGateway();
  client = new Anthropic({
    baseURL: gateway.url,
    apiKey: 'test',
    authToken: null,
    maxRetries: 0,
    timeout: kClientTimeoutMs,
  });
}, options);

after(async () => {
  await gateway?.stop();
}, options);

const textRequest = {
  model: 'docs',
  max_tokens: 256,
  messages: ask('What is backstop?')
};
const toolRequest = {
  ...textRequest,
  model: 'agentic',
  tools: [anthropicWeatherTool]
};
// The OpenAI-dialect primary's arguments do not parse, so the anthropic fallback answers.
const brokenPrimaryRequest = {
  ...toolRequest,
  messages: ask('Paris? [mock:invalid_json@v4-flash]')
};
const doomedRequest = {
  ...textRequest,
  model: 'doomed',
  messages: ask('Hi [mock:server_error@v4-flash] [mock:server_error@claude-sonnet]'),
};

// The one tool_use block of `message`, with its input checked against get_weather's schema.
function assertWeatherUse(message) {
  assert.equal(message.stop_reason, 'tool_use');
  const uses = message.content.filter((block) => block.type === 'tool_use');
  assert.equal(uses.length, 1);
  const [use] = uses;
  // Anthropic's pattern for tool_use ids (an OpenAI-dialect primary's `call_...` ids fit it).
  assert.match(use.id, /^[A-Za-z0-9_-]+$/);
  assert.equal(use.name, 'get_weather');
  assert.equal(typeof use.input, 'object');
  assert.notEqual(use.input, null);
  assert.equal(typeof use.input.city, 'string');
  assert.ok(['c', 'f'].includes(use.input.unit), `unit ${use.input.unit}`);
  return use;
}

function text(message) {
  return message.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
}

test('non-streaming text (docs) is served by the primary, translated', options, async () => {
  const {data, response} = await client.messages.create(textRequest).withResponse();
  assert.equal(data.type, 'message');
  assert.equal(data.role, 'assistant');
  assert.equal(data.model, 'v4-flash');
  assert.equal(data.stop_reason, 'end_turn');
  assert.ok(text(data).length > 0);
  assert.ok(data.usage.input_tokens > 0);
  assert.ok(data.usage.output_tokens > 0);
  assert.equal(response.headers.get('x-backstop-workload'), 'docs');
  assert.equal(response.headers.get('x-backstop-served-by'), 'v4');
  assert.equal(response.headers.get('x-backstop-attempts'), '1');
  assert.equal(response.headers.get('x-backstop-fallback-reason'), null);
});

test(
    'tool use (agentic): the SDK sees a tool_use block with an input object', options, async () => {
      assertWeatherUse(await client.messages.create(toolRequest));
    });

test('invalid arguments from the OpenAI-dialect primary: served by claude', options, async () => {
  const {data, response} = await client.messages.create(brokenPrimaryRequest).withResponse();
  assert.equal(response.headers.get('x-backstop-served-by'), 'claude');
  assert.equal(response.headers.get('x-backstop-fallback-reason'), 'invalid_json');
  assert.equal(response.headers.get('x-backstop-attempts'), '2');
  assert.equal(data.model, 'claude-sonnet');
  assert.match(assertWeatherUse(data).id, /^toolu_/);
});

test(
    'every target failed: Anthropic.APIError, status 502, with the attempts', options, async () => {
      const error = await rejection(client.messages.create(doomedRequest));
      assert.ok(error instanceof Anthropic.APIError, `got ${error}`);
      assert.ok(error instanceof Anthropic.InternalServerError);
      assert.equal(error.status, 502);
      assert.match(error.message, /^502 .*all_targets_failed/);
      assert.equal(error.headers.get('x-backstop-workload'), 'doomed');
      // The SDK keeps the whole body: {type: "error", error: {type, message, ...}}.
      assert.equal(error.error.type, 'error');
      const body = error.error.error;
      assert.equal(error.type, 'api_error');
      assert.equal(body.type, 'api_error');
      assert.equal(body.code, 'all_targets_failed');
      assert.match(body.message, /every target of workload "doomed" failed \(2 attempts\)/);
      assert.deepEqual(body.attempts.map((a) => [a.provider, a.model, a.reason, a.status]), [
        ['v4', 'v4-flash', 'upstream_error', 500],
        ['claude', 'claude-sonnet', 'upstream_error', 500],
      ]);
    });

// Streaming (DESIGN.md: `stream` true or false on both endpoints).

test('streaming text (docs): messages.stream() and finalMessage()', options, async () => {
  const stream = client.messages.stream(textRequest, streamOptions());
  let deltas = '';
  stream.on('text', (delta) => {
    deltas += delta;
  });
  const message = await stream.finalMessage();
  assert.ok(deltas.length > 0);
  assert.equal(text(message), deltas);
  assert.equal(message.stop_reason, 'end_turn');
  assert.ok(message.usage.output_tokens > 0);
});

test('streaming tool use (agentic): finalMessage() has the parsed input', options, async () => {
  const stream = client.messages.stream(toolRequest, streamOptions());
  let json = '';
  stream.on('inputJson', (partial) => {
    json += partial;
  });
  const use = assertWeatherUse(await stream.finalMessage());
  assert.deepEqual(JSON.parse(json), use.input);
});

test('streaming from the OpenAI-dialect primary arrives as Anthropic events', options, async () => {
  const stream = client.messages.stream({...textRequest, model: 'plain'}, streamOptions());
  const types = [];
  stream.on('streamEvent', (event) => types.push(event.type));
  const {response} = await stream.withResponse();
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^text\/event-stream/);
  assert.equal(response.headers.get('x-backstop-served-by'), 'v4');
  const message = await stream.finalMessage();
  assert.equal(message.model, 'v4-flash');
  assert.ok(text(message).length > 0);
  assert.equal(message.stop_reason, 'end_turn');
  assert.equal(types[0], 'message_start');
  assert.equal(types.at(-1), 'message_stop');
  for (const type of
           ['content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta']) {
    assert.ok(types.includes(type), `no ${type} in ${types}`);
  }
});

test(
    'streaming tool use from an Anthropic target (claude-only): finalMessage() has a tool_use with the parsed input',
    options, async () => {
      const stream =
          client.messages.stream({...toolRequest, model: 'claude-only'}, streamOptions());
      let json = '';
      stream.on('inputJson', (partial) => {
        json += partial;
      });
      const {response} = await stream.withResponse();
      assert.equal(response.headers.get('x-backstop-served-by'), 'claude');
      const message = await stream.finalMessage();
      assert.equal(message.model, 'claude-sonnet');
      const use = assertWeatherUse(message);
      assert.match(use.id, /^toolu_/);
      assert.deepEqual(JSON.parse(json), use.input);
    });

// Token counting (POST /v1/messages/count_tokens).

const countRequest = {
  model: 'docs',
  messages: ask('How many tokens is this question?'),
  tools: [anthropicWeatherTool],
};

test(
    'countTokens on a route with an Anthropic target (docs): forwarded, the mock\'s count comes back',
    options, async () => {
      const {data: counted, response} =
          await client.messages.countTokens(countRequest).withResponse();
      assert.equal(response.headers.get('x-backstop-workload'), 'docs');
      assert.equal(response.headers.get('x-backstop-served-by'), 'claude');
      // The mock counts the bytes it received / 4: the client's body, its model now claude's.
      const forwarded = JSON.stringify({...countRequest, model: 'claude-sonnet'});
      assert.deepEqual(counted, {input_tokens: Math.floor(Buffer.byteLength(forwarded) / 4)});
    });

test(
    'countTokens on a route with no Anthropic target (plain): a local estimate above 0', options,
    async () => {
      const counted = await client.messages.countTokens({...countRequest, model: 'plain'});
      assert.equal(typeof counted.input_tokens, 'number');
      assert.ok(Number.isInteger(counted.input_tokens), `${counted.input_tokens}`);
      assert.ok(counted.input_tokens > 0, `${counted.input_tokens}`);
    });

test('countTokens for an unknown workload: Anthropic.NotFoundError', options, async () => {
  const error = await rejection(client.messages.countTokens({...countRequest, model: 'nope'}));
  assert.ok(error instanceof Anthropic.NotFoundError, `got ${error}`);
  assert.equal(error.status, 404);
});

test('serve drains and exits 0 on SIGTERM', options, async () => {
  const exits = await gateway.stop();
  assert.deepEqual(exits.serve, {code: 0, signal: null}, gateway.logs());
  assert.deepEqual(exits.mock, {code: 0, signal: null}, gateway.logs());
});
