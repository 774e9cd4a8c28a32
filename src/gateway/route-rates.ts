/** Requests and errors of one route over the window. */
export interface RouteRate {
  readonly requests: number;
  readonly errors: number;
}

/** One route's counts, one slot per second of the window. */
interface Slots {
  /** Seconds since 1970: past 2^31 in January 2038, which an Int32Array wraps to negative. */
  readonly seconds: Float64Array;
  readonly requests: Uint32Array;
  readonly errors: Uint32Array;
}

/**
 * Requests and errors per route over the last `windowSeconds` (a minute by default), for the status
 * page: one slot per second, reused as time goes round, so the cost is a few array writes per request
 * and the memory a fixed amount per route. Route keys come from the route table (or one "unmatched"
 * key), never from a client's raw path.
 */
export class RouteRates {
  readonly #windowSeconds: number;
  readonly #routes = new Map<string, Slots>();
  readonly #startedMs: number;

  constructor(windowSeconds = 60, startedMs = Date.now()) {
    this.#windowSeconds = windowSeconds;
    this.#startedMs = startedMs;
  }

  /** Counts one answered request of `route`; an error is a 5xx answer. */
  record(route: string, error: boolean, nowMs = Date.now()): void {
    let slots = this.#routes.get(route);
    if (!slots) {
      slots = {
        seconds: new Float64Array(this.#windowSeconds).fill(-1),
        requests: new Uint32Array(this.#windowSeconds),
        errors: new Uint32Array(this.#windowSeconds),
      };
      this.#routes.set(route, slots);
    }
    const second = Math.floor(nowMs / 1000);
    const slot = second % this.#windowSeconds;
    if (slots.seconds[slot] !== second) {
      slots.seconds[slot] = second;
      slots.requests[slot] = 0;
      slots.errors[slot] = 0;
    }
    slots.requests[slot]! += 1;
    if (error) slots.errors[slot]! += 1;
  }

  /**
   * Every route's totals over the window that ends now. Routes quiet for the whole window are left
   * out and forgotten, so routes that came and went do not pile up.
   */
  totals(nowMs = Date.now()): Map<string, RouteRate> {
    const now = Math.floor(nowMs / 1000);
    const oldest = now - this.#windowSeconds + 1;
    const totals = new Map<string, RouteRate>();
    for (const [route, slots] of this.#routes) {
      let requests = 0;
      let errors = 0;
      for (let slot = 0; slot < this.#windowSeconds; slot++) {
        const second = slots.seconds[slot]!;
        if (second < oldest || second > now) continue;
        requests += slots.requests[slot]!;
        errors += slots.errors[slot]!;
      }
      if (requests > 0) totals.set(route, { requests, errors });
      else this.#routes.delete(route);
    }
    return totals;
  }

  /**
   * The time the totals at `nowMs` count over, in seconds, to divide them by for a rate: the window's
   * whole seconds before this one and as much of this one as has passed, or the time since the
   * counting began when that is shorter. Divided by the whole window, a steady rate read up to a
   * sixtieth low, and a gateway a few seconds old a fraction of its rate. One second at least, so
   * that the first requests do not read as a burst.
   */
  coveredSeconds(nowMs = Date.now()): number {
    const window = this.#windowSeconds - 1 + (nowMs % 1000) / 1000;
    return Math.max(1, Math.min(window, (nowMs - this.#startedMs) / 1000));
  }

  /** The length of the window, in seconds. */
  get windowSeconds(): number {
    return this.#windowSeconds;
  }
}
