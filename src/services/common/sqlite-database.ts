import { accessSync, closeSync, constants, openSync, statSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { makeFolder } from '../../common/make-folder.js';
import { ServiceError } from '../../common/service-error.js';
import type { TraceSpan } from '../../common/trace-span.js';
import { databaseFailure, databaseUnavailable } from './database-errors.js';
import {
  type DatabaseObserver,
  type DatabaseOperationName,
  databaseOperationSync,
  operationOfStatement,
} from './database-telemetry.js';
import type { IdempotencyOptions } from './idempotency.js';

export type { Database } from 'better-sqlite3';

/** How a service's SQLite store is opened, besides its file. */
export interface SqliteStoreOptions {
  /** Retention and clock of the store's idempotency keys (see idempotency.ts). */
  idempotency?: IdempotencyOptions;
  /** Told of every operation, so that its time shows in the service's metrics. */
  observer?: DatabaseObserver;
}

/** How long a statement waits for another process's write lock before it fails. */
const BUSY_TIMEOUT_MS = 2_000;

/**
 * The size the WAL is cut back to when SQLite starts it over. A reader holding one snapshot (a sqlite3
 * shell left in a transaction, a backup) keeps it from starting over, and it grows by every write
 * meanwhile (6,000 keyed CreateGoods: 137 MB); without a limit it kept that size on the disk while
 * any instance had the file open, however short the WAL was again. Twice what SQLite's autocheckpoint
 * (1,000 pages of 4 KiB) lets it reach otherwise, so that a store in its usual use is never cut.
 */
const WAL_SIZE_LIMIT_BYTES = 8 * 1024 * 1024;

/**
 * Opens (creating it and its folder if needed) one service's SQLite file and creates its tables.
 *
 * WAL lets readers run while one writer writes, and the busy timeout lets several instances of a
 * service share the file (design: port 0 runs several at once) by waiting for each other's short
 * writes instead of failing at once. better-sqlite3 is synchronous, so a wait blocks the event loop:
 * the timeout is kept short.
 */
export function openSqliteDatabase(file: string, schema: readonly SqliteSchemaStep[]): Database.Database {
  makeFolder(dirname(file), 0o700);
  createPrivately(file);
  assertWritable(file);
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    // WAL's recommended durability: no fsync per commit, never a corrupt file; only a power loss
    // (not a crash of the process) can lose the last commits.
    db.pragma('synchronous = NORMAL');
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    // IMMEDIATE: the write lock first, waited for as any write is. A deferred transaction reads
    // first, and an instance starting beside this one that writes meanwhile (adds a missing column
    // to a file an older build made) leaves this one's snapshot stale: its own write then fails at
    // once (SQLITE_BUSY_SNAPSHOT), and the service with it, at its start.
    db.transaction(() => {
      for (const step of schema) {
        if (typeof step === 'string') db.exec(step);
        else step(db);
      }
    }).immediate();
    openedFiles.set(db, filesOf(db));
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * Closes a store's database. When its file was replaced at its path while it was open (a backup
 * moved into place), SQLite closes without a checkpoint and leaves the WAL and its index at their
 * paths, and the next start replayed that WAL, pages of the replaced file, over the new one: the
 * writes made since the backup came back, or, after a checkpoint, the file was corrupt (measured:
 * `PRAGMA integrity_check` failed, and the service served it). The two, when still the ones this
 * connection opened, are removed, once what they hold is in the replaced file (checkpointIntoOpenFile).
 * A file deleted or moved away keeps its WAL, as it may be put back.
 */
export function closeSqliteDatabase(db: Database.Database): void {
  const [file, ...journal] = openedFiles.get(db) ?? [];
  if (file && !isAt(file)) checkpointIntoOpenFile(db);
  db.close();
  if (!file) return;
  try {
    if (isAt(file) || !statSync(file.path, { throwIfNoEntry: false })) return;
    for (const opened of journal) if (isAt(opened)) removeIfThere(opened.path);
  } catch (error) {
    // rmSync's words for a folder it may not write (EPERM: "ENOTDIR, scandir …-wal") named no fault.
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown';
    throw new Error(
      `the SQLite file ${file.path} was replaced while this service had it open, and the replaced file's ${file.path}-wal and -shm could not be removed (${code}): delete them before a service opens ${file.path} again, or it replays them over that file`,
      { cause: error },
    );
  }
}

function removeIfThere(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

/**
 * Copies the WAL into the file this connection has open, wherever that file is now, before a close
 * that will not (SQLite skips its checkpoint for a file no longer at its path). The usual restore
 * keeps the running file (`mv goods.sqlite goods.old; mv backup goods.sqlite`): without this, the
 * WAL removed at the stop held every write since the last checkpoint, and goods.old, put back, had
 * lost them (measured: all of them). PASSIVE waits for nobody: a frame another instance still on the
 * replaced file reads is copied at that instance's stop, through its own handles, and a file system
 * turned read-only fails it; the close goes on either way. An instance that opened the copy before
 * every instance of the replaced file stopped shares its WAL (the README says not to): its writes
 * then go into the replaced file, not the copy.
 */
function checkpointIntoOpenFile(db: Database.Database): void {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // What is left in the WAL is what the replaced file loses; the stop is not held up for it.
  }
}

/** The files of each open database when it was opened (see closeSqliteDatabase). */
const openedFiles = new WeakMap<Database.Database, readonly FileIdentity[]>();

function isAt({ path, dev, ino }: FileIdentity): boolean {
  const now = statSync(path, { throwIfNoEntry: false });
  return now?.dev === dev && now.ino === ino;
}

/** Which file a path named when the database was opened. */
interface FileIdentity {
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
}

function identityOf(path: string): FileIdentity | undefined {
  const found = statSync(path, { throwIfNoEntry: false });
  return found && { path, dev: found.dev, ino: found.ino };
}

/**
 * The files of an open database: its file, WAL and WAL index (-shm). The WAL and its index exist
 * from the first transaction on (openSqliteDatabase runs one) and stay at their paths while this
 * connection is open (SQLite deletes them when the last connection closes); a file system without
 * WAL has none.
 */
function filesOf(db: Database.Database): readonly FileIdentity[] {
  return [db.name, `${db.name}-wal`, `${db.name}-shm`].flatMap((path) => identityOf(path) ?? []);
}

/**
 * Throws when the database's file or WAL is no longer at its path (deleted, or replaced by another
 * file): SQLite goes on writing to the open, unlinked file without an error, so every write would be
 * answered OK and be gone at the next start. SQLite refuses such writes itself only in rollback mode
 * (SQLITE_READONLY_DBMOVED), not in WAL mode; the error takes its code. A -shm deleted (as a "stale
 * lock") loses nothing by itself, but an instance started next makes a new one, and two instances
 * writing one WAL by two indexes overwrite each other's commits.
 */
function assertFilesInPlace(opened: readonly FileIdentity[]): void {
  for (const { path, dev, ino } of opened) {
    const now = statSync(path, { throwIfNoEntry: false });
    if (now?.dev === dev && now.ino === ino) continue;
    throw Object.assign(
      new Error(
        `the SQLite file ${path} was ${now ? 'replaced' : 'deleted or moved away'} after it was opened: writes would be lost; restart the service to open the file now at that path`,
      ),
      { code: 'SQLITE_READONLY_DBMOVED' },
    );
  }
}

/** The largest id the contract carries: ids are int32 in services.proto. */
const LARGEST_ID = 2_147_483_647;

/**
 * The trigger that refuses a row of `table` whose AUTOINCREMENT id passes what the contract carries:
 * SQLite counts on to 2^63, and such a row would be stored, answered 500 (its id does not encode),
 * and make every list that holds it fail. RAISE(ABORT) undoes the insert and the sequence's step.
 */
export function sqliteIdLimit(table: string): string {
  return `CREATE TRIGGER IF NOT EXISTS ${table}_ids_within_int32 AFTER INSERT ON ${table}
    WHEN NEW.id > ${LARGEST_ID}
    BEGIN SELECT RAISE(ABORT, '${table}: every id up to ${LARGEST_ID}, the largest the contract carries, is used'); END`;
}

/** One step of a store's schema: a statement, or a change that must look at the file first. */
export type SqliteSchemaStep = string | ((db: Database.Database) => void);

/**
 * Adds to `table` those of `columns` (name → definition) it lacks: a file made by a build from
 * before they were added keeps its table as it was (CREATE TABLE IF NOT EXISTS leaves it), and the
 * statements that name them would fail. Each definition needs a DEFAULT for the rows already there.
 */
export function sqliteColumnsAdded(
  table: string,
  columns: Readonly<Record<string, string>>,
): SqliteSchemaStep {
  return (db) => {
    const present = new Set(
      db.prepare<[], string>(`SELECT name FROM pragma_table_info('${table}')`).pluck().all(),
    );
    for (const [name, definition] of Object.entries(columns)) {
      if (!present.has(name)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${name} ${definition}`);
    }
  };
}

/**
 * Creates `file` empty, readable by this user only, unless it exists: members' holds password hashes,
 * and SQLite gives its -wal and -shm files the mode of the database file. An empty file is a new
 * database to SQLite; one that exists keeps the mode its owner gave it.
 */
function createPrivately(file: string): void {
  try {
    closeSync(openSync(file, 'wx', 0o600));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

/**
 * Throws EACCES or EROFS when this process cannot write the file, or its -wal or -shm if there: SQLite
 * would open it read-only without a word, and with tables already there nothing at the start writes,
 * so the service said SERVING and failed every write (500). Thrown here, the start is refused, naming
 * the file (bad configuration: exit 2).
 */
function assertWritable(file: string): void {
  for (const path of [file, `${file}-wal`, `${file}-shm`]) {
    try {
      accessSync(path, constants.W_OK);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
}

/**
 * Runs one synchronous SQLite operation of a store, named for its metric and span (undefined for a
 * health probe, which is neither timed nor traced), traced as a child of `parent` (the span of the
 * call it is made for) when that call is traced, and turns its failure into a ServiceError: a
 * file that cannot be used now (locked by another process past the busy timeout, read-only, on a
 * full disk: see UNAVAILABLE_PREFIXES) is UNAVAILABLE (trying again later may work); anything else
 * is INTERNAL. The driver's error stays in `cause`, for the log only.
 *
 * Before anything but a SELECT (a write, or a health probe), it checks that the file is still the one
 * opened: a deleted or replaced file is UNAVAILABLE, and the probe turns the instance NOT_SERVING, so
 * no write is acknowledged that a restart would lose. A SELECT is not checked: it loses nothing, and a
 * stat per read would slow the busiest calls. The health probe also checks that the files can still
 * be written at their paths (see assertPathsWritable). An operation that meets a damaged file
 * (SQLITE_CORRUPT, SQLITE_NOTADB) is UNAVAILABLE too, and marks the file so that the probe checks it
 * whole before it passes again (see damagedDatabases).
 */
export type SqliteCall = <T>(
  name: DatabaseOperationName | undefined,
  operation: () => T,
  parent?: TraceSpan,
) => T;

/**
 * The {@link SqliteCall} of a store on `db` (just opened by openSqliteDatabase: its files are taken
 * as they are now) whose operations `observer` times.
 */
export function sqliteCaller(db: Database.Database, observer: DatabaseObserver | undefined): SqliteCall {
  const opened = filesOf(db);
  const tables = new TableCheck(db);
  return (name, operation, parent) => {
    try {
      if (name?.operation !== 'SELECT') assertFilesInPlace(opened);
      if (name === undefined) {
        assertPathsWritable(opened);
        tables.assertPresent();
        if (damagedDatabases.has(db)) assertWholeAgain(db);
      }
      return name === undefined
        ? operation()
        : databaseOperationSync(observer, 'sqlite', name, operation, parent);
    } catch (error) {
      if (error instanceof ServiceError) throw error;
      const code = String((error as { code?: unknown }).code ?? '');
      if (isDamage(code)) {
        // Every store and journal on this connection (each has its own caller) shares the mark.
        damagedDatabases.add(db);
        throw databaseUnavailable(damageOf(db.name, code, error));
      }
      if (UNAVAILABLE_PREFIXES.some((prefix) => code.startsWith(prefix)) || isMissingTable(error)) {
        throw databaseUnavailable(error);
      }
      throw databaseFailure(error);
    }
  };
}

/**
 * The open databases whose file a call or a probe found damaged (SQLITE_CORRUPT, SQLITE_NOTADB:
 * pages overwritten under the running store by a failing disk or a stray write), until
 * the health probe finds the file whole again. The probe's own SELECT 1 and its look at the table
 * list read no page of the tables, so without the mark the instance stayed SERVING, and a gateway
 * and a load balancer sent it traffic that every call touching the damage failed.
 */
const damagedDatabases = new WeakSet<Database.Database>();

/** SQLite's codes for a file whose pages are not a database: a fault of the file, not of a request. */
function isDamage(code: string): boolean {
  return code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB';
}

/**
 * The error logged for a damaged file (a caller is told "Database unavailable" only): it names the
 * file and what the operator does, and keeps SQLite's code, which the log limiter counts it by.
 */
function damageOf(file: string, code: string, error: unknown): Error {
  // SQLite's own words follow in the log: pino writes a cause's message after the error's.
  return Object.assign(
    new Error(
      `the SQLite file ${file} is damaged (${code}): the service does not serve until it is whole again; stop it, restore the file from a backup (without the damaged file's -wal and -shm) and start it again`,
      { cause: error },
    ),
    { code },
  );
}

/**
 * Checks a file marked damaged, by the health probe only: `PRAGMA quick_check(1)` reads every page,
 * so it runs while the mark is there, never on the probe of a whole file (every 2 s on a big file it
 * would block the event loop for as long as the file takes to read). Pages cached from before are let
 * go first, so that the check (and the calls after it) read the file as it is now. Clears the mark
 * when the file is whole again (put back as it was, in place); throws SQLITE_CORRUPT while it is not.
 */
function assertWholeAgain(db: Database.Database): void {
  db.pragma('shrink_memory');
  const verdict = db.pragma('quick_check(1)', { simple: true });
  if (verdict !== 'ok') {
    throw Object.assign(new Error(`quick_check: ${String(verdict)}`), { code: 'SQLITE_CORRUPT' });
  }
  damagedDatabases.delete(db);
}

/**
 * The tables of an open database, as they were when its store was made (openSqliteDatabase has made
 * them all), looked for by every health probe: one dropped or renamed away by hand (the sqlite3
 * shell, a migration) turns the instance NOT_SERVING until it is back, as on MySQL. It is not made
 * again empty, which would answer as if every row were gone.
 */
class TableCheck {
  readonly #expected: readonly string[];
  readonly #present: Database.Statement<[], string>;

  constructor(db: Database.Database) {
    this.#present = db
      .prepare<[], string>("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
      .pluck();
    this.#expected = this.#present.all();
  }

  assertPresent(): void {
    const present = new Set(this.#present.all());
    const missing = this.#expected.find((table) => !present.has(table));
    if (missing !== undefined) {
      throw Object.assign(new Error(`no such table: ${missing}`), { code: 'SQLITE_ERROR' });
    }
  }
}

/**
 * A statement that met a table dropped or renamed away under the running store: the operator's doing,
 * not the request's, and nothing was written, so UNAVAILABLE (503), as MySQL's ER_NO_SUCH_TABLE is.
 * SQLite says it with its generic code, and so by its message.
 */
function isMissingTable(error: unknown): boolean {
  return (
    error instanceof Error &&
    (error as { code?: unknown }).code === 'SQLITE_ERROR' &&
    error.message.startsWith('no such table: ')
  );
}

/**
 * SQLite codes (and their extended forms) that say the file cannot be used now, for a reason no
 * request caused, so that trying again later may work: UNAVAILABLE, not INTERNAL.
 * - BUSY, LOCKED: another process holds the lock past the busy timeout.
 * - READONLY: the file cannot be written (DBMOVED: replaced under us, see assertFilesInPlace).
 * - FULL: the disk (or its quota) is full; the failed transaction is rolled back, nothing
 *   acknowledged is lost, and writes work again once there is room.
 * - IOERR: the file system refused a read or write; a file system the kernel turned read-only
 *   under a running store (ext4's errors=remount-ro) shows as SQLITE_IOERR_WRITE, not READONLY.
 * EROFS and EACCES come from the health probe's own check (see assertPathsWritable).
 */
const UNAVAILABLE_PREFIXES = [
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_READONLY',
  'SQLITE_FULL',
  'SQLITE_IOERR',
  'EROFS',
  'EACCES',
];

/**
 * Throws EROFS (or EACCES) when a file of the open database can no longer be written at its path:
 * its file system was remounted read-only. Checked by the health probe only, which then turns the
 * instance NOT_SERVING, as a moved file does: the fault is this host's, an operator has to act, and
 * another instance (on another disk) can take the writes; the instance would not start on such a
 * file either (assertWritable). A stat-like call, so the probe still writes nothing. A file system
 * the kernel forced read-only after an I/O error may still pass here (Linux marks the superblock,
 * not the mount): then every write is UNAVAILABLE while health stays SERVING.
 */
function assertPathsWritable(opened: readonly FileIdentity[]): void {
  for (const { path } of opened) accessSync(path, constants.W_OK);
}

/** The operation a prepared statement makes (e.g. SELECT goods). */
export function operationOf(statement: { readonly source: string }): DatabaseOperationName {
  return operationOfStatement(statement.source);
}
