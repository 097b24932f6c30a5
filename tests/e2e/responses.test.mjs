// The official OpenAI SDK against the gateway's /v1/responses (the Responses API, bridged to
// Chat Completions and Messages targets).

import assert from 'node:assert/strict';
import {after, before, test} from 'node:test';
import OpenAI from 'openai';

import {kClientTimeoutMs, kTestTimeoutMs, rejection, startGateway, streamOptions, weatherSchema} from './harness.mjs';

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

const weatherTool = {
  type: 'function',
  name: 'get_weather',
  description: 'Current weather in a city',
  parameters: weatherSchema,
  strict: false,
};

const labelFormat = {
  type: 'json_schema',
  name: 'label',
  strict: true,
  schema: {
    type: 'object',
    properties: {label: {type: 'string'}},
    required: ['label'],
    additionalProperties: false,
  },
};

function assertWeatherCall(item) {
  assert.equal(item.type, 'function_call');
  assert.equal(item.name, 'get_weather');
  assert.ok(item.call_id.length > 0);
  const args = JSON.parse(item.arguments);
  assert.equal(typeof args.city, 'string');
  assert.ok(['c', 'f'].includes(args.unit), `unit ${args.unit}`);
}

test('responses.create answers text from the primary', options, async () => {
  const {data, response} = await client.responses
                               .create({model: 'docs', instructions: 'Be brief.', input: 'What is backstop?'})
                               .withResponse();
  assert.equal(data.object, 'response');
  assert.equal(data.status, 'completed');
  assert.equal(data.model, 'v4-flash');
  assert.ok(data.output_text.length > 0);
  assert.ok(data.usage.input_tokens > 0);
  assert.ok(data.usage.output_tokens > 0);
  assert.equal(response.headers.get('x-backstop-served-by'), 'v4');
});

test('a function calling round trip', options, async () => {
  const first = await client.responses.create({model: 'agentic', input: 'Weather in Paris?', tools: [weatherTool]});
  const call = first.output.find((item) => item.type === 'function_call');
  assert.ok(call, JSON.stringify(first.output));
  assertWeatherCall(call);
  const second = await client.responses.create({
    model: 'docs',
    tools: [weatherTool],
    input: [
      {role: 'user', content: 'Weather in Paris?'},
      ...first.output,
      {type: 'function_call_output', call_id: call.call_id, output: '{"temperature": 18}'},
    ],
  });
  assert.equal(second.status, 'completed');
  assert.ok(second.output_text.length > 0, JSON.stringify(second.output));
});

test('responses.stream gives the documented events and a final response', options, async () => {
  const stream = client.responses.stream({model: 'docs', input: 'Tell me about backstop.'}, streamOptions());
  const types = [];
  let deltas = '';
  for await (const event of stream) {
    types.push(event.type);
    if (event.type === 'response.output_text.delta') deltas += event.delta;
  }
  const final = await stream.finalResponse();
  assert.equal(types[0], 'response.created');
  assert.equal(types.at(-1), 'response.completed');
  assert.ok(types.includes('response.output_text.done'));
  assert.equal(final.output_text, deltas);
  assert.ok(deltas.length > 0);
});

test('a streamed tool call through a checked route', options, async () => {
  const stream = client.responses.stream(
      {model: 'agentic', input: 'Weather in Paris? [mock:invalid_json@v4-flash]', tools: [weatherTool]},
      streamOptions());
  const final = await stream.finalResponse();
  const call = final.output.find((item) => item.type === 'function_call');
  assert.ok(call, JSON.stringify(final.output));
  assertWeatherCall(call);
});

test('text.format structured output falls back on a schema failure', options, async () => {
  const {data, response} = await client.responses
                               .create({
                                 model: 'classify',
                                 input: 'Label this [mock:schema@v4-flash]',
                                 text: {format: labelFormat},
                               })
                               .withResponse();
  assert.equal(response.headers.get('x-backstop-served-by'), 'gpt');
  assert.equal(response.headers.get('x-backstop-fallback-reason'), 'schema');
  assert.equal(typeof JSON.parse(data.output_text).label, 'string');
});

test('stateful requests get a 400 that says why', options, async () => {
  const error = await rejection(
      client.responses.create({model: 'docs', input: 'hi', previous_response_id: 'resp_123'}));
  assert.equal(error.status, 400);
  assert.match(error.message, /previous_response_id/);
});
