import type { TraceSpan } from '../../common/trace-span.js';
import type { IdempotencyClaim, Outcome } from './idempotency.js';
import { MysqlDatabase } from './mysql-database.js';
import type { MysqlStoreOptions } from './mysql-database-options.js';
import { MysqlIdempotencyJournal } from './mysql-idempotency.js';
import type { MysqlSchemaStep } from './mysql-schema.js';
import type { ServiceStore } from './service-store.js';

/**
 * What a service's store in MySQL is besides its own tables: one bounded pool, and its idempotency
 * keys, watched and closed as every ServiceStore is. A service's store extends it with its
 * operations.
 */
export abstract class MysqlServiceStore implements ServiceStore {
  readonly kind = 'mysql';
  protected readonly db: MysqlDatabase;
  /** The idempotency keys, in `journalTable` of the store's schema (see idempotency.ts). */
  protected readonly journal: MysqlIdempotencyJournal;

  /** Creates the pool; the tables are created on first use (see MysqlDatabase). */
  protected constructor(
    { idempotency, ...options }: MysqlStoreOptions,
    schema: readonly MysqlSchemaStep[],
    journalTable: string,
  ) {
    this.db = new MysqlDatabase({ ...options, schema });
    this.journal = new MysqlIdempotencyJournal(this.db, journalTable, idempotency);
  }

  recall(claim: IdempotencyClaim, parent?: TraceSpan): Promise<Outcome | undefined> {
    return this.journal.recall(claim, parent);
  }

  sweepExpired(): Promise<number> {
    return this.journal.sweep();
  }

  ping(): Promise<void> {
    return this.db.ping();
  }

  close(timeoutMs?: number): Promise<void> {
    return this.db.close(timeoutMs);
  }
}
