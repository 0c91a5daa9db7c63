/**
 * Global usage tracking (seeds 003/004): configure once at start-up, track everywhere.
 *
 *     configureUsageTracking((event) => console.log(event));      // a bare function is onUsage
 *     configureUsageTracking({ source: 'dashboard', http: { url, apiKey }, onError });
 *
 * Every tracked LLM call becomes one wire event; it goes to the `onUsage` handler, then
 * to the transport. Neither can throw into the caller: a failing handler's error (sync or
 * async) goes to `onError(error, event)`, or to the console.
 */
import { TrackingConfigError, describeError } from './errors.js';
import { buildEvent, type CallRecord, type TrackingDefaults, type UsageTrackingEvent } from './event.js';
import type { Transport, TransportStats } from './delivery.js';
import { httpTransport, type HttpTransportOptions } from './http-transport.js';

export type UsageTrackingHandler = (event: UsageTrackingEvent) => void | Promise<void>;
export type UsageTrackingErrorHandler = (error: Error, event: UsageTrackingEvent | null) => void;

export interface UsageTrackingConfig {
  onUsage?: UsageTrackingHandler;
  onError?: UsageTrackingErrorHandler;
  /** Send to ingest-http: `{ url, apiKey }` (browsers, edge, Node). */
  http?: HttpTransportOptions;
  /** Or any transport, e.g. `kafkaTransport(...)` from `@llm-usage-pipeline/producer/kafka`. */
  transport?: Transport | null;
  /** The events' `source`: the emitting service. */
  source?: string;
  /** Used for calls made outside any `usageContext` that sets them. */
  projectId?: string;
  agentName?: string;
  /** Kill switch: publish nothing (handlers still run). */
  disabled?: boolean;
  /** Deliver what is buffered when the process exits or the page is hidden (default true). */
  flushOnExit?: boolean;
}

interface Active {
  config: UsageTrackingConfig;
  defaults: TrackingDefaults;
  transport: Transport | null;
}

/** Streams still open: reported as aborted if the process exits before they end. */
export interface OpenCall {
  abandonAtExit(): void;
}

let active: Active | null = null;
const warned = new Set<string>();
const openCalls = new Set<OpenCall>();
const pendingHandlers = new Set<Promise<unknown>>();
const beforeFlushHooks: (() => void)[] = [];

/** Turn tracking on for the whole process, replacing any earlier configuration. */
export function configureUsageTracking(handlerOrConfig: UsageTrackingHandler | UsageTrackingConfig): UsageTrackingConfig {
  const config: UsageTrackingConfig =
    typeof handlerOrConfig === 'function' ? { onUsage: handlerOrConfig } : { ...handlerOrConfig };
  if (typeof config !== 'object' || config === null) {
    throw new TrackingConfigError('configureUsageTracking takes a handler function or a config object');
  }
  if (config.http && config.transport) {
    throw new TrackingConfigError('pass either http: {...} or transport: ..., not both');
  }
  let transport: Transport | null = config.disabled ? null : (config.transport ?? (config.http ? httpTransport(config.http) : null));
  transport?.bindErrorHandler?.((error) => reportError(error, null, 'delivering usage events failed'));
  const previous = active;
  active = {
    config,
    defaults: { source: config.source ?? defaultSource(), projectId: config.projectId, agentName: config.agentName },
    transport,
  };
  warned.clear();
  if (config.flushOnExit !== false) installExitHooks();
  if (previous?.transport && previous.transport !== transport) void previous.transport.close();
  return config;
}

/** Turn tracking off: flush and close the transport (waiting at most `timeoutMs`). */
export async function resetUsageTracking(timeoutMs = 5_000): Promise<void> {
  const previous = active;
  active = null;
  await Promise.race([Promise.allSettled([...pendingHandlers]), delay(timeoutMs)]);
  if (previous?.transport) await previous.transport.close(timeoutMs);
}

/** The configuration in force, or null when tracking is off. */
export function getUsageTrackingConfig(): UsageTrackingConfig | null {
  return active?.config ?? null;
}

/** Wait until every event so far reached its destination (and async handlers ran); false on timeout. */
export async function flushUsageTracking(timeoutMs = 10_000): Promise<boolean> {
  for (const hook of beforeFlushHooks) hook();
  const deadline = Date.now() + timeoutMs;
  await Promise.race([Promise.allSettled([...pendingHandlers]), delay(timeoutMs)]);
  const transport = active?.transport;
  return transport ? transport.flush(Math.max(deadline - Date.now(), 0)) : true;
}

/** Counters of the active transport (all zero when there is none). */
export function usageTrackingStats(): TransportStats {
  return active?.transport?.stats() ?? { delivered: 0, rejected: 0, dropped: 0, retries: 0, queued: 0, lastError: null };
}

/** Build the event of a finished call and hand it on; never throws. */
export function reportCall(record: CallRecord): UsageTrackingEvent | null {
  const tracking = active;
  let event: UsageTrackingEvent;
  try {
    event = buildEvent(record, tracking?.defaults ?? { source: defaultSource() });
  } catch (error) {
    reportError(error, null, 'building the usage event failed');
    return null;
  }
  dispatch(event);
  return event;
}

/** Publish a ready-made wire event like a tracked call's (e.g. from a non-AI-SDK client). */
export function emitUsageEvent(event: UsageTrackingEvent): void {
  dispatch(event);
}

function dispatch(event: UsageTrackingEvent): void {
  const tracking = active;
  if (tracking === null) {
    warnOnce('unconfigured', 'an LLM call was tracked but usage tracking is not configured: call configureUsageTracking() at start-up');
    return;
  }
  if (event.project_id === 'unattributed') {
    warnOnce('unattributed', 'usage events have no project_id: pass projectId to configureUsageTracking() or usageContext()');
  }
  callHandler(tracking, event);
  try {
    tracking.transport?.emit(event);
  } catch (error) {
    reportError(error, event, 'publishing the usage event failed');
  }
}

function callHandler(tracking: Active, event: UsageTrackingEvent): void {
  const handler = tracking.config.onUsage;
  if (!handler) return;
  try {
    const outcome = handler(event);
    if (outcome && typeof (outcome as Promise<void>).then === 'function') {
      // Not awaited: a slow handler must not delay the LLM call. flush() waits for it.
      const pending = Promise.resolve(outcome).catch((error: unknown) =>
        reportError(error, event, 'the async onUsage handler failed', tracking.config),
      );
      pendingHandlers.add(pending);
      void pending.finally(() => pendingHandlers.delete(pending));
    }
  } catch (error) {
    reportError(error, event, 'the onUsage handler failed', tracking.config);
  }
}

/** Route an error of ours or of a handler to onError, or the console; never throws. */
export function reportError(
  error: unknown,
  event: UsageTrackingEvent | null,
  what: string,
  config: UsageTrackingConfig | undefined = active?.config,
): void {
  const asError = error instanceof Error ? error : new Error(String(error));
  const onError = config?.onError;
  if (onError) {
    try {
      onError(asError, event);
      return;
    } catch (handlerError) {
      console.error(`[usage-tracking] the onError handler failed while handling: ${what}`, describeError(handlerError));
    }
  }
  console.error(`[usage-tracking] ${what}${event ? ` (event ${event.event_id})` : ''}: ${describeError(asError)}`);
}

export function trackOpenCall(call: OpenCall): void {
  openCalls.add(call);
}

export function forgetOpenCall(call: OpenCall): void {
  openCalls.delete(call);
}

/** Something that holds events back (tool durations) and must release them before a flush. */
export function onBeforeFlush(hook: () => void): void {
  beforeFlushHooks.push(hook);
}

function warnOnce(key: string, message: string): void {
  if (warned.has(key)) return;
  warned.add(key);
  console.warn(`[usage-tracking] ${message}`);
}

function defaultSource(): string {
  const proc = (globalThis as { process?: { argv?: string[] } }).process;
  const script = proc?.argv?.[1];
  if (script) return script.split(/[\\/]/).pop()!.replace(/\.(m|c)?[jt]s$/, '') || 'typescript-service';
  return 'typescript-service';
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    (timer as { unref?: () => void }).unref?.();
  });
}

// Exit: report streams still open as aborted, then deliver what is buffered.
let exitHooksInstalled = false;
let exitFlushStarted = false;
const EXIT_FLUSH_MS = 5_000;

async function flushAtExit(): Promise<void> {
  for (const call of [...openCalls]) {
    try {
      call.abandonAtExit();
    } catch (error) {
      reportError(error, null, 'reporting an unfinished LLM call at exit failed');
    }
  }
  // A referenced timer keeps the event loop alive while the flush runs.
  const keepAlive = setTimeout(() => undefined, EXIT_FLUSH_MS + 1_000);
  try {
    await flushUsageTracking(EXIT_FLUSH_MS);
  } finally {
    clearTimeout(keepAlive);
  }
}

function hasWork(): boolean {
  return openCalls.size > 0 || pendingHandlers.size > 0 || (active?.transport?.stats().queued ?? 0) > 0;
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  const proc = (globalThis as { process?: NodeJS.Process }).process;
  if (proc && typeof proc.on === 'function') {
    // beforeExit: the loop ran dry, async work is still allowed. Once, so a destination
    // that stays away cannot keep the process alive past the exit budget.
    proc.on('beforeExit', () => {
      if (exitFlushStarted || !hasWork()) return;
      exitFlushStarted = true;
      void flushAtExit();
    });
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const onSignal = (): void => {
        proc.removeListener(signal, onSignal);
        void flushAtExit().finally(() => {
          // Only if nobody else handles the signal: then die of it, as without us.
          if (proc.listenerCount(signal) === 0) proc.kill(proc.pid, signal);
        });
      };
      proc.on(signal, onSignal);
    }
    return;
  }
  const win = globalThis as { addEventListener?: (type: string, listener: () => void) => void };
  // Browsers: a hidden page may never come back; keepalive requests outlive it.
  win.addEventListener?.('pagehide', () => void flushUsageTracking(EXIT_FLUSH_MS));
}
