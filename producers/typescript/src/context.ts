/**
 * Who an LLM call is for: project, agent, session, operation and free-form context —
 * the TypeScript twin of the Python SDK's `usage_context`.
 *
 *     await usageContext({ projectId: 'acme', agentName: 'triage', sessionId }, async () => {
 *       await generateText({ model, prompt });                       // attributed to triage
 *       await usageContext({ agentName: 'billing' }, () => generateText(...)); // hand-off
 *     });
 *
 * Contexts nest: inner values override outer ones, extra fields merge into the events'
 * `context` object, and an inner `agentName` joins the hand-off chain (the current agent
 * last; re-entering the same agent is not a hand-off). On Node the context follows
 * `await` and callbacks (AsyncLocalStorage).
 */
import { createContextStorage } from '#context-storage';

import { MAX_HANDOFF_CHAIN } from './event.js';

/** The attribution in force. Immutable: nesting makes a new one. */
export interface UsageContext {
  readonly projectId?: string | undefined;
  readonly agentName?: string | undefined;
  readonly sessionId?: string | undefined;
  readonly operation?: string | undefined;
  readonly handoffChain: readonly string[];
  /** Goes into the events' `context`. Never prompt or completion text. */
  readonly extra: Readonly<Record<string, unknown>>;
  /** The `trackAIOperation` running this code, if any: it counts the calls tracked inside it. */
  readonly operationScope?: OperationScope | undefined;
}

/** Mutable on purpose: calls tracked by the middleware tell their operation they happened. */
export interface OperationScope {
  trackedCalls: number;
}

/** What `usageContext` takes: the four attribution fields, anything else is context. */
export interface UsageContextFields {
  projectId?: string;
  agentName?: string;
  sessionId?: string;
  operation?: string;
  [extra: string]: unknown;
}

export const EMPTY_CONTEXT: UsageContext = Object.freeze({ handoffChain: Object.freeze([]), extra: Object.freeze({}) });

const storage = createContextStorage<UsageContext>();

/** The attribution in force for the calling code (empty outside any `usageContext`). */
export function currentUsageContext(): UsageContext {
  return storage.getStore() ?? EMPTY_CONTEXT;
}

/** Run `fn` with every LLM call inside it attributed to `fields` (nested over the current context). */
export function usageContext<R>(fields: UsageContextFields, fn: () => R): R {
  return storage.run(nestContext(currentUsageContext(), fields), fn);
}

/** `context` with `fields` overridden; a new agent joins the hand-off chain. Pure. */
export function nestContext(context: UsageContext, fields: UsageContextFields): UsageContext {
  const { projectId, agentName, sessionId, operation, ...extra } = fields;
  return Object.freeze({
    projectId: projectId ?? context.projectId,
    agentName: agentName ?? context.agentName,
    sessionId: sessionId ?? context.sessionId,
    operation: operation ?? context.operation,
    handoffChain: extendHandoffChain(context.handoffChain, agentName),
    extra: Object.keys(extra).length ? Object.freeze({ ...context.extra, ...extra }) : context.extra,
    operationScope: context.operationScope,
  });
}

/** Run `fn` inside a new operation scope (see `trackAIOperation`). */
export function withOperationScope<R>(fields: UsageContextFields, scope: OperationScope, fn: () => R): R {
  return storage.run({ ...nestContext(currentUsageContext(), fields), operationScope: scope }, fn);
}

/**
 * The chain after `agentName` takes over: appended last, unless it already is last.
 * Capped at the schema's limit by dropping the oldest agents, so the current one stays last.
 */
export function extendHandoffChain(chain: readonly string[], agentName: string | undefined): readonly string[] {
  if (!agentName || chain[chain.length - 1] === agentName) return chain;
  return Object.freeze([...chain, agentName].slice(-MAX_HANDOFF_CHAIN));
}
