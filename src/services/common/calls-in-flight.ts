import {
  type handleUnaryCall,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { FifoQueue } from '../../common/fifo-queue.js';
import { wrapHandlers } from '../../common/service-handlers.js';

/** The default bound on a service instance's calls in flight. */
export const DEFAULT_MAX_CALLS_IN_FLIGHT = 128;

/** Calls that may wait for a slot, per slot: past them, a call is refused at once. */
export const WAITING_PER_SLOT = 2;

/** A call waiting for a slot. */
interface Waiter {
  readonly call: ServerUnaryCall<unknown, unknown>;
  readonly callback: sendUnaryData<unknown>;
  readonly handler: handleUnaryCall<unknown, unknown>;
  /** No longer waiting: started, or its client left (grpc-js has answered it then). */
  done: boolean;
}

/**
 * Bounds the calls of a service's own unary methods on one instance: at most `limit` run at once;
 * the calls past it wait, in order, for a slot (up to their deadline, which grpc-js enforces);
 * past `limit` × {@link WAITING_PER_SLOT} waiting, a call is answered RESOURCE_EXHAUSTED at once,
 * without running (the gateway says 429 with Retry-After).
 *
 * Each call in flight holds its answer until its client has read it: a thousand ListGoods of
 * 1 MiB pages at once, over one connection, took a service to 1 GB and blocked it long enough to
 * drop out of the registry. A call keeps its slot until it is answered and its stream has closed
 * (see #run). A waiting call holds its decoded request, at most the server's 1 MiB message limit.
 */
export class CallLimit {
  readonly #limit: number;
  readonly #waitingLimit: number;
  readonly #queue = new FifoQueue<Waiter>();
  #running = 0;
  /** Waiters still waiting (the queue also holds those started or gone, until it reaches them). */
  #waiting = 0;

  constructor(limit: number) {
    this.#limit = limit;
    this.#waitingLimit = limit * WAITING_PER_SLOT;
  }

  get running(): number {
    return this.#running;
  }

  get waiting(): number {
    return this.#waiting;
  }

  /** The service's handlers, each call of a unary one going through this limit. */
  apply<Implementation extends UntypedServiceImplementation>(
    definition: ServiceDefinition,
    implementation: Implementation,
  ): Implementation {
    return wrapHandlers(definition, implementation, (handler, method) => {
      if (method.requestStream || method.responseStream) return undefined;
      const unary = handler as handleUnaryCall<unknown, unknown>;
      return ((call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) =>
        this.#admit(unary, call, callback)) as handleUnaryCall<unknown, unknown>;
    });
  }

  #admit(
    handler: handleUnaryCall<unknown, unknown>,
    call: ServerUnaryCall<unknown, unknown>,
    callback: sendUnaryData<unknown>,
  ): void {
    if (this.#running < this.#limit) {
      // A handler that throws is answered UNKNOWN by grpc-js, as without the limit.
      this.#run(handler, call, callback);
      return;
    }
    if (this.#waiting >= this.#waitingLimit) {
      callback({
        code: status.RESOURCE_EXHAUSTED,
        details: `The service has ${this.#limit} calls in flight and ${this.#waitingLimit} waiting: retry shortly`,
      });
      return;
    }
    const waiter: Waiter = { call, callback, handler, done: false };
    this.#waiting++;
    call.once('cancelled', () => this.#leave(waiter));
    this.#queue.push(waiter);
  }

  /**
   * Runs a call in a slot, which it keeps until both its handler has answered and its stream has
   * closed: grpc-js holds an answer until its client's flow-control window takes it, so a slot given
   * back at the answer bounded the handlers running, not the answers held (1,000 calls whose clients
   * read nothing held 1.7 GB). A client that leaves closes its stream; its work still counts until
   * the handler answers.
   */
  #run(
    handler: handleUnaryCall<unknown, unknown>,
    call: ServerUnaryCall<unknown, unknown>,
    callback: sendUnaryData<unknown>,
  ): void {
    this.#running++;
    let answered = false;
    let closed = call.cancelled;
    const release = (): void => {
      if (!answered || !closed) return;
      this.#running--;
      this.#startNext();
    };
    // grpc-js says 'cancelled' when the stream closes, whether the call was answered or not.
    if (!closed) {
      call.once('cancelled', () => {
        closed = true;
        release();
      });
    }
    try {
      handler(call, (error, value, trailer, flags) => {
        if (answered) return;
        answered = true;
        callback(error, value, trailer, flags);
        release();
      });
    } catch (thrown) {
      if (!answered) {
        answered = true;
        release();
      }
      throw thrown;
    }
  }

  #leave(waiter: Waiter): void {
    if (waiter.done) return;
    waiter.done = true;
    this.#waiting--;
    // A waiter that left stays in the queue, with its call and request, until the queue reaches it,
    // which takes a slot given back: while every slot is held, calls whose clients gave up (short
    // deadlines) would pile up there past the waiting bound (200 of 512 KiB held 210 MB with one
    // slot busy). Past twice the bound, the queue keeps only those still waiting.
    if (this.#queue.length > 2 * this.#waitingLimit) this.#dropLeft();
  }

  /** Takes the waiters that left out of the queue, keeping the others in order. */
  #dropLeft(): void {
    const waiting: Waiter[] = [];
    for (let waiter = this.#queue.shift(); waiter; waiter = this.#queue.shift()) {
      if (!waiter.done) waiting.push(waiter);
    }
    for (const waiter of waiting) this.#queue.push(waiter);
  }

  #startNext(): void {
    while (this.#running < this.#limit) {
      const waiter = this.#queue.shift();
      if (!waiter) return;
      if (waiter.done) continue;
      // Its deadline may have passed a moment ago, before grpc-js said so.
      const deadline = waiter.call.getDeadline();
      const over =
        waiter.call.cancelled || Date.now() >= (deadline instanceof Date ? deadline.getTime() : deadline);
      this.#leave(waiter);
      if (over) continue;
      try {
        this.#run(waiter.handler, waiter.call, waiter.callback);
      } catch {
        // Not grpc-js's to answer here (it is the previous call's answer running this): say it.
        waiter.callback({ code: status.INTERNAL, details: 'Internal error' });
      }
    }
  }
}
