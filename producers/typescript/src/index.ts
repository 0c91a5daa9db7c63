/**
 * Track LLM usage from TypeScript services and send it to the llm-usage-pipeline.
 * Runs in Node 20+, browsers and edge runtimes (the HTTP transport); the Kafka transport
 * is Node-only, in `@llm-usage-pipeline/producer/kafka`.
 */
export {
  configureUsageTracking,
  emitUsageEvent,
  flushUsageTracking,
  getUsageTrackingConfig,
  resetUsageTracking,
  usageTrackingStats,
  type UsageTrackingConfig,
  type UsageTrackingErrorHandler,
  type UsageTrackingHandler,
} from './tracking.js';
export { currentUsageContext, usageContext, type UsageContext, type UsageContextFields } from './context.js';
export { usageTrackingMiddleware, type UsageTrackingMiddleware, type UsageTrackingMiddlewareOptions } from './middleware.js';
export { trackAIOperation, type TrackAIOperationOptions } from './operation.js';
export { trackTools } from './tools.js';
export { httpTransport, type HttpTransportOptions } from './http-transport.js';
export {
  BatchingTransport,
  RetryableDeliveryError,
  backoffDelay,
  type BatchSender,
  type DeliveryOptions,
  type Transport,
  type TransportStats,
} from './delivery.js';
export { packBatches, type EventBatch, MAX_EVENTS_PER_MESSAGE } from './batching.js';
export { mapUsage, providerId, type MappedUsage } from './usage.js';
export { buildEvent, startCall, type CallRecord, type UsageTrackingEvent, type WireToolCall, type WireUsage } from './event.js';
export { uuidv7 } from './uuid7.js';
export { DeliveryRejectedError, EventsDroppedError, TrackingConfigError, UsageTrackingError } from './errors.js';
