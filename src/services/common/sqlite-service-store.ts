import type { TraceSpan } from '../../common/trace-span.js';
import type { IdempotencyClaim, Outcome } from './idempotency.js';
import type { ServiceStore } from './service-store.js';
import {
  closeSqliteDatabase,
  type Database,
  openSqliteDatabase,
  type SqliteCall,
  type SqliteSchemaStep,
  type SqliteStoreOptions,
  sqliteCaller,
} from './sqlite-database.js';
import { SqliteIdempotencyJournal } from './sqlite-idempotency.js';

/**
 * What a service's store in one SQLite file is besides its own tables: the file, the caller that
 * times and traces its operations, and its idempotency keys, watched and closed as every
 * ServiceStore is. A service's store extends it with its operations.
 */
export abstract class SqliteServiceStore implements ServiceStore {
  readonly kind = 'sqlite';
  protected readonly db: Database;
  /** Runs an operation of this store, timed and traced (see sqliteCaller). */
  protected readonly call: SqliteCall;
  /** The idempotency keys, in `journalTable` of the store's schema (see idempotency.ts). */
  protected readonly journal: SqliteIdempotencyJournal;

  /** Opens (or creates) the file and its tables. */
  protected constructor(
    file: string,
    schema: readonly SqliteSchemaStep[],
    journalTable: string,
    options: SqliteStoreOptions,
  ) {
    this.db = openSqliteDatabase(file, schema);
    this.call = sqliteCaller(this.db, options.observer);
    this.journal = new SqliteIdempotencyJournal(this.db, journalTable, options);
  }

  recall(claim: IdempotencyClaim, parent?: TraceSpan): Promise<Outcome | undefined> {
    return this.journal.recall(claim, parent);
  }

  sweepExpired(): Promise<number> {
    return this.journal.sweep();
  }

  async ping(): Promise<void> {
    // A health probe: not an operation anyone waits for, so neither timed nor traced.
    this.call(undefined, () => this.db.prepare('SELECT 1').get());
  }

  async close(): Promise<void> {
    closeSqliteDatabase(this.db);
  }
}
