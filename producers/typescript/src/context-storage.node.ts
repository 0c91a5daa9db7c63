/**
 * Node (and Deno, Bun, edge runtimes that implement node:async_hooks): the usage context
 * follows `await`, promises, timers and callbacks through AsyncLocalStorage.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface ContextStorage<T> {
  getStore(): T | undefined;
  run<R>(store: T, fn: () => R): R;
}

export function createContextStorage<T>(): ContextStorage<T> {
  return new AsyncLocalStorage<T>();
}

export const followsAwait = true;
