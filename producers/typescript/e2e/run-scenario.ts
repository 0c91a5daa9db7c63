/**
 * The end-to-end scenario (driven by tests/integration/typescript/test_typescript_producer.py):
 * AI SDK calls against the `ai/test` mock language model, tracked by the middleware and
 * sent through the configured transport. Reads a JSON spec (argv[2]) saying which calls
 * to make with which usage; writes every event it emitted as JSON lines (argv[3]), so the
 * test can compare them with what it expects from the spec alone.
 *
 * Exits non-zero if delivery did not complete, was refused, or an onError fired.
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';

import { generateText, stepCountIs, streamText, tool, wrapLanguageModel } from 'ai';
import { MockLanguageModelV3, simulateReadableStream } from 'ai/test';
import { z } from 'zod';

import {
  configureUsageTracking,
  flushUsageTracking,
  trackAIOperation,
  trackTools,
  usageContext,
  usageTrackingMiddleware,
  usageTrackingStats,
  type Transport,
} from '@llm-usage-pipeline/producer';
import { kafkaTransport } from '@llm-usage-pipeline/producer/kafka';

interface V3Usage {
  inputTokens: { total: number; noCache: number; cacheRead: number; cacheWrite: number };
  outputTokens: { total: number; text: number; reasoning: number };
}

interface Call {
  kind: 'generate' | 'stream' | 'aborted_stream' | 'tool_loop';
  agent: string;
  session?: string;
  handoff_from?: string;
  provider: string;
  model: string;
  usage?: V3Usage;
  steps?: V3Usage[];
}

interface Spec {
  project: string;
  source: string;
  http?: { url: string; apiKey?: string };
  kafka?: { bootstrapServers: string; topic: string };
  calls: Call[];
}

const [specPath, eventsPath] = process.argv.slice(2);
const spec = JSON.parse(readFileSync(specPath!, 'utf8')) as Spec;
writeFileSync(eventsPath!, '');
const errors: string[] = [];

const transport: Transport | undefined = spec.kafka
  ? kafkaTransport({ bootstrapServers: spec.kafka.bootstrapServers, topic: spec.kafka.topic, lingerMs: 20 })
  : undefined;
configureUsageTracking({
  source: spec.source,
  ...(spec.http ? { http: { ...spec.http, lingerMs: 20 } } : { transport: transport! }),
  onUsage: (event) => appendFileSync(eventsPath!, `${JSON.stringify(event)}\n`),
  onError: (error) => errors.push(error.message),
});

const STOP = { unified: 'stop' as const, raw: 'stop' };
const TOOL_CALLS = { unified: 'tool-calls' as const, raw: 'tool_use' };

function mock(call: Call, overrides: ConstructorParameters<typeof MockLanguageModelV3>[0]) {
  const model = new MockLanguageModelV3({ provider: call.provider, modelId: call.model, ...overrides });
  return wrapLanguageModel({ model, middleware: usageTrackingMiddleware() });
}

function streamParts(usage: V3Usage, words: number) {
  return [
    { type: 'stream-start' as const, warnings: [] },
    { type: 'response-metadata' as const, id: 'resp-1', modelId: undefined },
    { type: 'text-start' as const, id: 't' },
    ...Array.from({ length: words }, (_, i) => ({ type: 'text-delta' as const, id: 't', delta: `word${i} ` })),
    { type: 'text-end' as const, id: 't' },
    { type: 'finish' as const, finishReason: STOP, usage },
  ];
}

async function run(call: Call): Promise<void> {
  switch (call.kind) {
    case 'generate': {
      const model = mock(call, { doGenerate: { content: [{ type: 'text', text: 'ok' }], finishReason: STOP, usage: call.usage!, warnings: [] } });
      await generateText({ model, prompt: 'Where is my order?' });
      return;
    }
    case 'stream': {
      const model = mock(call, { doStream: async () => ({ stream: simulateReadableStream({ chunks: streamParts(call.usage!, 8) }) }) });
      const result = streamText({ model, prompt: 'Summarise' });
      await result.consumeStream();
      return;
    }
    case 'aborted_stream': {
      const model = mock(call, {
        doStream: async () => ({ stream: simulateReadableStream({ chunks: streamParts(call.usage!, 40), chunkDelayInMs: 10 }) }),
      });
      const controller = new AbortController();
      const result = streamText({ model, prompt: 'Write a long answer', abortSignal: controller.signal });
      let seen = 0;
      try {
        for await (const _ of result.textStream) if (++seen === 3) controller.abort();
      } catch {
        // the abort surfaces here on some versions; either way the call is over
      }
      return;
    }
    case 'tool_loop': {
      let step = 0;
      const steps = call.steps!;
      const model = mock(call, {
        doGenerate: async () => {
          const usage = steps[step]!;
          const last = step === steps.length - 1;
          step += 1;
          return last
            ? { content: [{ type: 'text', text: 'Shipped.' }], finishReason: STOP, usage, warnings: [] }
            : { content: [{ type: 'tool-call', toolCallId: `call-${step}`, toolName: 'lookupOrder', input: '{"id":7}' }], finishReason: TOOL_CALLS, usage, warnings: [] };
        },
      });
      const tools = trackTools({
        lookupOrder: tool({
          description: 'Find an order',
          inputSchema: z.object({ id: z.number() }),
          execute: async ({ id }) => ({ id, status: 'shipped' }),
        }),
      });
      await trackAIOperation('resolve_order', spec.project, () =>
        generateText({ model, tools, stopWhen: stepCountIs(steps.length + 1), prompt: 'Where is order 7?' }),
      );
      return;
    }
  }
}

for (const call of spec.calls) {
  const inner = () => usageContext({ agentName: call.agent, ...(call.session ? { sessionId: call.session } : {}) }, () => run(call));
  await usageContext({ projectId: spec.project, ...(call.handoff_from ? { agentName: call.handoff_from } : {}) }, inner);
}

const delivered = await flushUsageTracking(60_000);
const stats = usageTrackingStats();
console.log(JSON.stringify({ delivered, stats, errors }));
await transport?.close();
process.exit(delivered && errors.length === 0 && stats.rejected === 0 && stats.dropped === 0 ? 0 : 1);
