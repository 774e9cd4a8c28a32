import type { Node } from '../gen/distributor.js';
import type { RegistrationClient } from '../registry-client/registration-client.js';
import type { GatewayView } from './gateway-view.js';
import { NodeHistory } from './node-history.js';
import type { RouteRates } from './route-rates.js';

/**
 * What `/readyz` and the status page say of the gateway: whether it is ready, and why not, from its
 * registration, its node list, its routes and the reach of their instances; and the nodes it has
 * routed to, with each route's traffic over the last minute (the rates GatewayTelemetry counts).
 */
export class GatewayHealth {
  readonly #view: GatewayView;
  /** The status page's rates, counted by GatewayTelemetry; undefined when metrics are off. */
  readonly #rates: RouteRates | undefined;
  readonly #nodes = new NodeHistory();
  #registration: RegistrationClient | undefined;
  /** When the gateway lost the distributor while holding a node list (performance.now()); undefined while registered. */
  #registrationLostAt: number | undefined;

  constructor(view: GatewayView, rates: RouteRates | undefined) {
    this.#view = view;
    this.#rates = rates;
  }

  /** Follows the gateway's registration: whether, and since when, it is connected. */
  watch(registration: RegistrationClient): void {
    this.#registration = registration;
    registration.on('registered', () => {
      this.#registrationLostAt = undefined;
    });
    registration.on('disconnected', () => {
      if (this.#view.revision() !== undefined) this.#registrationLostAt ??= performance.now();
    });
  }

  /** The node list the gateway now routes to; `kept` are nodes kept through a distributor restart. */
  nodesApplied(nodes: readonly Node[], kept: readonly Node[]): void {
    this.#nodes.update(nodes, Date.now(), kept);
  }

  /**
   * Readiness: registered (or the distributor lost less than restartGraceMs ago), a node list
   * received, a route known, and every known route with a serving instance, but for routes no
   * instance has served for longer than unservedRouteReadyAfterMs (one service's long outage, or its
   * retirement, would otherwise hold every gateway out of its load balancer: such routes are still
   * answered 503), as long as some route serves.
   */
  readiness(nowMs = performance.now()): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    if (this.#view.stopping()) reasons.push('the gateway is stopping');
    if (this.#registration?.nodeId === undefined) {
      const lostAt = this.#registrationLostAt;
      if (lostAt === undefined || nowMs - lostAt >= this.#view.restartGraceMs()) {
        reasons.push('not registered with the distributor');
      }
    }
    if (this.#view.revision() === undefined) {
      reasons.push('no node list received from the distributor yet');
    } else {
      const routes = this.#view.routes();
      if (routes.length === 0) reasons.push('no service has registered a route yet');
      const longUnserved = nowMs - this.#view.unservedRouteReadyAfterMs();
      let serving = 0;
      let outOfReach = 0;
      for (const route of routes) {
        if (route.serving.length > 0) {
          // Listed but out of this gateway's reach, every one (a partition between this gateway and
          // the service only): the route fails every call here, as if none served it; held by the
          // same rule, from when the last of them became unreachable.
          const since = this.#unreachableSince(route.serving);
          if (since === undefined) serving++;
          else outOfReach++;
          if (since !== undefined && since > longUnserved) {
            reasons.push(`no reachable instance for ${route.method} ${route.template}`);
          }
        } else if (route.unservedSince === undefined || route.unservedSince > longUnserved) {
          reasons.push(`no serving instance for ${route.method} ${route.template}`);
        }
      }
      // Instances listed as serving but out of reach are the path's fault, not the service's: say
      // so, or an operator looks for a service the distributor (and /status) shows as serving.
      if (routes.length > 0 && serving === 0 && reasons.length === 0)
        reasons.push(
          outOfReach > 0
            ? 'no route has a serving instance this gateway can reach'
            : 'no route has a serving instance',
        );
    }
    return { ready: reasons.length === 0, reasons };
  }

  /** Since when every one of `nodeIds` has been unreachable from this gateway; undefined if one is not. */
  #unreachableSince(nodeIds: readonly string[]): number | undefined {
    let latest = 0;
    for (const nodeId of nodeIds) {
      const since = this.#view.unreachableSince(nodeId);
      if (since === undefined) return undefined;
      latest = Math.max(latest, since);
    }
    return latest;
  }

  /** What the status page shows, as JSON. */
  status(nowMs = Date.now()): GatewayStatus {
    const totals = this.#rates?.totals(nowMs);
    const window = this.#rates?.windowSeconds ?? 60;
    const covered = this.#rates?.coveredSeconds(nowMs) ?? window;
    const rateOf = (key: string): RouteStatus['rate'] => {
      const total = totals?.get(key);
      return {
        requests: total?.requests ?? 0,
        errors: total?.errors ?? 0,
        requestsPerSecond: (total?.requests ?? 0) / covered,
        errorsPerSecond: (total?.errors ?? 0) / covered,
      };
    };
    const routes: RouteStatus[] = this.#view.routes().map((route) => ({
      method: route.method,
      path: route.template,
      listed: true,
      serving: route.serving,
      draining: route.draining,
      rate: rateOf(`${route.method} ${route.template}`),
      ...(route.serving.length > 0 && route.serving.every((nodeId) => this.#view.outOfReach(nodeId))
        ? { outOfReach: true as const }
        : {}),
    }));
    const listed = new Map(routes.map((route) => [`${route.method} ${route.path}`, route]));
    // Traffic to routes no longer listed, and to no route at all, still shows. HEAD has a row of its
    // own (its label), served by the instances of the GET route it is routed to.
    for (const key of totals?.keys() ?? []) {
      if (listed.has(key)) continue;
      const separator = key.indexOf(' ');
      const method = key.slice(0, separator);
      const path = key.slice(separator + 1);
      const asGet = method === 'HEAD' ? listed.get(`GET ${path}`) : undefined;
      routes.push({
        method,
        path,
        listed: asGet !== undefined,
        serving: asGet?.serving ?? [],
        draining: asGet?.draining ?? [],
        rate: rateOf(key),
      });
    }
    const offsetMs = this.#registration?.distributorClockOffsetMs;
    return {
      now: new Date(nowMs).toISOString(),
      ...(offsetMs === undefined ? {} : { distributorClockOffsetMs: offsetMs }),
      revision: this.#view.revision() ?? null,
      registered: this.#registration?.nodeId !== undefined,
      readiness: this.readiness(),
      metrics: this.#rates !== undefined,
      windowSeconds: window,
      nodes: this.#nodes.describe(nowMs, offsetMs ?? 0).map((node) => {
        if (node.state === 'gone') return node;
        const since = this.#view.unreachableSince(node.id);
        if (since === undefined) {
          const connection = this.#view.connection(node.id);
          if (connection === 'connected') return { ...node, connected: true as const };
          if (connection === 'idle') return { ...node, idle: true as const };
          // Failing before the pool has marked it unreachable (the same state change, told to it next).
          return connection === undefined ? node : { ...node, connecting: true as const };
        }
        const unreachableSeconds = Math.round((performance.now() - since) / 1000);
        const reason = this.#view.unreachableReason(node.id);
        const unreachable = {
          ...node,
          unreachableSeconds,
          ...(reason === undefined ? {} : { unreachableReason: reason }),
        };
        return this.#view.outOfReach(node.id) ? { ...unreachable, outOfReach: true as const } : unreachable;
      }),
      routes,
    };
  }
}

/** One route on the status page. */
export interface RouteStatus {
  readonly method: string;
  readonly path: string;
  /**
   * Whether the gateway routes it: false for traffic to no route (`unmatched`), to a method the
   * path does not have (a 405), or to a route no longer listed, which the page shows as "not
   * routed" rather than as a route with no serving instance.
   */
  readonly listed: boolean;
  readonly serving: readonly string[];
  readonly draining: readonly string[];
  /** Over the last `windowSeconds`. */
  readonly rate: { requests: number; errors: number; requestsPerSecond: number; errorsPerSecond: number };
  /** Every serving instance is out of this gateway's reach: its requests are answered 503 at once. */
  readonly outOfReach?: true;
}

/** The status page's data (`GET /status.json`). */
export interface GatewayStatus {
  readonly now: string;
  /**
   * How far the distributor's clock is ahead of this gateway's (behind if negative), in ms, as its
   * last acknowledgement told; absent before one, or from a distributor that does not tell.
   */
  readonly distributorClockOffsetMs?: number;
  readonly revision: number | null;
  readonly registered: boolean;
  readonly readiness: { ready: boolean; reasons: string[] };
  /** Whether rates are counted (METRICS=on). */
  readonly metrics: boolean;
  readonly windowSeconds: number;
  readonly nodes: ReturnType<NodeHistory['describe']>;
  readonly routes: RouteStatus[];
}
