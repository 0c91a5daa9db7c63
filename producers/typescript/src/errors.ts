/**
 * The package's one root error, so callers can catch everything of ours with one
 * `instanceof`. Tracking itself never throws into an LLM call: these are raised only by
 * `configureUsageTracking` (at start-up, where a misconfiguration should be loud) and
 * handed to `onError` for failures in the background.
 */
export class UsageTrackingError extends Error {
  override name = 'UsageTrackingError';
}

/** A setting that cannot work; the message names the setting and the fix, never a secret. */
export class TrackingConfigError extends UsageTrackingError {
  override name = 'TrackingConfigError';
}

/** A batch the server or broker refused for good (4xx): resending it would not help. */
export class DeliveryRejectedError extends UsageTrackingError {
  override name = 'DeliveryRejectedError';
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly eventIds: readonly string[],
  ) {
    super(message);
  }
}

/** Events lost because the bounded buffer was full (the destination was away too long). */
export class EventsDroppedError extends UsageTrackingError {
  override name = 'EventsDroppedError';
  constructor(readonly dropped: number) {
    super(`LOST ${dropped} usage events: the delivery buffer is full (the destination is unreachable)`);
  }
}

/** `TypeName: message`, the text of an event's `error` field. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    return error.message ? `${error.name}: ${error.message}` : error.name;
  }
  return String(error);
}
