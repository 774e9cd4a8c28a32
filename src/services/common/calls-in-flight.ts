import {
  type handleUnaryCall,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { FifoQueue } from '../../common/fifo-queue.js';

/** The default bound on a service instance's calls in flight. */
export const DEFAULT_MAX_CALLS_IN_FLIGHT = 128;

/** Calls that may wait for a slot, per slot: past them, a call is refused at once. */
const WAITING_PER_SLOT = 8;

/** A call waiting for a slot. */
interface Waiter {
  readonly run: () => void;
  /** Its client left (a cancel, or its deadline): grpc-js has answered it already. */
  gone: boolean;
  /** Whether it is over though grpc-js has not said so yet (its deadline passed a moment ago). */
  isOver(): boolean;
}

/**
 * A service's handlers bounded together: at most `limit` of their calls run at once on this
 * instance, and the calls past it wait, in order, for a slot (up to their deadline, which grpc-js
 * enforces); past `limit` × 8 waiting, a call is answered RESOURCE_EXHAUSTED at once, without
 * running (the gateway says 429 with Retry-After). Each call in flight holds its answer until its
 * client has read it: a thousand ListGoods of 1 MiB pages at once, over one connection, took a
 * service to 1 GB and blocked it long enough to drop out of the registry. A waiting call holds only
 * its request. A call counts until its handler answers, even when its client has left, since its
 * work goes on until then.
 */
export function limitCallsInFlight<Implementation extends UntypedServiceImplementation>(
  definition: ServiceDefinition,
  implementation: Implementation,
  limit: number,
): Implementation {
  let inFlight = 0;
  const waiting = new FifoQueue<Waiter>();
  const waitingLimit = limit * WAITING_PER_SLOT;
  const release = (): void => {
    inFlight--;
    for (let waiter = waiting.shift(); waiter; waiter = waiting.shift()) {
      if (waiter.gone || waiter.isOver()) continue;
      waiter.run();
      break;
    }
  };
  const limited: UntypedServiceImplementation = { ...implementation };
  for (const [name, method] of Object.entries(definition)) {
    const key = name in implementation ? name : method.originalName;
    const handler = key === undefined ? undefined : implementation[key];
    if (key === undefined || typeof handler !== 'function') continue;
    if (method.requestStream || method.responseStream) continue;
    const unary = handler as handleUnaryCall<unknown, unknown>;
    const run = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>): void => {
      inFlight++;
      let answered = false;
      try {
        unary(call, (error, value, trailer, flags) => {
          if (!answered) {
            answered = true;
            release();
          }
          callback(error, value, trailer, flags);
        });
      } catch (thrown) {
        if (!answered) {
          answered = true;
          release();
        }
        throw thrown;
      }
    };
    limited[key] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      if (inFlight < limit) {
        run(call, callback);
        return;
      }
      if (waiting.length >= waitingLimit) {
        callback({
          code: status.RESOURCE_EXHAUSTED,
          details: `The service has ${limit} calls in flight and ${waitingLimit} waiting: retry shortly`,
        });
        return;
      }
      const deadline = call.getDeadline();
      const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
      const waiter: Waiter = {
        run: () => run(call, callback),
        gone: false,
        isOver: () => call.cancelled || Date.now() >= deadlineMs,
      };
      call.once('cancelled', () => {
        waiter.gone = true;
      });
      waiting.push(waiter);
    };
  }
  return limited as Implementation;
}
