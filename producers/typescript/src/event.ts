/**
 * The wire event (SPEC.md §1, schema version 1) and how one finished LLM call becomes
 * one valid event. Pure apart from the clock.
 *
 * `buildEvent` never fails on what a caller could not have known: over-long names and
 * texts are cut to the schema's limits, an over-large `context` or `provider_metadata`
 * is replaced by a note saying so, and a call that reported no usage gets zero tokens
 * *and* an `error` saying so, so it can never pass for a free call. The limits mirror
 * schemas/event.py; a unit test validates built events against the shipped JSON Schema.
 */
import type { UsageContext } from './context.js';
import { uuidv7 } from './uuid7.js';

export const SCHEMA_VERSION = 1;
export const MAX_NAME_CHARS = 256;
export const MAX_TEXT_CHARS = 4096;
export const MAX_TOOL_CALLS = 128;
export const MAX_TOOL_ERROR_CHARS = 1024;
export const MAX_HANDOFF_CHAIN = 64;
export const MAX_OBJECT_JSON_BYTES = 16 * 1024;
/** Attribution of last resort: visible in every report, unlike a dropped event. */
export const UNATTRIBUTED = 'unattributed';
export const UNKNOWN = 'unknown';

export type Method = 'generate' | 'stream';

/** Token counts of one call. Inputs include cache tokens; outputs include reasoning. */
export interface WireUsage {
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  reasoning_tokens: number;
}

export interface WireToolCall {
  name: string;
  duration_ms?: number | null;
  error?: string | null;
}

/** One LLM call as published (the JSON Schema `usage_tracking_event.v1`). */
export interface UsageTrackingEvent {
  schema_version: 1;
  event_id: string;
  timestamp: string;
  source: string;
  project_id: string;
  agent_name: string;
  session_id: string | null;
  handoff_chain: string[];
  operation: string | null;
  method: Method;
  provider: string;
  model: string;
  usage: WireUsage;
  tool_calls: WireToolCall[];
  finish_reason: string | null;
  duration_ms: number | null;
  error: string | null;
  provider_cost: string | null;
  provider_metadata: Record<string, unknown>;
  context: Record<string, unknown>;
}

/** Attribution used when neither the call nor its usage context says otherwise. */
export interface TrackingDefaults {
  source: string;
  projectId?: string | undefined;
  agentName?: string | undefined;
}

/** What is known about one LLM call so far; filled while the call runs. */
export interface CallRecord {
  /** Drawn once, when the call starts: every re-send carries the same id. */
  readonly eventId: string;
  readonly attribution: UsageContext;
  readonly started: number;
  method: Method;
  provider?: string | undefined;
  model?: string | undefined;
  operation?: string | undefined;
  usage?: WireUsage | undefined;
  finishReason?: string | undefined;
  error?: string | undefined;
  providerCost?: string | undefined;
  toolCalls: WireToolCall[];
  /** The AI SDK's id of each entry of `toolCalls` (not sent), to attach tool outcomes. */
  toolCallIds?: (string | undefined)[];
  providerMetadata: Record<string, unknown>;
  context: Record<string, unknown>;
  durationMs?: number | undefined;
  finishedAt?: Date | undefined;
}

const now = (): number => (globalThis.performance ? globalThis.performance.now() : Date.now());

/** A record for a call starting now, attributed to `attribution`. */
export function startCall(method: Method, attribution: UsageContext): CallRecord {
  return {
    eventId: uuidv7(),
    attribution,
    started: now(),
    method,
    toolCalls: [],
    providerMetadata: {},
    context: {},
  };
}

/** Stop the clock (once): the event's timestamp is when the call finished. */
export function finishCall(record: CallRecord): void {
  if (record.finishedAt === undefined) {
    record.durationMs = Math.max(now() - record.started, 0);
    record.finishedAt = new Date();
  }
}

export const ZERO_USAGE: WireUsage = Object.freeze({
  input_tokens: 0,
  output_tokens: 0,
  cache_read_tokens: 0,
  cache_write_tokens: 0,
  reasoning_tokens: 0,
});

/** The event for a finished call, attributed call > usage context > defaults. */
export function buildEvent(record: CallRecord, defaults: TrackingDefaults): UsageTrackingEvent {
  finishCall(record);
  const attribution = record.attribution;
  let usage = record.usage;
  let error = record.error;
  if (usage === undefined) {
    usage = ZERO_USAGE;
    error ??= 'usage not reported: the call ended without a provider response carrying usage';
  }
  const metadata = { ...record.providerMetadata };
  return {
    schema_version: SCHEMA_VERSION,
    event_id: record.eventId,
    timestamp: record.finishedAt!.toISOString(),
    source: name(defaults.source) ?? UNKNOWN,
    project_id: name(attribution.projectId ?? defaults.projectId) ?? UNATTRIBUTED,
    agent_name: name(attribution.agentName ?? defaults.agentName) ?? UNATTRIBUTED,
    session_id: name(attribution.sessionId) ?? null,
    handoff_chain: attribution.handoffChain
      .map((agent) => name(agent))
      .filter((agent): agent is string => agent !== undefined)
      .slice(-MAX_HANDOFF_CHAIN),
    operation: name(record.operation ?? attribution.operation) ?? null,
    method: record.method,
    provider: name(record.provider) ?? UNKNOWN,
    model: name(record.model) ?? UNKNOWN,
    usage: { ...usage },
    tool_calls: boundedToolCalls(record.toolCalls, metadata),
    finish_reason: name(record.finishReason) ?? null,
    duration_ms: record.durationMs ?? null,
    error: error ? error.slice(0, MAX_TEXT_CHARS) : null,
    provider_cost: record.providerCost ?? null,
    provider_metadata: boundedObject(metadata, 'provider_metadata'),
    context: boundedObject({ ...attribution.extra, ...record.context }, 'context'),
  };
}

/** A tool call as the schema takes it: name and error cut to its limits. */
export function toolCall(toolName: string, durationMs?: number, error?: string): WireToolCall {
  const call: WireToolCall = { name: name(toolName) ?? UNKNOWN };
  if (durationMs !== undefined) call.duration_ms = Math.max(durationMs, 0);
  if (error) call.error = error.slice(0, MAX_TOOL_ERROR_CHARS);
  return call;
}

function name(value: string | null | undefined): string | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  return String(value).slice(0, MAX_NAME_CHARS);
}

function boundedToolCalls(calls: WireToolCall[], metadata: Record<string, unknown>): WireToolCall[] {
  if (calls.length <= MAX_TOOL_CALLS) return calls.map((call) => ({ ...call }));
  // The count matters for reports: keep it even where the list must be cut.
  metadata['tool_calls_total'] = calls.length;
  return calls.slice(0, MAX_TOOL_CALLS).map((call) => ({ ...call }));
}

const encoder = new TextEncoder();

function boundedObject(value: Record<string, unknown>, field: string): Record<string, unknown> {
  if (Object.keys(value).length === 0) return {};
  let text: string;
  try {
    // A round trip makes it plain JSON: no Dates, Maps, BigInts or class instances left.
    text = JSON.stringify(value, (_key, item: unknown) => (typeof item === 'bigint' ? item.toString() : item));
  } catch (error) {
    return { dropped: `${field} is not JSON-serializable: ${String(error)}`.slice(0, MAX_NAME_CHARS) };
  }
  const size = encoder.encode(text).length;
  if (size > MAX_OBJECT_JSON_BYTES) {
    return { dropped: `${field} was ${size} bytes of JSON; at most ${MAX_OBJECT_JSON_BYTES} allowed` };
  }
  return JSON.parse(text) as Record<string, unknown>;
}
