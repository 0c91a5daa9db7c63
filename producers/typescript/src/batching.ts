/**
 * Pack events into message bodies: JSON arrays of one project's events (SPEC.md §1).
 * Pure. A stream processor pays a fixed cost per message, so producers send batches; the
 * Kafka key is the project_id, so a batch never mixes projects. The same bodies go to
 * `ingest-http`, one request per project, so an API key refused for one project never
 * holds back another project's events.
 */
import type { UsageTrackingEvent } from './event.js';

/** SPEC §1: consumers accept batches of up to 1,000 events. */
export const MAX_EVENTS_PER_MESSAGE = 1000;
/** Below Kafka's default 1 MiB message limit, leaving room for the key and record overhead. */
export const DEFAULT_MAX_MESSAGE_BYTES = 900_000;

/** One message body: a compact UTF-8 JSON array of one project's events. */
export interface EventBatch {
  readonly projectId: string;
  readonly payload: string;
  readonly bytes: number;
  readonly eventIds: readonly string[];
}

/**
 * Group events by project (first-seen order) and pack each project's events, in order,
 * into as few batches as fit `maxEvents` and `maxBytes`. One event larger than
 * `maxBytes` alone still gets a batch of its own: the destination then says why it refuses it.
 */
export function packBatches(
  events: readonly UsageTrackingEvent[],
  maxEvents: number = MAX_EVENTS_PER_MESSAGE,
  maxBytes: number = DEFAULT_MAX_MESSAGE_BYTES,
): EventBatch[] {
  if (!(maxEvents >= 1 && maxEvents <= MAX_EVENTS_PER_MESSAGE)) {
    throw new RangeError(`maxEvents must be between 1 and ${MAX_EVENTS_PER_MESSAGE} (consumers accept no more), got ${maxEvents}`);
  }
  const groups = new Map<string, UsageTrackingEvent[]>();
  for (const event of events) {
    const group = groups.get(event.project_id);
    if (group) group.push(event);
    else groups.set(event.project_id, [event]);
  }
  const batches: EventBatch[] = [];
  for (const [projectId, projectEvents] of groups) {
    let parts: string[] = [];
    let ids: string[] = [];
    let size = 2; // the brackets
    for (const event of projectEvents) {
      const encoded = JSON.stringify(event);
      const length = utf8Length(encoded);
      const added = length + (parts.length ? 1 : 0);
      if (parts.length && (parts.length >= maxEvents || size + added > maxBytes)) {
        batches.push(makeBatch(projectId, parts, ids, size));
        parts = [];
        ids = [];
        size = 2;
      }
      size += length + (parts.length ? 1 : 0);
      parts.push(encoded);
      ids.push(event.event_id);
    }
    if (parts.length) batches.push(makeBatch(projectId, parts, ids, size));
  }
  return batches;
}

function makeBatch(projectId: string, parts: string[], ids: string[], bytes: number): EventBatch {
  return { projectId, payload: `[${parts.join(',')}]`, bytes, eventIds: ids };
}

/** Bytes of `text` in UTF-8, without allocating the encoding. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code < 0xdc00 && i + 1 < text.length) {
      bytes += 4; // a surrogate pair is one 4-byte code point
      i += 1;
    } else bytes += 3;
  }
  return bytes;
}
