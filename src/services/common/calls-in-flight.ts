import {
  type handleUnaryCall,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';

/** The default bound on a service instance's calls in flight. */
export const DEFAULT_MAX_CALLS_IN_FLIGHT = 128;

/**
 * A service's handlers bounded together: at most `limit` of their calls run at once on this
 * instance, and a call past it is answered RESOURCE_EXHAUSTED at once, without running (the gateway
 * says 429 with Retry-After). Each call in flight holds its answer until its client has read it:
 * a thousand ListGoods of 1 MiB pages at once, over one connection, took a service to 1 GB and
 * blocked it long enough to drop out of the registry. A call counts until its handler answers,
 * even when its client has left, since its work goes on until then.
 */
export function limitCallsInFlight<Implementation extends UntypedServiceImplementation>(
  definition: ServiceDefinition,
  implementation: Implementation,
  limit: number,
): Implementation {
  let inFlight = 0;
  const limited: UntypedServiceImplementation = { ...implementation };
  for (const [name, method] of Object.entries(definition)) {
    const key = name in implementation ? name : method.originalName;
    const handler = key === undefined ? undefined : implementation[key];
    if (key === undefined || typeof handler !== 'function') continue;
    if (method.requestStream || method.responseStream) continue;
    const unary = handler as handleUnaryCall<unknown, unknown>;
    limited[key] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      if (inFlight >= limit) {
        callback({
          code: status.RESOURCE_EXHAUSTED,
          details: `The service has ${limit} calls in flight: retry shortly`,
        });
        return;
      }
      inFlight++;
      let answered = false;
      const release = (): void => {
        if (answered) return;
        answered = true;
        inFlight--;
      };
      try {
        unary(call, (error, value, trailer, flags) => {
          release();
          callback(error, value, trailer, flags);
        });
      } catch (thrown) {
        release();
        throw thrown;
      }
    };
  }
  return limited as Implementation;
}
