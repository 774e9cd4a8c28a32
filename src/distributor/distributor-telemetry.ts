import type { ServerOptions } from '@grpc/grpc-js';
import { Counter, Gauge } from 'prom-client';
import { ServerCallTelemetry } from '../common/grpc-server-telemetry.js';
import type { Logger } from '../common/logger.js';
import { createMetricsRegistry, GrpcCallMetrics, type Registry } from '../common/metrics.js';
import { NodeState } from '../gen/distributor.js';
import type { NodeRegistry } from './node-registry.js';

/** Options of {@link DistributorTelemetry}. */
export interface DistributorTelemetryOptions {
  /** Prometheus metrics (default true). */
  metrics?: boolean;
  /** The process's own metrics (default false: the distributor's main.ts turns them on). */
  processMetrics?: boolean;
}

/** How long a node name no longer listed is still reported, at 0, in shop_registry_nodes. */
const REMEMBER_NAMES_MS = 3_600_000;
/** At most this many node names are reported (the newest listed kept). */
const MAX_REMEMBERED_NAMES = 256;

/**
 * The distributor's metrics: its gRPC calls (Register and Watch streams are counted when they end)
 * and the registry itself, read at each scrape: `shop_registry_nodes{name,state}`,
 * `shop_registry_revision`, `shop_registry_open_streams` and `shop_registry_list_bytes`; and the new
 * streams waiting to be set up (`shop_registry_streams_waiting`) with the connections closed for
 * holding the most past their bound (`shop_registry_flooding_connections_closed_total`). Node names
 * are bounded by the registry's own limits (nodes in all and per name).
 */
export class DistributorTelemetry {
  readonly #registry: Registry | undefined;
  readonly #grpc: GrpcCallMetrics | undefined;

  constructor(options: DistributorTelemetryOptions = {}) {
    if (options.metrics ?? true) {
      this.#registry = createMetricsRegistry({ processMetrics: options.processMetrics ?? false });
      this.#grpc = new GrpcCallMetrics(this.#registry, 'server');
    }
  }

  /** The registry `/metrics` serves; undefined when metrics are off. */
  get registry(): Registry | undefined {
    return this.#registry;
  }

  /** grpc-js server options: the interceptor that counts calls, if metrics are on. */
  serverOptions(log: Logger): Pick<ServerOptions, 'interceptors'> {
    return new ServerCallTelemetry({ metrics: this.#grpc, log }).serverOptions();
  }

  /**
   * Reports the new streams waiting to be set up (`waiting`, read at each scrape), and returns what
   * counts a connection closed for holding the most of them past their bound (stream-admission.ts).
   */
  watchStreamAdmission(waiting: () => number): () => void {
    if (!this.#registry) return () => {};
    const registers = [this.#registry];
    new Gauge({
      name: 'shop_registry_streams_waiting',
      help: 'New gRPC streams waiting to be set up, a connection and an address at a time.',
      registers,
      collect() {
        this.set(waiting());
      },
    });
    const closed = new Counter({
      name: 'shop_registry_flooding_connections_closed_total',
      help: 'Connections closed because the streams waiting to be set up were over their bound and they held the most.',
      registers,
    });
    return () => closed.inc();
  }

  /** Reports the registry's state; `openStreams` counts the Register and Watch streams open now. */
  watchRegistry(registry: NodeRegistry, openStreams: () => number): void {
    if (!this.#registry) return;
    const registers = [this.#registry];
    // A name listed within the last hour stays at 0 once its last instance is gone: an alert on
    // "no serving goods" must see a 0, not a series that vanished. The oldest names go first past
    // MAX_REMEMBERED_NAMES, so that names that came and went cannot grow the series for good.
    // Names are taken from the changes as they come, not from the list at a scrape: a name whose
    // instances all came and went between two scrapes (a service in a crash loop) had no series.
    const lastListed = new Map<string, number>();
    const listed = (name: string, at: number) => {
      lastListed.delete(name);
      lastListed.set(name, at);
      if (lastListed.size > MAX_REMEMBERED_NAMES) lastListed.delete(lastListed.keys().next().value!);
    };
    const nameOfId = new Map<string, string>();
    registry.onChange((change) => {
      if (change.kind === 'added') {
        nameOfId.set(change.node.id, change.node.name);
        listed(change.node.name, performance.now());
      } else if (change.kind === 'removed') {
        const name = nameOfId.get(change.nodeId);
        nameOfId.delete(change.nodeId);
        if (name !== undefined) listed(name, performance.now());
      }
    });
    new Gauge({
      name: 'shop_registry_nodes',
      help: 'Registered nodes, by name and state (serving or draining); 0 for a name listed within the last hour.',
      labelNames: ['name', 'state'],
      registers,
      collect() {
        this.reset();
        const now = performance.now();
        const nodes = registry.snapshot().nodes;
        for (const node of nodes) listed(node.name, now);
        for (const [name, at] of lastListed) {
          if (now - at > REMEMBER_NAMES_MS || lastListed.size > MAX_REMEMBERED_NAMES) {
            lastListed.delete(name);
            continue;
          }
          this.set({ name, state: 'serving' }, 0);
          this.set({ name, state: 'draining' }, 0);
        }
        for (const node of nodes) {
          const state = node.state === NodeState.NODE_STATE_DRAINING ? 'draining' : 'serving';
          this.inc({ name: node.name, state });
        }
      },
    });
    new Gauge({
      name: 'shop_registry_revision',
      help: 'Revision of the node list: grows by one on every change.',
      registers,
      collect() {
        this.set(registry.snapshot().revision);
      },
    });
    new Gauge({
      name: 'shop_registry_open_streams',
      help: 'Register and Watch streams open now.',
      registers,
      collect() {
        this.set(openStreams());
      },
    });
    new Gauge({
      name: 'shop_registry_list_bytes',
      help: 'What the listed nodes add to an encoded node list, in bytes (bounded by the registry limits).',
      registers,
      collect() {
        this.set(registry.listBytes);
      },
    });
  }
}
