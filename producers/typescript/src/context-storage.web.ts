/**
 * Browsers and runtimes without node:async_hooks. Where the runtime offers a global
 * `AsyncLocalStorage` (Vercel Edge, Cloudflare Workers with nodejs_compat) it is used,
 * so the context follows `await`. Otherwise the context is a plain stack that holds for
 * the synchronous part of `usageContext`'s callback only: pass `projectId` and friends
 * through `trackAIOperation` or the middleware's options there instead.
 */
export interface ContextStorage<T> {
  getStore(): T | undefined;
  run<R>(store: T, fn: () => R): R;
}

type AlsConstructor = new <T>() => ContextStorage<T>;

const GlobalAls = (globalThis as { AsyncLocalStorage?: AlsConstructor }).AsyncLocalStorage;

class SyncStack<T> implements ContextStorage<T> {
  private current: T | undefined;

  getStore(): T | undefined {
    return this.current;
  }

  run<R>(store: T, fn: () => R): R {
    const previous = this.current;
    this.current = store;
    try {
      return fn();
    } finally {
      this.current = previous;
    }
  }
}

export function createContextStorage<T>(): ContextStorage<T> {
  return GlobalAls ? new GlobalAls<T>() : new SyncStack<T>();
}

export const followsAwait = GlobalAls !== undefined;
