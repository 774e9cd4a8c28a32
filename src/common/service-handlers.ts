import type {
  MethodDefinition,
  ServiceDefinition,
  UntypedHandleCall,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';

/**
 * A service's implementation with each method's handler passed through `wrap`, found as grpc-js
 * finds it: by the definition's method name, or else its original name. `wrap` returns the handler
 * to use instead, or undefined to keep it; methods without a handler are left as they are.
 */
export function wrapHandlers<Implementation extends UntypedServiceImplementation>(
  definition: ServiceDefinition,
  implementation: Implementation,
  wrap: (
    handler: UntypedHandleCall,
    method: MethodDefinition<unknown, unknown>,
  ) => UntypedHandleCall | undefined,
): Implementation {
  const wrapped: UntypedServiceImplementation = { ...implementation };
  for (const [name, method] of Object.entries(definition)) {
    // As grpc-js: the original name when the definition's name gives nothing, even a key set to
    // undefined (read with `in`, that one was "found", and the handler grpc-js ran left unwrapped).
    const key = implementation[name] !== undefined ? name : method.originalName;
    const handler = key === undefined ? undefined : implementation[key];
    if (key === undefined || typeof handler !== 'function') continue;
    const replacement = wrap(handler, method as MethodDefinition<unknown, unknown>);
    if (replacement) wrapped[key] = replacement;
  }
  return wrapped as Implementation;
}
