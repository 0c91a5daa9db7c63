/**
 * Tool durations and errors, attached to the event of the model call that asked for them.
 *
 *     const tools = trackTools({ lookupOrder: tool({...}), refund: tool({...}) });
 *     await generateText({ model, tools, stopWhen: stepCountIs(5), prompt });
 *
 * The model call that requests a tracked tool ends before the tool runs, so its event is
 * held (keyed by the AI SDK's `toolCallId`) until its tracked tools finished, then sent
 * with each tool's `duration_ms` and `error`. It is never held for long: after
 * `TOOL_WAIT_MS`, at a flush, or at exit it goes out with what is known. Calls of
 * untracked tools carry their name only, and hold nothing.
 */
import { describeError } from './errors.js';
import type { CallRecord } from './event.js';
import { onBeforeFlush, reportCall } from './tracking.js';

export const TOOL_WAIT_MS = 30_000;
const MAX_EARLY_RESULTS = 10_000;

interface ToolOutcome {
  durationMs: number;
  error?: string | undefined;
}

interface HeldCall {
  released: boolean;
  record: CallRecord;
  waitingFor: Set<string>;
  timer: ReturnType<typeof setTimeout>;
}

const trackedToolNames = new Set<string>();
const held = new Map<string, HeldCall>();
// A streamed tool call may run (and finish) before its stream's `finish` part arrives.
const earlyResults = new Map<string, ToolOutcome>();

onBeforeFlush(() => {
  for (const call of new Set(held.values())) release(call);
});

type ExecuteFn = (input: unknown, options: { toolCallId?: string } & Record<string, unknown>) => unknown;

/** `tools` with each `execute` timed; the outcome goes to the event of the call that asked. */
export function trackTools<T extends Record<string, unknown>>(tools: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, definition] of Object.entries(tools)) {
    const execute = (definition as { execute?: ExecuteFn } | null)?.execute;
    if (typeof execute !== 'function') {
      out[name] = definition;
      continue;
    }
    trackedToolNames.add(name);
    out[name] = { ...(definition as object), execute: timedExecute(execute) };
  }
  return out as T;
}

function timedExecute(execute: ExecuteFn): ExecuteFn {
  return function (this: unknown, input, options) {
    const started = performance.now();
    const settle = (error?: unknown): void =>
      recordToolOutcome(options?.toolCallId, {
        durationMs: performance.now() - started,
        error: error === undefined ? undefined : describeError(error),
      });
    let result: unknown;
    try {
      result = execute.call(this, input, options);
    } catch (error) {
      settle(error);
      throw error;
    }
    if (result && typeof (result as Promise<unknown>).then === 'function') {
      (result as Promise<unknown>).then(
        () => settle(),
        (error: unknown) => settle(error),
      );
    } else if (result && typeof (result as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
      settle(); // a streaming tool: its start is what we can time without consuming it
    } else {
      settle();
    }
    return result;
  };
}

/**
 * Send the call's event now, or hold it for the tracked tools it requested.
 * `toolCalls` are the tool-call parts of the model's output, in order.
 */
export function reportOrHoldForTools(record: CallRecord, toolCalls: readonly { toolCallId?: string; toolName: string }[]): void {
  const waitingFor = new Set<string>();
  for (const call of toolCalls) {
    if (!call.toolCallId || !trackedToolNames.has(call.toolName)) continue;
    const early = earlyResults.get(call.toolCallId);
    if (early) {
      earlyResults.delete(call.toolCallId);
      applyOutcome(record, call.toolCallId, early);
    } else waitingFor.add(call.toolCallId);
  }
  if (waitingFor.size === 0) {
    reportCall(record);
    return;
  }
  const timer = setTimeout(() => release(entry), TOOL_WAIT_MS);
  (timer as { unref?: () => void }).unref?.();
  const entry: HeldCall = { released: false, record, waitingFor, timer };
  for (const id of waitingFor) held.set(id, entry);
}

function recordToolOutcome(toolCallId: string | undefined, outcome: ToolOutcome): void {
  if (!toolCallId) return;
  const entry = held.get(toolCallId);
  if (!entry) {
    if (earlyResults.size >= MAX_EARLY_RESULTS) earlyResults.delete(earlyResults.keys().next().value!);
    earlyResults.set(toolCallId, outcome);
    return;
  }
  held.delete(toolCallId);
  entry.waitingFor.delete(toolCallId);
  applyOutcome(entry.record, toolCallId, outcome);
  if (entry.waitingFor.size === 0) release(entry);
}

function applyOutcome(record: CallRecord, toolCallId: string, outcome: ToolOutcome): void {
  const index = record.toolCallIds?.indexOf(toolCallId) ?? -1;
  const call = record.toolCalls[index];
  if (!call) return;
  call.duration_ms = Math.max(outcome.durationMs, 0);
  if (outcome.error) call.error = outcome.error.slice(0, 1024);
}

function release(entry: HeldCall): void {
  if (entry.released) return;
  entry.released = true;
  clearTimeout(entry.timer);
  for (const id of entry.waitingFor) held.delete(id);
  entry.waitingFor.clear();
  reportCall(entry.record);
}
