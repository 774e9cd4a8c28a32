import type { UntypedHandleCall } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { bytesMethod } from '../../src/common/bytes-method.js';
import { wrapHandlers } from '../../src/common/service-handlers.js';

describe('wrapHandlers', () => {
  const definition = { Echo: { ...bytesMethod('/test.v1.Probe/Echo'), originalName: 'echo' } };
  const handler: UntypedHandleCall = () => {};
  const wrapper: UntypedHandleCall = () => {};

  it('wraps the handler grpc-js runs: by the method name, else by its original name', () => {
    expect(wrapHandlers(definition, { Echo: handler }, () => wrapper).Echo).toBe(wrapper);
    expect(wrapHandlers(definition, { echo: handler }, () => wrapper).echo).toBe(wrapper);
  });

  it('wraps the original-name handler when the method name is a key set to undefined, as grpc-js then runs that one', () => {
    const wrapped = wrapHandlers(definition, { Echo: undefined, echo: handler } as never, () => wrapper);
    expect((wrapped as Record<string, unknown>).echo).toBe(wrapper);
  });
});
