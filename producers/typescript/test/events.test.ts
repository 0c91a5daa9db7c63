/** Unit tests: events built from AI SDK calls (mock model) are valid against the shipped JSON Schema. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { generateText, streamText, wrapLanguageModel } from 'ai';
import { MockLanguageModelV3, simulateReadableStream } from 'ai/test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

import {
  buildEvent,
  configureUsageTracking,
  getUsageTrackingConfig,
  mapUsage,
  packBatches,
  providerId,
  resetUsageTracking,
  startCall,
  usageContext,
  usageTrackingMiddleware,
  uuidv7,
  type UsageTrackingEvent,
} from '@llm-usage-pipeline/producer';

const schemaPath = new URL('../../../../schemas/usage_tracking_event.v1.schema.json', import.meta.url);
const ajv = new Ajv2020({ allErrors: true, strict: false });
(addFormatsModule as unknown as (a: Ajv2020) => void)(ajv);
const validate = ajv.compile(JSON.parse(readFileSync(schemaPath, 'utf8')));

function assertValid(event: UsageTrackingEvent): void {
  assert.ok(validate(event), JSON.stringify(validate.errors));
}

const STOP = { unified: 'stop' as const, raw: 'stop' };
const usageV3 = (input: number, output: number, cacheRead = 0, cacheWrite = 0, reasoning = 0) => ({
  inputTokens: { total: input, noCache: input - cacheRead - cacheWrite, cacheRead, cacheWrite },
  outputTokens: { total: output, text: output - reasoning, reasoning },
});

async function collect(run: () => Promise<void>): Promise<UsageTrackingEvent[]> {
  const events: UsageTrackingEvent[] = [];
  configureUsageTracking({ source: 'unit', onUsage: (event) => void events.push(event), flushOnExit: false });
  try {
    await run();
    await new Promise((resolve) => setTimeout(resolve, 20));
  } finally {
    await resetUsageTracking();
  }
  return events;
}

test('generate and stream calls become schema-valid events with mapped usage and attribution', async () => {
  const model = wrapLanguageModel({
    model: new MockLanguageModelV3({
      provider: 'anthropic.messages',
      modelId: 'claude-haiku-4-5',
      doGenerate: { content: [{ type: 'text', text: 'hi' }], finishReason: STOP, usage: usageV3(4512, 320, 3000, 1500), warnings: [] },
      doStream: async () => ({
        stream: simulateReadableStream({
          chunks: [
            { type: 'text-start', id: 't' },
            { type: 'text-delta', id: 't', delta: 'hi' },
            { type: 'text-end', id: 't' },
            { type: 'finish', finishReason: STOP, usage: usageV3(30, 5, 16, 0, 2) },
          ],
        }),
      }),
    }),
    middleware: usageTrackingMiddleware(),
  });
  const events = await collect(() =>
    usageContext({ projectId: 'acme', agentName: 'triage', sessionId: 's1', region: 'eu' }, async () => {
      await generateText({ model, prompt: 'x' });
      await usageContext({ agentName: 'billing' }, async () => {
        await streamText({ model, prompt: 'y' }).consumeStream();
      });
    }),
  );
  assert.equal(events.length, 2);
  events.forEach(assertValid);
  const [generated, streamed] = events as [UsageTrackingEvent, UsageTrackingEvent];
  assert.deepEqual(generated.usage, { input_tokens: 4512, output_tokens: 320, cache_read_tokens: 3000, cache_write_tokens: 1500, reasoning_tokens: 0 });
  assert.deepEqual([generated.provider, generated.model, generated.method, generated.finish_reason], ['anthropic', 'claude-haiku-4-5', 'generate', 'stop']);
  assert.deepEqual(generated.context, { region: 'eu' });
  assert.deepEqual(streamed.handoff_chain, ['triage', 'billing']);
  assert.deepEqual([streamed.method, streamed.usage.reasoning_tokens, streamed.session_id], ['stream', 2, 's1']);
});

test('a failed call is still an event, with its error, and the error reaches the caller unchanged', async () => {
  const boom = new Error('rate limited');
  const model = wrapLanguageModel({
    model: new MockLanguageModelV3({ provider: 'openai.chat', modelId: 'gpt-4o', doGenerate: async () => { throw boom; } }),
    middleware: usageTrackingMiddleware({ projectId: 'acme' }),
  });
  const events = await collect(async () => {
    await assert.rejects(generateText({ model, prompt: 'x', maxRetries: 0 }), /rate limited/);
  });
  assert.equal(events.length, 1);
  assertValid(events[0]!);
  assert.match(events[0]!.error!, /rate limited/);
  assert.equal(events[0]!.usage.input_tokens, 0);
});

test('AI SDK 5 (v2) and 6 (v3, LanguageModelUsage) usage shapes map to the same wire usage', () => {
  const wire = { input_tokens: 4512, output_tokens: 320, cache_read_tokens: 3000, cache_write_tokens: 1500, reasoning_tokens: 0 };
  assert.deepEqual(mapUsage(usageV3(4512, 320, 3000, 1500))?.usage, wire);
  assert.deepEqual(
    mapUsage({
      inputTokens: 4512,
      inputTokenDetails: { noCacheTokens: 12, cacheReadTokens: 3000, cacheWriteTokens: 1500 },
      outputTokens: 320,
      outputTokenDetails: { textTokens: 320, reasoningTokens: 0 },
      totalTokens: 4832,
    })?.usage,
    wire,
  );
  // AI SDK 5's Anthropic provider reports inputTokens without cache reads and writes.
  assert.deepEqual(
    mapUsage({ inputTokens: 12, outputTokens: 320, totalTokens: 332, cachedInputTokens: 3000 }, 'anthropic.messages', {
      anthropic: { cacheCreationInputTokens: 1500 },
    })?.usage,
    wire,
  );
  assert.deepEqual(mapUsage({ inputTokens: 100, outputTokens: 50, totalTokens: 150, reasoningTokens: 20, cachedInputTokens: 64 }, 'openai.chat')?.usage, {
    input_tokens: 100, output_tokens: 50, cache_read_tokens: 64, cache_write_tokens: 0, reasoning_tokens: 20,
  });
  assert.equal(mapUsage({ inputTokens: undefined, outputTokens: undefined, totalTokens: undefined }), undefined);
  const adjusted = mapUsage(usageV3(10, 5, 0, 0, 0));
  assert.equal(adjusted?.adjusted, undefined);
  assert.match(mapUsage({ inputTokens: 10, outputTokens: 1, cachedInputTokens: 20 })!.adjusted!, /raised/);
});

test('provider ids follow the price catalog', () => {
  assert.deepEqual(
    ['openai.chat', 'anthropic.messages', 'google.generative-ai', 'google.vertex.anthropic.messages', 'xai.chat', 'amazon-bedrock', 'mistral.chat'].map(providerId),
    ['openai', 'anthropic', 'google', 'anthropic', 'x-ai', 'aws', 'mistral'],
  );
});

test('events are bounded to the schema whatever the caller passes', () => {
  const record = startCall('generate', {
    projectId: 'p'.repeat(400),
    agentName: 'a',
    handoffChain: Array.from({ length: 70 }, (_, i) => `agent-${i}`),
    extra: { blob: 'x'.repeat(20_000) },
  });
  record.error = 'e'.repeat(5000);
  record.toolCalls = Array.from({ length: 130 }, () => ({ name: 'search' }));
  const event = buildEvent(record, { source: 'unit' });
  assertValid(event);
  assert.equal(event.project_id.length, 256);
  assert.match(String(event.context['dropped']), /bytes of JSON/);
  assert.equal(event.provider_metadata['tool_calls_total'], 130);
  assert.match(event.error!, /^usage not reported|^e+$/);
});

test('uuidv7 ids are version 7 and strictly increasing, also within one millisecond', () => {
  const ids = Array.from({ length: 5000 }, () => uuidv7(1_700_000_000_000));
  assert.ok(ids.every((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id)));
  assert.deepEqual([...ids].sort(), ids);
  assert.equal(new Set(ids).size, ids.length);
});

test('batches hold one project each, at most 1000 events and maxBytes, in order', () => {
  const event = (project: string, i: number) => buildEvent(Object.assign(startCall('generate', { projectId: project, handoffChain: [], extra: {} }), { usage: { input_tokens: i, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0 } }), { source: 'u' });
  const events = [...Array.from({ length: 2500 }, (_, i) => event('a', i)), event('b', 0), event('a', 2500)];
  const batches = packBatches(events);
  assert.deepEqual(batches.map((b) => [b.projectId, b.eventIds.length]), [['a', 1000], ['a', 1000], ['a', 501], ['b', 1]]);
  const parsed = batches.flatMap((b) => JSON.parse(b.payload) as UsageTrackingEvent[]).filter((e) => e.project_id === 'a');
  assert.deepEqual(parsed.map((e) => e.usage.input_tokens), Array.from({ length: 2501 }, (_, i) => i));
  assert.ok(packBatches(events, 1000, 20_000).every((b) => b.bytes <= 20_000 && Buffer.byteLength(b.payload) === b.bytes));
});

test('configureUsageTracking takes a bare handler; reset turns it off', async () => {
  const handler = () => undefined;
  configureUsageTracking(handler);
  assert.equal(getUsageTrackingConfig()?.onUsage, handler);
  await resetUsageTracking();
  assert.equal(getUsageTrackingConfig(), null);
});
