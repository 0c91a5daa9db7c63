/** Unit tests of delivery: a real local HTTP server stands in for ingest-http's protocol. */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';

import {
  BatchingTransport,
  EventsDroppedError,
  backoffDelay,
  buildEvent,
  configureUsageTracking,
  emitUsageEvent,
  httpTransport,
  resetUsageTracking,
  startCall,
  type BatchSender,
  type EventBatch,
} from '@llm-usage-pipeline/producer';

const event = (project = 'acme') => buildEvent(startCall('generate', { projectId: project, handoffChain: [], extra: {} }), { source: 'unit' });

async function withServer(answer: (request: IncomingMessage, body: string, response: ServerResponse) => void, run: (url: string) => Promise<void>) {
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => answer(request, body, response));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

test('http: bearer key, per-project batches, 503 retried with the same ids, then delivered', async () => {
  const seen: { auth: string | undefined; ids: string[] }[] = [];
  let calls = 0;
  await withServer(
    (request, body, response) => {
      seen.push({ auth: request.headers.authorization, ids: (JSON.parse(body) as { event_id: string }[]).map((e) => e.event_id) });
      calls += 1;
      response.writeHead(calls === 1 ? 503 : 202, { 'content-type': 'application/json' }).end('{}');
    },
    async (url) => {
      const transport = httpTransport({ url, apiKey: 'upk_secret', lingerMs: 5, retryInitialMs: 10 });
      const sent = [event('a'), event('a'), event('b')];
      sent.forEach((e) => transport.emit(e));
      assert.equal(await transport.flush(5_000), true);
      await transport.close();
      assert.deepEqual(transport.stats().delivered, 3);
      assert.equal(transport.stats().retries, 1);
      assert.ok(seen.every((s) => s.auth === 'Bearer upk_secret'));
      assert.deepEqual(seen[0]!.ids, seen[1]!.ids); // the retry re-sends the same events
      assert.deepEqual(seen.slice(1).map((s) => s.ids), [[sent[0]!.event_id, sent[1]!.event_id], [sent[2]!.event_id]]);
    },
  );
});

test('http: a 403 is refused for good, reported with the reason and never the key', async () => {
  const errors: Error[] = [];
  await withServer(
    (_request, _body, response) => response.writeHead(403, { 'content-type': 'application/json' }).end('{"error":"key may not write project acme"}'),
    async (url) => {
      const transport = httpTransport({ url, apiKey: 'upk_secret', lingerMs: 1, onError: (e) => void errors.push(e as Error) });
      transport.emit(event());
      assert.equal(await transport.flush(5_000), true);
      await transport.close();
      assert.deepEqual([transport.stats().rejected, transport.stats().retries], [1, 0]);
    },
  );
  assert.match(errors[0]!.message, /403 .*may not write project acme/);
  assert.ok(!errors[0]!.message.includes('upk_secret'));
});

test('the buffer is bounded: beyond it events are dropped, counted and reported', async () => {
  const errors: unknown[] = [];
  const never: BatchSender = { send: () => new Promise<void>(() => undefined) };
  const transport = new BatchingTransport(never, { maxBufferedEvents: 5, lingerMs: 60_000, onError: (e) => errors.push(e) });
  for (let i = 0; i < 8; i++) transport.emit(event());
  assert.deepEqual([transport.stats().queued, transport.stats().dropped], [5, 3]);
  assert.ok(errors[0] instanceof EventsDroppedError);
});

test('backoff doubles from the initial delay up to the cap, with jitter within ±20%', () => {
  const mid = () => 0.5;
  assert.deepEqual([1, 2, 3, 4, 10].map((n) => backoffDelay(n, 100, 1000, mid)), [100, 200, 400, 800, 1000]);
  assert.equal(backoffDelay(1, 100, 1000, () => 0), 80);
  assert.equal(backoffDelay(1, 100, 1000, () => 1), 120);
});

test('a failing handler never breaks delivery: onError gets it, the transport still gets the event', async () => {
  const sent: EventBatch[] = [];
  const transport = new BatchingTransport({ send: async (batch) => void sent.push(batch) }, { lingerMs: 1 });
  const failures: string[] = [];
  configureUsageTracking({
    transport,
    flushOnExit: false,
    onUsage: async () => {
      throw new Error('handler down');
    },
    onError: (error) => failures.push(error.message),
  });
  emitUsageEvent(event());
  await resetUsageTracking();
  assert.deepEqual(failures, ['handler down']);
  assert.equal(sent.length, 1);
});
