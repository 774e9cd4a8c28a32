import type { ServerOptions } from '@grpc/grpc-js';
import { Gauge } from 'prom-client';
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

/**
 * The distributor's metrics: its gRPC calls (Register and Watch streams are counted when they end)
 * and the registry itself, read at each scrape: `shop_registry_nodes{name,state}`,
 * `shop_registry_revision`, `shop_registry_open_streams` and `shop_registry_list_bytes`. Node names
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

  /** Reports the registry's state; `openStreams` counts the Register and Watch streams open now. */
  watchRegistry(registry: NodeRegistry, openStreams: () => number): void {
    if (!this.#registry) return;
    const registers = [this.#registry];
    new Gauge({
      name: 'shop_registry_nodes',
      help: 'Registered nodes, by name and state (serving or draining).',
      labelNames: ['name', 'state'],
      registers,
      collect() {
        this.reset();
        for (const node of registry.snapshot().nodes) {
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
