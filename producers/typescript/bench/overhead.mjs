// Per-call overhead of tracking: generateText on the ai/test mock model, wrapped with
// usageTrackingMiddleware (events go to a BatchingTransport whose sender discards them)
// vs. the same model unwrapped. Prints p50/p99 of each and of the difference.
// Run: npm run bench   (figures only; no assertion — see the README for measured numbers)
import { generateText, wrapLanguageModel } from 'ai';
import { MockLanguageModelV3 } from 'ai/test';
import { BatchingTransport, configureUsageTracking, usageContext, usageTrackingMiddleware, resetUsageTracking } from '@llm-usage-pipeline/producer';

const N = Number(process.env.BENCH_CALLS ?? 20000);
const usage = { inputTokens: { total: 100, noCache: 36, cacheRead: 64, cacheWrite: 0 }, outputTokens: { total: 20, text: 15, reasoning: 5 } };
const base = new MockLanguageModelV3({ provider: 'openai.chat', modelId: 'gpt-4o-mini', doGenerate: async () => ({ content: [{ type: 'text', text: 'ok' }], finishReason: { unified: 'stop', raw: 'stop' }, usage, warnings: [] }) });
const tracked = wrapLanguageModel({ model: base, middleware: usageTrackingMiddleware() });
configureUsageTracking({ source: 'bench', flushOnExit: false, transport: new BatchingTransport({ send: async () => undefined }, { lingerMs: 50 }) });

async function timeCalls(model) {
  const samples = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    await generateText({ model, prompt: 'hi' });
    samples[i] = (performance.now() - t0) * 1000;
  }
  return samples.sort();
}
const pct = (s, p) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];

await usageContext({ projectId: 'bench', agentName: 'bench' }, async () => {
  await timeCalls(base); await timeCalls(tracked); // warm-up
  const plain = await timeCalls(base);
  const withTracking = await timeCalls(tracked);
  const row = (name, s) => console.log(`${name.padEnd(22)} p50 ${pct(s, 50).toFixed(1).padStart(7)} µs   p99 ${pct(s, 99).toFixed(1).padStart(7)} µs`);
  console.log(`generateText on the mock model, ${N} calls each (Node ${process.versions.node})`);
  row('untracked', plain);
  row('tracked (middleware)', withTracking);
  console.log(`overhead per call       p50 ${(pct(withTracking, 50) - pct(plain, 50)).toFixed(1)} µs   p99 ${(pct(withTracking, 99) - pct(plain, 99)).toFixed(1)} µs`);
});
await resetUsageTracking();
