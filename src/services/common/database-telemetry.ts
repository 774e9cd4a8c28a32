import { Gauge, Histogram } from 'prom-client';
import { callTelemetryOf } from '../../common/grpc-server-telemetry.js';
import { DEFAULT_LATENCY_BUCKETS, type Registry, secondsSince } from '../../common/metrics.js';
import { currentCallContext } from '../../common/request-context.js';
import { activeTracer, type TraceSpan } from '../../common/tracing.js';

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

/** What a database needs of the service's telemetry: somewhere to report its pool. */
export interface DatabaseObserver {
  /** Reports a pool: `stats` is read at each scrape, so a busy pool costs nothing more per statement. */
  watchPool(system: DatabaseSystem, stats: () => PoolStats): void;
}

type QueryLabel = 'db_system_name' | 'grpc_method';

/**
 * A service's database metrics, named after OpenTelemetry's database conventions:
 * `db_client_operation_duration_seconds` (the time a call spends in the database, by back end and
 * by the gRPC method that asked), and the pool's `db_client_connection_count{state}`,
 * `db_client_connection_pending_requests` and `db_client_connection_max`.
 */
export class DatabaseMetrics implements DatabaseObserver {
  readonly #duration: Histogram<QueryLabel>;
  readonly #registry: Registry;
  readonly #labels = new Map<string, Record<QueryLabel, string>>();
  readonly #pools: { system: DatabaseSystem; stats: () => PoolStats }[] = [];

  constructor(registry: Registry) {
    this.#registry = registry;
    this.#duration = new Histogram({
      name: 'db_client_operation_duration_seconds',
      help: 'Duration of database operations made for a call (one store operation: a statement or a transaction).',
      labelNames: ['db_system_name', 'grpc_method'],
      buckets: [0.0005, 0.001, 0.0025, ...DEFAULT_LATENCY_BUCKETS],
      registers: [registry],
    });
  }

  /** Counts one operation of `seconds`. */
  observe(system: DatabaseSystem, method: string, seconds: number): void {
    const key = `${system} ${method}`;
    let labels = this.#labels.get(key);
    if (!labels) {
      labels = { db_system_name: system, grpc_method: method };
      this.#labels.set(key, labels);
    }
    this.#duration.observe(labels, seconds);
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

/** What a service hangs on each call's context for its database work. */
export interface ServiceCallExtra {
  readonly database: DatabaseMetrics | undefined;
}

/** The call being served's database telemetry: its metrics, and its span to parent a database span. */
function currentDatabaseTelemetry():
  | { metrics: DatabaseMetrics | undefined; span: TraceSpan | undefined; method: string }
  | undefined {
  const context = currentCallContext();
  const telemetry = callTelemetryOf(context);
  if (!context || !telemetry) return undefined;
  const metrics = (telemetry.extra as ServiceCallExtra | undefined)?.database;
  if (!metrics && !telemetry.span) return undefined;
  return { metrics, span: telemetry.span, method: context.method };
}

const OPERATION = /^\s*([A-Za-z]+)/;
const TARGET = /\b(?:FROM|INTO|UPDATE|TABLE)\s+`?([A-Za-z0-9_]+)/i;

/** The span of one database operation, a child of the call's server span. */
function startDatabaseSpan(
  parent: TraceSpan,
  system: DatabaseSystem,
  method: string,
  statement: string | undefined,
): TraceSpan {
  const tracer = activeTracer()!;
  const operation = statement === undefined ? undefined : OPERATION.exec(statement)?.[1]?.toUpperCase();
  const target = statement === undefined ? undefined : TARGET.exec(statement)?.[1];
  const name = operation ? `${operation}${target ? ` ${target}` : ''}` : `${system} ${method}`;
  return tracer.startSpan(name, 'client', parent, {
    'db.system.name': system,
    ...(operation ? { 'db.operation.name': operation } : {}),
    ...(target ? { 'db.collection.name': target } : {}),
    // Statements carry `?` placeholders only, never values (see mysql-database.ts).
    ...(statement ? { 'db.query.text': statement } : {}),
    'rpc.method': method,
  });
}

/**
 * Times one asynchronous database operation made for the call being served (none outside a call:
 * health probes and sweeps are not a caller's wait), and traces it when tracing is on.
 * `statement` is the SQL with placeholders, when there is one statement.
 */
export async function databaseOperation<T>(
  system: DatabaseSystem,
  statement: string | undefined,
  work: () => Promise<T>,
): Promise<T> {
  const telemetry = currentDatabaseTelemetry();
  if (!telemetry) return work();
  const span = telemetry.span && startDatabaseSpan(telemetry.span, system, telemetry.method, statement);
  const startedAt = performance.now();
  try {
    return await work();
  } catch (error) {
    span?.fail(errorKind(error));
    throw error;
  } finally {
    telemetry.metrics?.observe(system, telemetry.method, secondsSince(startedAt));
    span?.end();
  }
}

/** {@link databaseOperation} for a synchronous driver (better-sqlite3). */
export function databaseOperationSync<T>(system: DatabaseSystem, work: () => T): T {
  const telemetry = currentDatabaseTelemetry();
  if (!telemetry) return work();
  const span = telemetry.span && startDatabaseSpan(telemetry.span, system, telemetry.method, undefined);
  const startedAt = performance.now();
  try {
    return work();
  } catch (error) {
    span?.fail(errorKind(error));
    throw error;
  } finally {
    telemetry.metrics?.observe(system, telemetry.method, secondsSince(startedAt));
    span?.end();
  }
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
