import { AsyncLocalStorage, AsyncResource, executionAsyncId } from 'node:async_hooks';
import { connect, createServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { leanBind, useLeanAsyncResourceBind } from '../../src/common/lean-async-resource-bind.js';

// AsyncResource.prototype is the worker's own: whatever a test puts there is taken back after it.
const nodeBind = AsyncResource.prototype.bind;
/** Whether this Node's own bind adds the deprecated accessor, which is when it gets replaced. */
const nodeAddsAccessor =
  Object.getOwnPropertyDescriptor(
    new AsyncResource('test').bind(() => 1),
    'asyncResource',
  )?.get !== undefined;
afterEach(() => {
  AsyncResource.prototype.bind = nodeBind;
});

describe('leanBind', () => {
  it("runs the function in the resource's scope, with the caller's this and arguments", () => {
    const resource = new AsyncResource('test');
    const seen: unknown[] = [];
    const bound = leanBind.call(resource, function (this: unknown, a: number, b: number) {
      seen.push(executionAsyncId(), this);
      return a + b;
    });
    const receiver = { name: 'receiver' };
    expect(bound.call(receiver, 2, 3)).toBe(5);
    expect(seen).toEqual([resource.asyncId(), receiver]);
    expect(bound.length).toBe(2);
  });

  it('binds this when given, as Node does', () => {
    const resource = new AsyncResource('test');
    const self = { name: 'self' };
    const bound = leanBind.call(
      resource,
      function (this: unknown, value: string) {
        return [this, value, executionAsyncId()];
      },
      self,
    );
    expect(bound.call({ other: true }, 'x')).toEqual([self, 'x', resource.asyncId()]);
    expect(bound.length).toBe(1);
  });

  it('refuses what is not a function with the error Node gives', () => {
    const resource = new AsyncResource('test');
    const refusal = (bind: typeof leanBind): unknown => {
      try {
        bind.call(resource, 'not a function' as never);
      } catch (error) {
        return error;
      }
      return undefined;
    };
    const ours = refusal(leanBind);
    expect(ours).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    expect((ours as Error).message).toBe((refusal(nodeBind as typeof leanBind) as Error).message);
  });

  it('lets an exception through and leaves the scope it was called from', () => {
    const resource = new AsyncResource('test');
    const outside = executionAsyncId();
    const bound = leanBind.call(resource, () => {
      throw new RangeError('inside');
    });
    expect(() => bound()).toThrow('inside');
    expect(executionAsyncId()).toBe(outside);
  });

  it('carries the async-local store of where it was bound, as tracing relies on', () => {
    AsyncResource.prototype.bind = leanBind as AsyncResource['bind'];
    const store = new AsyncLocalStorage<string>();
    const bound = store.run('bound here', () => AsyncResource.bind(() => store.getStore()));
    expect(store.run('called here', bound)).toBe('bound here');
  });
});

describe('useLeanAsyncResourceBind', () => {
  it("replaces Node's bind only while it adds the deprecated accessor, once", () => {
    expect(useLeanAsyncResourceBind()).toBe(nodeAddsAccessor);
    // In place, or nothing to replace: no bound function carries the accessor now, and a second call does nothing.
    expect(
      Object.getOwnPropertyDescriptor(
        new AsyncResource('test').bind(() => 1),
        'asyncResource',
      ),
    ).toBeUndefined();
    expect(useLeanAsyncResourceBind()).toBe(false);
  });

  it('keeps an HTTP/2 client request working, which binds through it', async () => {
    useLeanAsyncResourceBind();
    expect(AsyncResource.prototype.bind).toBe(nodeAddsAccessor ? leanBind : nodeBind);
    const server = createServer((request, response) => {
      response.end(`answered ${request.url}`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const stream = client.request({ ':path': '/lean' });
        let text = '';
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => {
          text += chunk;
        });
        stream.on('end', () => resolve(text));
        stream.on('error', reject);
      });
      expect(body).toBe('answered /lean');
    } finally {
      client.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
