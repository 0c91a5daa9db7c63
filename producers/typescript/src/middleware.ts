/**
 * Vercel AI SDK integration: a language model middleware that makes every model call an
 * event, with no change where the model is used.
 *
 *     import { wrapLanguageModel, generateText } from 'ai';
 *     const model = wrapLanguageModel({ model: openai('gpt-4o'), middleware: usageTrackingMiddleware() });
 *
 * `generateText`, `streamText`, `generateObject`, `streamObject` and agents all call the
 * model through `doGenerate`/`doStream`, so each step of a multi-step tool loop is its
 * own event. A stream's event is sent when its `finish` part passes; a stream that ends
 * any other way (the caller's AbortSignal, the consumer cancelling, an error, the process
 * exiting) is reported once as a partial event: zero tokens unless the provider reported
 * some, `error` saying how far it got, `provider_metadata.stream_aborted = true`.
 *
 * One object serves AI SDK 5 (middleware v2, usage as numbers) and 6 (spec v3, usage as
 * `{total, noCache, cacheRead, cacheWrite}` / `{total, text, reasoning}`): the usage
 * shape is recognised at run time (see usage.ts). Provider and model come from the model
 * object (`openai.chat` -> `openai`; the response's model id when the provider reports one).
 */
import { currentUsageContext, nestContext, type UsageContextFields } from './context.js';
import { describeError } from './errors.js';
import { finishCall, startCall, toolCall, type CallRecord, type Method } from './event.js';
import { reportOrHoldForTools } from './tools.js';
import { forgetOpenCall, reportCall, trackOpenCall } from './tracking.js';
import { mapUsage, providerCost, providerId } from './usage.js';

export interface UsageTrackingMiddlewareOptions extends UsageContextFields {
  /** The billing provider id, when the model's own (`model.provider`) is not the one that bills. */
  provider?: string;
}

interface ModelLike {
  provider?: string;
  modelId?: string;
}

interface CallOptionsLike {
  abortSignal?: AbortSignal;
}

/**
 * The middleware's type, loose on purpose: it is assignable to AI SDK 5's
 * `LanguageModelV2Middleware` and AI SDK 6's `LanguageModelV3Middleware` alike.
 */
export interface UsageTrackingMiddleware {
  specificationVersion: 'v3';
  middlewareVersion: 'v2';
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  wrapGenerate: (options: any) => PromiseLike<any>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  wrapStream: (options: any) => PromiseLike<any>;
}

/** A middleware for `wrapLanguageModel` that tracks every call of the wrapped model. */
export function usageTrackingMiddleware(options: UsageTrackingMiddlewareOptions = {}): UsageTrackingMiddleware {
  const { provider, ...fields } = options;
  return {
    specificationVersion: 'v3',
    middlewareVersion: 'v2',
    async wrapGenerate({ doGenerate, model }: { doGenerate: () => PromiseLike<GenerateResultLike>; model: ModelLike }) {
      const record = beginCall('generate', model, provider, fields);
      let result: GenerateResultLike;
      try {
        result = await doGenerate();
      } catch (error) {
        record.error = describeError(error);
        reportCall(record);
        throw error;
      }
      try {
        const requested = applyResult(record, model, result);
        finishCall(record);
        reportOrHoldForTools(record, requested);
      } catch (error) {
        record.error ??= `tracking could not read the result: ${describeError(error)}`;
        reportCall(record);
      }
      return result;
    },
    async wrapStream({
      doStream,
      model,
      params,
    }: {
      doStream: () => PromiseLike<{ stream: ReadableStream<StreamPartLike> }>;
      model: ModelLike;
      params?: CallOptionsLike;
    }) {
      const record = beginCall('stream', model, provider, fields);
      let result: { stream: ReadableStream<StreamPartLike> };
      try {
        result = await doStream();
      } catch (error) {
        record.error = describeError(error);
        reportCall(record);
        throw error;
      }
      return { ...result, stream: watchStream(result.stream, record, model, params?.abortSignal) };
    },
  };
}

function beginCall(method: Method, model: ModelLike, provider: string | undefined, fields: UsageContextFields): CallRecord {
  const context = currentUsageContext();
  const attribution = Object.keys(fields).length ? nestContext(context, fields) : context;
  if (context.operationScope) context.operationScope.trackedCalls += 1;
  const record = startCall(method, attribution);
  record.provider = provider ?? providerId(model.provider);
  record.model = model.modelId;
  return record;
}

interface GenerateResultLike {
  content?: readonly ContentPartLike[];
  usage?: unknown;
  finishReason?: unknown;
  providerMetadata?: unknown;
  response?: { modelId?: string };
}

interface ContentPartLike {
  type: string;
  toolCallId?: string;
  toolName?: string;
}

type StreamPartLike = ContentPartLike & {
  usage?: unknown;
  finishReason?: unknown;
  providerMetadata?: unknown;
  modelId?: string;
  error?: unknown;
};

/** Fill `record` from a generate result; returns the tool calls the model requested. */
function applyResult(record: CallRecord, model: ModelLike, result: GenerateResultLike): ToolRequest[] {
  if (result.response?.modelId) record.model = result.response.modelId;
  applyFinish(record, model, result.usage, result.finishReason, result.providerMetadata);
  const requested = (result.content ?? []).filter(isToolCall).map(toolRequest);
  for (const call of requested) addToolCall(record, call);
  return requested;
}

interface ToolRequest {
  toolCallId?: string;
  toolName: string;
}

function isToolCall(part: ContentPartLike): boolean {
  return part.type === 'tool-call' && typeof part.toolName === 'string';
}

function toolRequest(part: ContentPartLike): ToolRequest {
  return part.toolCallId ? { toolCallId: part.toolCallId, toolName: part.toolName! } : { toolName: part.toolName! };
}

function addToolCall(record: CallRecord, call: ToolRequest): void {
  record.toolCalls.push(toolCall(call.toolName));
  (record.toolCallIds ??= []).push(call.toolCallId);
}

function applyFinish(record: CallRecord, model: ModelLike, usage: unknown, finishReason: unknown, providerMetadata: unknown): void {
  const mapped = mapUsage(usage, model.provider, providerMetadata);
  if (mapped) {
    record.usage = mapped.usage;
    if (mapped.adjusted) record.providerMetadata['usage_adjusted'] = mapped.adjusted;
  }
  record.finishReason = readFinishReason(finishReason);
  record.providerCost = providerCost(providerMetadata);
  if (providerMetadata && typeof providerMetadata === 'object') Object.assign(record.providerMetadata, providerMetadata);
}

/** v2: a string; v3: `{ unified, raw }`. */
function readFinishReason(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const unified = (value as { unified?: unknown }).unified;
    if (typeof unified === 'string') return unified;
  }
  return undefined;
}

/** Content parts: what a partial event counts as "received". */
const CONTENT_PARTS = new Set(['text-delta', 'reasoning-delta', 'tool-call', 'tool-input-delta', 'file', 'source']);

/**
 * The model's stream, passed through part by part, reporting the call exactly once:
 * at `finish`, or as partial when the stream ends any other way.
 */
function watchStream(
  source: ReadableStream<StreamPartLike>,
  record: CallRecord,
  model: ModelLike,
  signal: AbortSignal | undefined,
): ReadableStream<StreamPartLike> {
  const reader = source.getReader();
  const requested: ToolRequest[] = [];
  let chunks = 0;
  let reported = false;
  let streamError: string | undefined;

  const complete = (): void => {
    if (reported) return;
    reported = true;
    cleanUp();
    finishCall(record);
    reportOrHoldForTools(record, requested);
  };
  const abort = (detail: string): void => {
    if (reported) return;
    reported = true;
    cleanUp();
    const usageState = record.usage ? 'partial usage' : 'no usage reported yet';
    record.error = `stream aborted after ${chunks} chunks (${usageState}): ${streamError ?? detail}`;
    Object.assign(record.providerMetadata, { stream_aborted: true, chunks_received: chunks, usage_complete: false });
    reportCall(record);
  };
  const onAbortSignal = (): void => abort(`aborted by the caller's AbortSignal${signal?.reason ? ` (${describeError(signal.reason)})` : ''}`);
  const openCall = { abandonAtExit: () => abort('the stream was still open when the process exited') };
  const cleanUp = (): void => {
    signal?.removeEventListener('abort', onAbortSignal);
    forgetOpenCall(openCall);
  };

  if (signal?.aborted) onAbortSignal();
  else signal?.addEventListener('abort', onAbortSignal, { once: true });
  trackOpenCall(openCall);

  const observe = (part: StreamPartLike): void => {
    if (CONTENT_PARTS.has(part.type)) chunks += 1;
    if (part.type === 'response-metadata' && part.modelId) record.model = part.modelId;
    else if (isToolCall(part)) {
      const request = toolRequest(part);
      requested.push(request);
      addToolCall(record, request);
    } else if (part.type === 'error') streamError = describeError(part.error);
    else if (part.type === 'finish') {
      applyFinish(record, model, part.usage, part.finishReason, part.providerMetadata);
      complete();
    }
  };

  return new ReadableStream<StreamPartLike>({
    async pull(controller) {
      let next: ReadableStreamReadResult<StreamPartLike>;
      try {
        next = await reader.read();
      } catch (error) {
        abort(describeError(error));
        controller.error(error);
        return;
      }
      if (next.done) {
        abort('the stream ended without a finish part');
        controller.close();
        return;
      }
      try {
        observe(next.value);
      } catch {
        // Tracking must never change what the caller receives.
      }
      controller.enqueue(next.value);
    },
    async cancel(reason) {
      abort(`cancelled by the consumer before the end${reason ? ` (${describeError(reason)})` : ''}`);
      await reader.cancel(reason);
    },
  });
}
