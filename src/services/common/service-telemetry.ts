import { Counter, Gauge } from 'prom-client';
import { ServerCallTelemetry } from '../../common/grpc-server-telemetry.js';
import type { Logger } from '../../common/logger.js';
import { createMetricsRegistry, GrpcCallMetrics, type Registry } from '../../common/metrics.js';
import {
  DatabaseMetrics,
  type DatabaseObserver,
  type DatabaseOperationName,
  type DatabaseSystem,
  type PoolStats,
} from './database-telemetry.js';

/** Options of {@link ServiceTelemetry}. */
export interface ServiceTelemetryOptions {
  /** Prometheus metrics (default true). */
  metrics?: boolean;
  /** Each call's log lines name the caller's request id (default true). */
  requestIds?: boolean;
  /** The process's own metrics (default false: a service's main process turns them on). */
  processMetrics?: boolean;
}

/** A queue of work whose depth is worth watching (the password-hashing limiter). */
export interface QueueGauge {
  /** Calls waiting for a turn. */
  readonly waiting: number;
  /** Tasks running now. */
  readonly running: number;
}

/**
 * One service instance's telemetry: its own Prometheus registry (gRPC server calls, database time
 * and pool, the password-hash queue, and the process when asked), and the server interceptor that
 * counts calls and gives each a context naming its request (see grpc-server-telemetry.ts).
 */
export class ServiceTelemetry implements DatabaseObserver {
  readonly #options: Required<ServiceTelemetryOptions>;
  readonly #registry: Registry | undefined;
  readonly #grpc: GrpcCallMetrics | undefined;
  readonly #database: DatabaseMetrics | undefined;

  constructor(options: ServiceTelemetryOptions = {}) {
    this.#options = { metrics: true, requestIds: true, processMetrics: false, ...options };
    if (this.#options.metrics) {
      const registry = createMetricsRegistry({ processMetrics: this.#options.processMetrics });
      this.#registry = registry;
      this.#grpc = new GrpcCallMetrics(registry, 'server');
      this.#database = new DatabaseMetrics(registry);
    }
  }

  /** The registry `/metrics` serves; undefined when metrics are off. */
  get registry(): Registry | undefined {
    return this.#registry;
  }

  /**
   * The telemetry of the service's gRPC server calls: its handlers are wrapped with it, and the
   * server is built with its options (see ServerCallTelemetry).
   */
  serverCalls(log: Logger): ServerCallTelemetry {
    return new ServerCallTelemetry({ metrics: this.#grpc, requestIds: this.#options.requestIds, log });
  }

  watchPool(system: DatabaseSystem, stats: () => PoolStats): void {
    this.#database?.watchPool(system, stats);
  }

  observeOperation(system: DatabaseSystem, name: DatabaseOperationName, seconds: number): void {
    this.#database?.observeOperation(system, name, seconds);
  }

  /**
   * Reports the bound on calls in flight (calls-in-flight.ts): `shop_calls_in_flight` and
   * `shop_calls_waiting`; its refusals are in grpc_server_handled_total as ResourceExhausted.
   */
  watchCalls(calls: QueueGauge): void {
    this.#watchQueue(calls, {
      running: [
        'shop_calls_in_flight',
        "Calls of the service's own methods running now (at most --max-calls-in-flight).",
      ],
      waiting: ['shop_calls_waiting', 'Calls waiting for one of the --max-calls-in-flight slots.'],
    });
  }

  /** Reports the password-hash queue: `shop_password_hash_queue_depth` and `shop_password_hash_running`. */
  watchHashing(queue: QueueGauge): void {
    this.#watchQueue(queue, {
      running: ['shop_password_hash_running', 'Password checks and hashes running now.'],
      waiting: [
        'shop_password_hash_queue_depth',
        'Password checks and hashes waiting for a turn (Argon2id runs a bounded number at once).',
      ],
    });
  }

  /**
   * Reports members' sign-ins, read at each scrape: `shop_sign_in_checks_total`, passwords checked
   * by outcome (`failed`: a wrong password and an unknown username alike); and of the throttle of
   * failed sign-ins (sign-in-throttle.ts), `shop_sign_in_throttled_total`, sign-ins refused because
   * their account had to wait, and `shop_sign_in_failing_accounts`, accounts with failed sign-ins
   * that this instance knows of. One password tried on each of many accounts (password spraying)
   * meets no account's throttle: it shows as failed checks rising while the throttled stay flat.
   */
  watchSignIns(
    throttle: { readonly throttled: number; readonly accounts: number },
    checks: { readonly succeeded: number; readonly failed: number },
  ): void {
    if (!this.#registry) return;
    new Counter({
      name: 'shop_sign_in_checks_total',
      help: 'Sign-ins whose password was checked, by outcome (failed: a wrong password or an unknown username).',
      labelNames: ['outcome'],
      registers: [this.#registry],
      collect() {
        this.reset();
        this.inc({ outcome: 'succeeded' }, checks.succeeded);
        this.inc({ outcome: 'failed' }, checks.failed);
      },
    });
    new Counter({
      name: 'shop_sign_in_throttled_total',
      help: 'Sign-ins refused without a password check because their account had failed too often in a row.',
      registers: [this.#registry],
      collect() {
        this.reset();
        this.inc(throttle.throttled);
      },
    });
    new Gauge({
      name: 'shop_sign_in_failing_accounts',
      help: 'Accounts (known or not) with failed sign-ins in a row that this instance has seen or read from the database.',
      registers: [this.#registry],
      collect() {
        this.set(throttle.accounts);
      },
    });
  }

  /** Two gauges of a queue, read at each scrape: name and help of each. */
  #watchQueue(queue: QueueGauge, names: Record<keyof QueueGauge, [name: string, help: string]>): void {
    if (!this.#registry) return;
    for (const field of ['running', 'waiting'] as const) {
      const [name, help] = names[field];
      new Gauge({
        name,
        help,
        registers: [this.#registry],
        collect() {
          this.set(queue[field]);
        },
      });
    }
  }
}
