import { AsyncResource } from 'node:async_hooks';

/** Node's own `bind`, kept for what it alone does exactly: refusing what is not a function. */
const nodeBind = AsyncResource.prototype.bind;

/**
 * `AsyncResource.prototype.bind` without the deprecated `asyncResource` accessor (DEP0172).
 *
 * Node 20's HTTP/2 client binds a callback to an AsyncResource for every stream it opens, so every
 * gRPC call the gateway makes goes through `bind`, and Node 20's `bind` gives the bound function
 * an `asyncResource` getter and setter, each wrapped by `util.deprecate`, which makes the wrapped
 * function the prototype of a new one. A new prototype per call costs V8 a map, a prototype
 * transition and garbage, more than the rest of the bind many times over (see
 * docs/performance-log.md, "Two costs of every upstream call").
 *
 * Everything else is as Node does it: `fn` runs in the resource's async scope, with `thisArg` as
 * `this` when given (else the bound function's own `this`), and keeps its `length`.
 */
// biome-ignore lint/suspicious/noExplicitAny: the signature of Node's own bind, which takes any function.
export function leanBind<F extends (...args: any[]) => unknown>(
  this: AsyncResource,
  fn: F,
  thisArg?: unknown,
): F {
  if (typeof fn !== 'function') return Reflect.apply(nodeBind, this, [fn, thisArg]) as F;
  const resource = this;
  const bound =
    thisArg === undefined
      ? function (this: unknown, ...args: unknown[]) {
          return resource.runInAsyncScope(fn, this, ...args);
        }
      : resource.runInAsyncScope.bind(resource, fn, thisArg);
  Object.defineProperty(bound, 'length', {
    configurable: true,
    enumerable: false,
    value: fn.length,
    writable: false,
  });
  return bound as unknown as F;
}

/**
 * Puts {@link leanBind} in place of `AsyncResource.prototype.bind` when this Node's own `bind` adds
 * the deprecated accessor (Node 20 and 24 do, 26 does not); says whether it did. For a process's entry point only: it
 * changes `bind` for the whole process. What goes: the `asyncResource` property of bound
 * functions, deprecated since Node 20.
 */
export function useLeanAsyncResourceBind(): boolean {
  const probe = new AsyncResource('shop.bind-probe').bind(() => undefined);
  if (Object.getOwnPropertyDescriptor(probe, 'asyncResource')?.get === undefined) return false;
  AsyncResource.prototype.bind = leanBind as AsyncResource['bind'];
  return true;
}
