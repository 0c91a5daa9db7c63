/**
 * HTTP to `usage-pipeline ingest-http` (`POST /v1/events`) with an API key (SPEC.md §5):
 * `fetch` only, so it runs in Node 18+, browsers, and edge runtimes alike.
 *
 * ingest answers 202 only once Kafka has the events; 5xx, 429, timeouts and network
 * errors are retried (same event ids, billed once); 400/401/403/413/422 are refused for
 * good and reported with the server's reason. The API key is sent only in the
 * Authorization header and never appears in an error message.
 */
import type { EventBatch } from './batching.js';
import { BatchingTransport, RetryableDeliveryError, type BatchSender, type DeliveryOptions } from './delivery.js';
import { DeliveryRejectedError, TrackingConfigError } from './errors.js';

export interface HttpTransportOptions extends DeliveryOptions {
  /** The ingest server, e.g. `https://usage.example.com` (`/v1/events` is added) or the full endpoint URL. */
  url: string;
  /** The key from `usage-pipeline keys create --project P`; sent as `Authorization: Bearer <key>`. */
  apiKey?: string | undefined;
  /** Per request (default 10 s); a timeout is retried. */
  requestTimeoutMs?: number;
  /** Extra headers for a proxy in front of ingest. */
  headers?: Record<string, string>;
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
}

/** A transport that POSTs per-project batches to ingest-http. */
export function httpTransport(options: HttpTransportOptions): BatchingTransport {
  return new BatchingTransport(new HttpSender(options), options);
}

/** `url` as the events endpoint: a bare origin or `/` gets `/v1/events`. */
export function eventsEndpoint(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TrackingConfigError(`http.url ${JSON.stringify(url)} is not a URL: use e.g. http://127.0.0.1:8088`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new TrackingConfigError(`http.url must be http:// or https://, got ${parsed.protocol}`);
  }
  if (parsed.pathname === '' || parsed.pathname === '/') parsed.pathname = '/v1/events';
  return parsed.toString();
}

const MAX_REASON_CHARS = 500;
// Browsers send keepalive requests after the page is gone, up to 64 KiB in total.
const KEEPALIVE_MAX_BYTES = 60_000;

class HttpSender implements BatchSender {
  private readonly endpoint: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(options: HttpTransportOptions) {
    this.endpoint = eventsEndpoint(options.url);
    this.headers = { 'content-type': 'application/json', ...options.headers };
    if (options.apiKey !== undefined) {
      if (!options.apiKey.trim()) throw new TrackingConfigError('http.apiKey is empty: pass the key `usage-pipeline keys create` printed');
      this.headers['authorization'] = `Bearer ${options.apiKey.trim()}`;
    }
    this.timeoutMs = options.requestTimeoutMs ?? 10_000;
    const fetchImpl = options.fetch ?? globalThis.fetch;
    if (typeof fetchImpl !== 'function') throw new TrackingConfigError('no fetch in this runtime: pass http.fetch');
    this.fetchImpl = fetchImpl;
  }

  async send(batch: EventBatch): Promise<void> {
    let response: Response;
    try {
      response = await this.fetchImpl(this.endpoint, {
        method: 'POST',
        headers: this.headers,
        body: batch.payload,
        signal: AbortSignal.timeout(this.timeoutMs),
        keepalive: batch.bytes <= KEEPALIVE_MAX_BYTES,
      });
    } catch (error) {
      throw new RetryableDeliveryError(`POST ${this.endpoint} failed: ${(error as Error)?.message ?? String(error)}`);
    }
    if (response.status >= 200 && response.status < 300) {
      await response.body?.cancel().catch(() => undefined);
      return;
    }
    const reason = await responseReason(response);
    if (response.status === 429 || response.status === 408 || response.status >= 500) {
      throw new RetryableDeliveryError(`POST ${this.endpoint}: ${response.status} ${reason}`, retryAfterMs(response));
    }
    const hint = response.status === 401 ? ' (check the API key: usage-pipeline keys list)' : '';
    throw new DeliveryRejectedError(
      `ingest refused ${batch.eventIds.length} events of project ${batch.projectId}: ${response.status} ${reason}${hint}`,
      response.status,
      batch.eventIds,
    );
  }
}

async function responseReason(response: Response): Promise<string> {
  try {
    return (await response.text()).slice(0, MAX_REASON_CHARS);
  } catch {
    return response.statusText;
  }
}

function retryAfterMs(response: Response): number | undefined {
  const value = response.headers.get('retry-after');
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(seconds, 0) * 1000;
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(date - Date.now(), 0) : undefined;
}
