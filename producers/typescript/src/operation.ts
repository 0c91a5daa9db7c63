/**
 * `trackAIOperation(operation, projectId, fn)`, as the dashboard seed designed it: name
 * what a piece of code is for, and its LLM calls are billed under that operation and
 * project, with duration and tool calls.
 *
 *     const ideas = await trackAIOperation('generate_project_ideas', projectId, () =>
 *       generateText({ model, prompt, tools }));
 *
 * Calls made through a model wrapped with `usageTrackingMiddleware` are already events
 * (one per step): inside the operation they carry its name and project, and nothing is
 * added, so nothing is counted twice. When the model is *not* wrapped, the operation
 * reads the result instead: one event per step of a `generateText`/`generateObject`
 * result (usage, model, finish reason, tool calls), or — for a `streamText` result — once
 * its `steps`/`totalUsage` settle, in the background. A failed `fn` is an event too (with
 * `error`), and the error is re-thrown unchanged.
 */
import { withOperationScope, type OperationScope } from './context.js';
import { describeError } from './errors.js';
import { finishCall, startCall, toolCall, type CallRecord, type Method } from './event.js';
import { currentUsageContext } from './context.js';
import { reportOrHoldForTools } from './tools.js';
import { reportCall, reportError } from './tracking.js';
import { mapUsage, providerId } from './usage.js';

export interface TrackAIOperationOptions {
  agentName?: string;
  sessionId?: string;
  /** Billing provider when the result does not say (default: guessed from the model name). */
  provider?: string;
  /** Model when the result does not say. */
  model?: string;
  /** Extra context for the events (never prompt or completion text). */
  context?: Record<string, unknown>;
}

/** Run `fn` as `operation` for `projectId`, tracking its LLM calls (see module doc). */
export async function trackAIOperation<T>(
  operation: string,
  projectId: string | null | undefined,
  fn: () => Promise<T> | T,
  options: TrackAIOperationOptions = {},
): Promise<T> {
  const scope: OperationScope = { trackedCalls: 0 };
  const fields = {
    operation,
    ...(projectId ? { projectId } : {}),
    ...(options.agentName ? { agentName: options.agentName } : {}),
    ...(options.sessionId ? { sessionId: options.sessionId } : {}),
    ...options.context,
  };
  return withOperationScope(fields, scope, async () => {
    const attribution = currentUsageContext();
    const started = startCall('generate', attribution);
    let result: T;
    try {
      result = await fn();
    } catch (error) {
      if (scope.trackedCalls === 0) {
        started.error = describeError(error);
        applyModel(started, options, undefined);
        reportCall(started);
      }
      throw error;
    }
    try {
      if (isStreamResult(result)) void reportStreamWhenDone(result, scope, started, options);
      else if (scope.trackedCalls === 0) reportSteps(result, started, 'generate', options);
    } catch (error) {
      reportError(error, null, 'reading the operation result failed');
    }
    return result;
  });
}

interface StepLike {
  usage?: unknown;
  finishReason?: unknown;
  providerMetadata?: unknown;
  response?: { modelId?: string };
  toolCalls?: readonly { toolCallId?: string; toolName?: string }[];
}

interface ResultLike extends StepLike {
  steps?: readonly StepLike[] | PromiseLike<readonly StepLike[]>;
  totalUsage?: unknown;
}

function isStreamResult(value: unknown): value is ResultLike {
  const steps = (value as ResultLike | null)?.steps;
  return typeof (steps as PromiseLike<unknown> | undefined)?.then === 'function';
}

async function reportStreamWhenDone(result: ResultLike, scope: OperationScope, started: CallRecord, options: TrackAIOperationOptions): Promise<void> {
  let steps: readonly StepLike[];
  try {
    steps = await (result.steps as PromiseLike<readonly StepLike[]>);
  } catch (error) {
    if (scope.trackedCalls === 0) {
      started.method = 'stream';
      started.error = `stream failed or was aborted: ${describeError(error)}`;
      started.providerMetadata['stream_aborted'] = true;
      applyModel(started, options, undefined);
      reportCall(started);
    }
    return;
  }
  if (scope.trackedCalls === 0) reportSteps({ steps }, started, 'stream', options);
}

/** One event per step (a model round trip); a result without steps is one step. */
function reportSteps(result: unknown, started: CallRecord, method: Method, options: TrackAIOperationOptions): void {
  const shaped = (result ?? {}) as ResultLike;
  const steps = Array.isArray(shaped.steps) && shaped.steps.length ? (shaped.steps as readonly StepLike[]) : [shaped];
  steps.forEach((step, index) => {
    const record = index === 0 ? started : startCall(method, started.attribution);
    record.method = method;
    applyModel(record, options, step.response?.modelId);
    const mapped = mapUsage(step.usage, record.provider, step.providerMetadata);
    if (mapped) record.usage = mapped.usage;
    const reason = step.finishReason;
    record.finishReason = typeof reason === 'string' ? reason : undefined;
    const requested = (step.toolCalls ?? [])
      .filter((call) => typeof call.toolName === 'string')
      .map((call) => ({ toolName: call.toolName!, ...(call.toolCallId ? { toolCallId: call.toolCallId } : {}) }));
    for (const call of requested) {
      record.toolCalls.push(toolCall(call.toolName));
      (record.toolCallIds ??= []).push(call.toolCallId);
    }
    finishCall(record);
    reportOrHoldForTools(record, requested);
  });
}

function applyModel(record: CallRecord, options: TrackAIOperationOptions, modelId: string | undefined): void {
  record.model = modelId ?? options.model;
  record.provider = options.provider ?? guessProvider(record.model);
}

/** The seed's `detectProvider`, for results that do not name their provider. */
export function guessProvider(model: string | undefined): string | undefined {
  if (!model) return undefined;
  const name = model.toLowerCase();
  if (name.includes('/')) return providerId(name.split('/')[0]);
  if (/^(gpt|o\d|chatgpt|text-embedding|davinci)/.test(name)) return 'openai';
  if (name.includes('claude')) return 'anthropic';
  if (name.includes('gemini') || name.includes('gemma')) return 'google';
  if (name.includes('grok')) return 'x-ai';
  if (name.includes('llama')) return 'meta';
  if (name.includes('mistral') || name.includes('mixtral') || name.includes('codestral')) return 'mistral';
  if (name.includes('deepseek')) return 'deepseek';
  return undefined;
}
