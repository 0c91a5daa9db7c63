/**
 * Get events to their destination without ever slowing down or breaking the service.
 *
 * `emit(event)` appends to a bounded in-memory buffer and returns (no I/O, no encoding
 * on the caller's path). After `lingerMs`, or as soon as a full batch is waiting, the
 * buffer is packed into per-project batches (`packBatches`) and handed to a
 * `BatchSender` one batch at a time, in order. A batch that fails for a reason that may
 * pass (network error, 5xx, 429, broker away) is retried with exponential backoff and
 * jitter (honouring Retry-After), keeping its event ids, so a re-send is billed once. A
 * batch refused for good (4xx) is reported to `onError` and counted, never retried.
 *
 * While the destination is away, new events wait in the buffer; when it is full
 * (`maxBufferedEvents`), new events are dropped, counted in `stats().dropped` and
 * reported (`EventsDroppedError`) — memory stays bounded whatever the outage.
 */
import { DEFAULT_MAX_MESSAGE_BYTES, MAX_EVENTS_PER_MESSAGE, packBatches, type EventBatch } from './batching.js';
import { DeliveryRejectedError, EventsDroppedError, describeError } from './errors.js';
import type { UsageTrackingEvent } from './event.js';

/** Where tracked events go once built: a transport. */
export interface Transport {
  emit(event: UsageTrackingEvent): void;
  /** Resolves true once everything emitted so far is delivered (or refused), false on timeout. */
  flush(timeoutMs?: number): Promise<boolean>;
  /** Flush (within `timeoutMs`), then release connections and timers. */
  close(timeoutMs?: number): Promise<void>;
  stats(): TransportStats;
  /** Called by `configureUsageTracking` so delivery problems reach its `onError`. */
  bindErrorHandler?(handler: (error: unknown) => void): void;
}

export interface TransportStats {
  /** Acknowledged by the destination. */
  delivered: number;
  /** Refused for good (4xx), reported to onError. */
  rejected: number;
  /** Lost: the buffer was full. */
  dropped: number;
  /** Failed attempts that were retried. */
  retries: number;
  /** In memory right now, waiting or in flight. */
  queued: number;
  lastError: string | null;
}

/** A failure that may pass: the batch is sent again after a backoff. */
export class RetryableDeliveryError extends Error {
  override name = 'RetryableDeliveryError';
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** Sends one batch; throws `RetryableDeliveryError` or `DeliveryRejectedError`. */
export interface BatchSender {
  send(batch: EventBatch): Promise<void>;
  close?(): Promise<void>;
}

export interface DeliveryOptions {
  /** How long an event may wait for others to share its batch (default 200 ms). */
  lingerMs?: number;
  /** Events per message/request, at most 1,000 (default 1,000). */
  maxBatchEvents?: number;
  /** Bytes per message/request (default 900,000). */
  maxBatchBytes?: number;
  /** The buffer's bound; beyond it new events are dropped and counted (default 10,000). */
  maxBufferedEvents?: number;
  /** First retry delay, doubled per failure up to `retryMaxMs` (defaults 250 ms, 30 s). */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Receives delivery problems when tracking is not configured with an `onError`. */
  onError?: (error: unknown) => void;
}

const DEFAULTS = {
  lingerMs: 200,
  maxBatchEvents: MAX_EVENTS_PER_MESSAGE,
  maxBatchBytes: DEFAULT_MAX_MESSAGE_BYTES,
  maxBufferedEvents: 10_000,
  retryInitialMs: 250,
  retryMaxMs: 30_000,
};
/** Events packed per round: several messages' worth, so a backlog drains in few rounds. */
const EVENTS_PER_ROUND = 20 * MAX_EVENTS_PER_MESSAGE;
const DROP_REPORT_INTERVAL_MS = 10_000;

/** The delay before retry number `attempt` (1-based): exponential, capped, ±20% jitter. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(base * (0.8 + 0.4 * random()));
}

export class BatchingTransport implements Transport {
  private readonly options: typeof DEFAULTS;
  private buffer: UsageTrackingEvent[] = [];
  private inFlight = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private pumping: Promise<void> | undefined;
  private closing = false;
  private closeDeadline = Infinity;
  private wakeRetry: (() => void) | undefined;
  private onError: ((error: unknown) => void) | undefined;
  private counters = { delivered: 0, rejected: 0, dropped: 0, retries: 0 };
  private lastError: string | null = null;
  private unreportedDrops = 0;
  private lastDropReport = -Infinity;

  constructor(
    private readonly sender: BatchSender,
    options: DeliveryOptions = {},
  ) {
    this.options = {
      lingerMs: options.lingerMs ?? DEFAULTS.lingerMs,
      maxBatchEvents: Math.min(options.maxBatchEvents ?? DEFAULTS.maxBatchEvents, MAX_EVENTS_PER_MESSAGE),
      maxBatchBytes: options.maxBatchBytes ?? DEFAULTS.maxBatchBytes,
      maxBufferedEvents: options.maxBufferedEvents ?? DEFAULTS.maxBufferedEvents,
      retryInitialMs: options.retryInitialMs ?? DEFAULTS.retryInitialMs,
      retryMaxMs: options.retryMaxMs ?? DEFAULTS.retryMaxMs,
    };
    this.onError = options.onError;
  }

  bindErrorHandler(handler: (error: unknown) => void): void {
    this.onError ??= handler;
  }

  emit(event: UsageTrackingEvent): void {
    if (this.buffer.length >= this.options.maxBufferedEvents) {
      this.counters.dropped += 1;
      this.unreportedDrops += 1;
      this.reportDrops();
      return;
    }
    this.buffer.push(event);
    if (this.buffer.length >= this.options.maxBatchEvents) this.startPump();
    else if (this.timer === undefined && this.pumping === undefined) this.schedule(this.options.lingerMs);
  }

  async flush(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.buffer.length > 0 || this.inFlight > 0) {
      this.wakeRetry?.(); // a flush is a reason to try again now
      this.startPump();
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await Promise.race([this.pumping, sleep(Math.min(left, 50))]);
    }
    return true;
  }

  async close(timeoutMs = 5_000): Promise<void> {
    this.closeDeadline = Date.now() + timeoutMs;
    const flushed = await this.flush(timeoutMs);
    this.closing = true;
    this.wakeRetry?.();
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (!flushed) {
      const lost = this.buffer.length + this.inFlight;
      this.report(new EventsDroppedError(lost));
      this.counters.dropped += lost;
    }
    this.buffer = [];
    try {
      await this.sender.close?.();
    } catch (error) {
      this.report(error);
    }
  }

  stats(): TransportStats {
    return { ...this.counters, queued: this.buffer.length + this.inFlight, lastError: this.lastError };
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.startPump();
    }, delayMs);
    unref(this.timer);
  }

  private startPump(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pumping !== undefined || this.closing) return;
    this.pumping = this.pump().finally(() => {
      this.pumping = undefined;
      if (this.buffer.length > 0 && !this.closing) this.schedule(this.options.lingerMs);
    });
  }

  private async pump(): Promise<void> {
    while (this.buffer.length > 0 && !this.closing) {
      const round = this.buffer.splice(0, EVENTS_PER_ROUND);
      this.inFlight = round.length;
      try {
        for (const batch of packBatches(round, this.options.maxBatchEvents, this.options.maxBatchBytes)) {
          const delivered = await this.deliver(batch);
          this.inFlight -= batch.eventIds.length;
          if (!delivered) {
            // Closing before the destination came back: keep the rest for `close` to count.
            this.buffer.unshift(...round.slice(round.length - this.inFlight));
            return;
          }
        }
      } catch (error) {
        // A bug of ours (e.g. an event that cannot be encoded): report, never throw into the app.
        this.counters.rejected += this.inFlight;
        this.report(error);
      } finally {
        this.inFlight = 0;
      }
    }
  }

  /** Send one batch until it is acknowledged or refused; false if closing cut it short. */
  private async deliver(batch: EventBatch): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.sender.send(batch);
        this.counters.delivered += batch.eventIds.length;
        return true;
      } catch (error) {
        if (error instanceof DeliveryRejectedError) {
          this.counters.rejected += batch.eventIds.length;
          this.report(error);
          return true;
        }
        this.counters.retries += 1;
        this.lastError = describeError(error);
        const retryAfter = error instanceof RetryableDeliveryError ? error.retryAfterMs : undefined;
        const delay = Math.max(backoffDelay(attempt, this.options.retryInitialMs, this.options.retryMaxMs), retryAfter ?? 0);
        if (this.closing || Date.now() + delay > this.closeDeadline) return false;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          unref(timer);
          this.wakeRetry = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wakeRetry = undefined;
      }
    }
  }

  private reportDrops(): void {
    const now = Date.now();
    if (now - this.lastDropReport < DROP_REPORT_INTERVAL_MS) return;
    this.lastDropReport = now;
    const dropped = this.unreportedDrops;
    this.unreportedDrops = 0;
    this.report(new EventsDroppedError(dropped));
  }

  private report(error: unknown): void {
    this.lastError = describeError(error);
    try {
      if (this.onError) this.onError(error);
      else console.error('[usage-tracking]', describeError(error));
    } catch {
      // The error handler's own failure must not break delivery either.
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => unref(setTimeout(resolve, ms)));
}

/** Timers of ours never keep a Node process alive (flush-on-exit covers delivery). */
function unref(timer: unknown): void {
  (timer as { unref?: () => void }).unref?.();
}
