import { Gauge } from 'prom-client';
import { HistogramFamily, type HistogramSeries } from '../../common/metric-series.js';
import { DEFAULT_LATENCY_BUCKETS, type Registry, secondsSince } from '../../common/metrics.js';
import { ServiceError } from '../../common/service-error.js';
import type { TraceSpan } from '../../common/trace-span.js';
import { activeTracer } from '../../common/tracing.js';

/** Which database a service runs on. */
export type DatabaseSystem = 'sqlite' | 'mysql';

/** A connection pool's occupancy, read when metrics are scraped. */
export interface PoolStats {
  /** Connections lent out to statements or transactions. */
  readonly used: number;
  /** Connections open and free. */
  readonly idle: number;
  /** Callers waiting for a connection. */
  readonly waiting: number;
  /** The most connections the pool opens. */
  readonly max: number;
}

/**
 * One kind of database operation, as its metric and its span name it (OpenTelemetry's
 * `db.operation.name` and `db.collection.name`): a bounded set, since the statements are the code's own.
 */
export interface DatabaseOperationName {
  /** SELECT, INSERT, UPDATE, DELETE; TRANSACTION for several statements in one. */
  readonly operation: string;
  /** The table it is about; empty when the statement names none. */
  readonly collection: string;
  /** The statement, with `?` placeholders only (never values); none for a transaction. */
  readonly text?: string;
}

/** What a database needs of the service's telemetry: somewhere to report its pool and its operations. */
export interface DatabaseObserver {
  /** Reports a pool: `stats` is read at each scrape, so a busy pool costs nothing more per statement. */
  watchPool(system: DatabaseSystem, stats: () => PoolStats): void;
  /** Counts one operation that took `seconds`, whether it failed or not. */
  observeOperation(system: DatabaseSystem, name: DatabaseOperationName, seconds: number): void;
}

type QueryLabel = 'db_system_name' | 'db_operation_name' | 'db_collection_name';

/**
 * A service's database metrics, named after OpenTelemetry's database conventions:
 * `db_client_operation_duration_seconds` (the time of each operation, by back end, operation and
 * table), and the pool's `db_client_connection_count{state}`,
 * `db_client_connection_pending_requests` and `db_client_connection_max`.
 */
export class DatabaseMetrics implements DatabaseObserver {
  readonly #duration: HistogramFamily<QueryLabel>;
  readonly #registry: Registry;
  readonly #durations = new Map<string, HistogramSeries>();
  readonly #pools: { system: DatabaseSystem; stats: () => PoolStats }[] = [];

  constructor(registry: Registry) {
    this.#registry = registry;
    this.#duration = new HistogramFamily({
      name: 'db_client_operation_duration_seconds',
      help: 'Duration of database operations (a statement, or a transaction of several), waiting for a connection included.',
      labelNames: ['db_system_name', 'db_operation_name', 'db_collection_name'],
      buckets: [0.0005, 0.001, 0.0025, ...DEFAULT_LATENCY_BUCKETS],
      registers: [registry],
    });
  }

  observeOperation(system: DatabaseSystem, name: DatabaseOperationName, seconds: number): void {
    const key = `${system} ${name.operation} ${name.collection}`;
    let series = this.#durations.get(key);
    if (!series) {
      series = this.#duration.series({
        db_system_name: system,
        db_operation_name: name.operation,
        db_collection_name: name.collection,
      });
      this.#durations.set(key, series);
    }
    series.observe(seconds);
  }

  watchPool(system: DatabaseSystem, stats: () => PoolStats): void {
    const first = this.#pools.length === 0;
    this.#pools.push({ system, stats });
    if (first) this.#registerPoolGauges();
  }

  /** Every watched pool's occupancy, summed by back end (a service normally has one pool). */
  #poolTotals(): Map<DatabaseSystem, PoolStats> {
    const totals = new Map<DatabaseSystem, PoolStats>();
    for (const pool of this.#pools) {
      const stats = pool.stats();
      const total = totals.get(pool.system) ?? { used: 0, idle: 0, waiting: 0, max: 0 };
      totals.set(pool.system, {
        used: total.used + stats.used,
        idle: total.idle + stats.idle,
        waiting: total.waiting + stats.waiting,
        max: total.max + stats.max,
      });
    }
    return totals;
  }

  #registerPoolGauges(): void {
    const totals = (): Map<DatabaseSystem, PoolStats> => this.#poolTotals();
    new Gauge({
      name: 'db_client_connection_count',
      help: 'Connections of the database pool, by state (used: lent to a statement; idle: open and free).',
      labelNames: ['db_system_name', 'state'],
      registers: [this.#registry],
      collect() {
        for (const [system, pool] of totals()) {
          this.set({ db_system_name: system, state: 'used' }, pool.used);
          this.set({ db_system_name: system, state: 'idle' }, pool.idle);
        }
      },
    });
    new Gauge({
      name: 'db_client_connection_pending_requests',
      help: 'Callers waiting for a free connection of the database pool.',
      labelNames: ['db_system_name'],
      registers: [this.#registry],
      collect() {
        for (const [system, pool] of totals()) this.set({ db_system_name: system }, pool.waiting);
      },
    });
    new Gauge({
      name: 'db_client_connection_max',
      help: 'The most connections the database pool opens.',
      labelNames: ['db_system_name'],
      registers: [this.#registry],
      collect() {
        for (const [system, pool] of totals()) this.set({ db_system_name: system }, pool.max);
      },
    });
  }
}

const OPERATION = /^\s*([A-Za-z]+)/;
const TARGET = /\b(?:FROM|INTO|UPDATE|TABLE)\s+`?([A-Za-z0-9_]+)/i;

/** Statements seen so far: the code's own constants, a few dozen (the cap only guards a mistake). */
const statementNames = new Map<string, DatabaseOperationName>();
const MAX_KNOWN_STATEMENTS = 1_000;

/** The operation a statement is: its verb and the first table it names (e.g. SELECT goods). */
export function operationOfStatement(statement: string): DatabaseOperationName {
  let name = statementNames.get(statement);
  if (name) return name;
  name = {
    operation: OPERATION.exec(statement)?.[1]?.toUpperCase() ?? 'OTHER',
    collection: TARGET.exec(statement)?.[1] ?? '',
    text: statement,
  };
  if (statementNames.size < MAX_KNOWN_STATEMENTS) statementNames.set(statement, name);
  return name;
}

/** The operation of a transaction about `table` (and what is written with it). */
export function transactionOn(table: string): DatabaseOperationName {
  return { operation: 'TRANSACTION', collection: table };
}

/**
 * The span of one database operation, when tracing is on and the operation is made for a sampled
 * call: a child of `parent`, the call's server span, which the handler hands down to its store only
 * when the call is sampled (see traceParentOf).
 */
function startDatabaseSpan(
  system: DatabaseSystem,
  name: DatabaseOperationName,
  parent: TraceSpan | undefined,
): TraceSpan | undefined {
  if (!parent) return undefined;
  const tracer = activeTracer();
  if (!tracer) return undefined;
  return tracer.startSpan(
    name.collection ? `${name.operation} ${name.collection}` : name.operation,
    'client',
    parent,
    {
      'db.system.name': system,
      'db.operation.name': name.operation,
      ...(name.collection ? { 'db.collection.name': name.collection } : {}),
      // Statements carry `?` placeholders only, never values (see mysql-database.ts).
      ...(name.text ? { 'db.query.text': name.text } : {}),
    },
  );
}

/**
 * Times one asynchronous database operation for the service's metrics, and traces it as a child of
 * `parent` (the span of the call it is made for) when that call is traced. Health probes are not
 * operations anyone waits for: they do not come through here.
 */
export async function databaseOperation<T>(
  observer: DatabaseObserver | undefined,
  system: DatabaseSystem,
  name: DatabaseOperationName,
  work: () => Promise<T>,
  parent: TraceSpan | undefined,
): Promise<T> {
  const span = startDatabaseSpan(system, name, parent);
  if (!observer && !span) return work();
  const startedAt = performance.now();
  try {
    return await work();
  } catch (error) {
    if (span && failsOperation(error)) span.fail(errorKind(error));
    throw error;
  } finally {
    observer?.observeOperation(system, name, secondsSince(startedAt));
    span?.end();
  }
}

/** {@link databaseOperation} for a synchronous driver (better-sqlite3). */
export function databaseOperationSync<T>(
  observer: DatabaseObserver | undefined,
  system: DatabaseSystem,
  name: DatabaseOperationName,
  work: () => T,
  parent: TraceSpan | undefined,
): T {
  const span = startDatabaseSpan(system, name, parent);
  if (!observer && !span) return work();
  const startedAt = performance.now();
  try {
    return work();
  } catch (error) {
    if (span && failsOperation(error)) span.fail(errorKind(error));
    throw error;
  } finally {
    observer?.observeOperation(system, name, secondsSince(startedAt));
    span?.end();
  }
}

/**
 * Whether an error thrown by an operation's work is the operation's failure: not a caller's mistake
 * found inside a transaction (an Idempotency-Key reused with another request, a name taken), which
 * rolls it back as the answer, as the call's server span is not failed for it either.
 */
function failsOperation(error: unknown): boolean {
  return !(error instanceof ServiceError) || error.isServerFault;
}

/**
 * A failure as a span may show it: the driver's code or the error's class, never its message, which
 * can quote a value (a duplicate username, say).
 */
function errorKind(error: unknown): string {
  const { code, name } = (error ?? {}) as { code?: unknown; name?: unknown };
  const cause = (error as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  return String(typeof cause === 'string' ? cause : typeof code === 'string' ? code : (name ?? 'error'));
}
