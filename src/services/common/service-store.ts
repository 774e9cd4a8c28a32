import type { TraceSpan } from '../../common/trace-span.js';
import type { IdempotencyClaim, Outcome } from './idempotency.js';

/**
 * What every service's store offers besides its own operations, so that the shared plumbing can
 * watch and close it without knowing which database is behind it. An operation made for a call
 * takes the call's server span last (`parent`, from traceParentOf: undefined unless the call is
 * sampled), and its database operations are traced as children of that span (see
 * database-telemetry.ts). The span is handed down rather than kept in AsyncLocalStorage, which on
 * Node 20 slows every promise of the process once used.
 */
export interface ServiceStore {
  /** Which back end this is, for logs: "sqlite" or "mysql". */
  readonly kind: 'sqlite' | 'mysql';
  /** Resolves when the database answers; rejects with UNAVAILABLE (a ServiceError) when it cannot be used. */
  ping(): Promise<void>;
  /**
   * The outcome recorded for an idempotency key that is still kept, or undefined; rejects with
   * FAILED_PRECONDITION when the key was used for another request (see idempotency.ts).
   */
  recall(claim: IdempotencyClaim, parent: TraceSpan | undefined): Promise<Outcome | undefined>;
  /**
   * Deletes what has expired, a bounded number per call: idempotency keys, and the service's own
   * records (members' sign-in failures); resolves with how many.
   */
  sweepExpired(): Promise<number>;
  /**
   * Releases the database (closes the file, or ends the pool, waiting at most `timeoutMs` for its
   * connections to say goodbye). Called once, after the server stopped.
   */
  close(timeoutMs?: number): Promise<void>;
}
