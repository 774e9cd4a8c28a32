import { formatHostPort } from '../common/config.js';
import { type Logger, silentLogger } from '../common/logger.js';
import { type Node, NodeState, type Snapshot } from '../gen/distributor.js';
import type { CallPlan } from './call-plan.js';
import type { InstancePool, Upstream } from './instance-pool.js';
import { PlanCache } from './plan-cache.js';

/** One node serving one route. */
export interface Instance {
  /** The node's id, "name@host:port". */
  readonly nodeId: string;
  readonly upstream: Upstream;
  /** How to call this node for this route (shared by nodes that registered the same descriptors). */
  readonly plan: CallPlan;
}

/**
 * A REST route and the instances that serve it. It outlives snapshots (its round-robin position
 * carries over); each snapshot replaces its instance lists.
 */
export class Route {
  /** Instances that take new requests, in registration order. */
  serving: readonly Instance[] = [];
  /** Instances finishing their work: listed for diagnostics, never picked. */
  draining: readonly Instance[] = [];
  #next = 0;

  constructor(
    readonly method: string,
    readonly path: string,
  ) {}

  /** The next serving instance in round-robin order, or undefined when none serves. */
  pick(): Instance | undefined {
    const serving = this.serving;
    if (serving.length === 0) return undefined;
    // The list may have shrunk since the last pick; the counter wraps instead of growing forever.
    const index = this.#next < serving.length ? this.#next : 0;
    this.#next = index + 1 < serving.length ? index + 1 : 0;
    return serving[index];
  }

  /** The next serving instance on another address than `failed` (for a retry), or undefined. */
  pickOther(failed: Instance): Instance | undefined {
    for (let tries = this.serving.length; tries > 0; tries--) {
      const candidate = this.pick()!;
      if (candidate.upstream.address !== failed.upstream.address) return candidate;
    }
    return undefined;
  }
}

/** A route as {@link RouteTable.describe} lists it. */
export interface RouteInfo {
  readonly method: string;
  readonly path: string;
  readonly grpcMethods: string[];
  readonly serving: string[];
  readonly draining: string[];
}

/** Options of {@link RouteTable}. */
export interface RouteTableOptions {
  pool: InstancePool;
  plans?: PlanCache;
  log?: Logger;
  /** How many routes that have lost all their nodes are remembered (answered 503, not 404). */
  retiredLimit?: number;
}

/**
 * The gateway's view of the registry: "METHOD /path" → the instances serving it, rebuilt from each
 * distributor snapshot, with nothing of its own (no service names, no routes, no message types).
 *
 * - A DRAINING node gets no new request from the snapshot that says so; a node missing from a
 *   snapshot is gone, and its channel is closed once its last call ends.
 * - A route whose nodes have all left stays known (503 with Retry-After rather than 404: the service
 *   exists and is expected back), up to `retiredLimit` routes, the oldest forgotten first.
 * - A route a node registers with descriptors that cannot serve it is skipped with a warning, once
 *   per registration; the node's other routes still work.
 */
export class RouteTable {
  #routes = new Map<string, Route>();
  readonly #retired = new Set<string>();
  readonly #warned = new Set<string>();
  readonly #pool: InstancePool;
  readonly #plans: PlanCache;
  readonly #log: Logger;
  readonly #retiredLimit: number;
  #revision: number | undefined;

  constructor(options: RouteTableOptions) {
    this.#pool = options.pool;
    this.#plans = options.plans ?? new PlanCache();
    this.#log = options.log ?? silentLogger();
    this.#retiredLimit = options.retiredLimit ?? 1024;
  }

  /** Whether a snapshot has been applied: before that, nothing is known, not even what is missing. */
  get ready(): boolean {
    return this.#revision !== undefined;
  }

  /** The revision of the last snapshot applied. */
  get revision(): number | undefined {
    return this.#revision;
  }

  /** The route for "METHOD /path". */
  get(key: string): Route | undefined {
    return this.#routes.get(key);
  }

  /** The routes that have instances now (serving or draining), in the order nodes registered them. */
  live(): Route[] {
    return [...this.#routes.values()];
  }

  /** Whether "METHOD /path" was served once and has lost all its nodes. */
  isRetired(key: string): boolean {
    return this.#retired.has(key);
  }

  /**
   * Rebuilds the table from a full node list. Snapshots are applied in the order they arrive; after a
   * distributor restart revisions start again from 1, so a lower revision is not stale.
   */
  apply(snapshot: Snapshot): void {
    const next = new Map<string, { serving: Instance[]; draining: Instance[] }>();
    const upstreams = new Set<string>();
    for (const node of snapshot.nodes) {
      if (node.routes.length === 0) continue;
      const address = formatHostPort({ host: node.host, port: node.port });
      for (const route of node.routes) {
        const key = `${route.httpMethod} ${route.path}`;
        const plan = this.#planOrWarn(node, route, key);
        if (!plan) continue;
        const upstream = this.#pool.get(node.name, address);
        upstreams.add(upstream.key);
        const instance: Instance = { nodeId: node.id, upstream, plan };
        let lists = next.get(key);
        if (!lists) {
          lists = { serving: [], draining: [] };
          next.set(key, lists);
        }
        (node.state === NodeState.NODE_STATE_DRAINING ? lists.draining : lists.serving).push(instance);
      }
    }
    const routes = new Map<string, Route>();
    for (const [key, lists] of next) {
      const separator = key.indexOf(' ');
      const route = this.#routes.get(key) ?? new Route(key.slice(0, separator), key.slice(separator + 1));
      route.serving = lists.serving;
      route.draining = lists.draining;
      routes.set(key, route);
      this.#retired.delete(key);
    }
    for (const key of this.#routes.keys()) {
      if (!routes.has(key)) this.#retire(key);
    }
    this.#routes = routes;
    this.#revision = snapshot.revision;
    this.#pool.retainOnly(upstreams);
    this.#plans.retainOnly(snapshot.nodes);
    const registrations = new Set(snapshot.nodes.map((node) => warningPrefix(node)));
    for (const warning of this.#warned) {
      if (!registrations.has(warning.slice(0, warning.indexOf('|')))) this.#warned.delete(warning);
    }
    this.#log.debug(
      { event: 'routes', revision: snapshot.revision, routes: routes.size },
      'route table updated',
    );
  }

  /** Every known route with its instances, for diagnostics and tests. */
  describe(): RouteInfo[] {
    const live = [...this.#routes.values()].map((route) => ({
      method: route.method,
      path: route.path,
      grpcMethods: [
        ...new Set([...route.serving, ...route.draining].map((instance) => instance.plan.grpcMethod)),
      ],
      serving: route.serving.map((instance) => instance.nodeId),
      draining: route.draining.map((instance) => instance.nodeId),
    }));
    const retired = [...this.#retired].map((key) => {
      const separator = key.indexOf(' ');
      return {
        method: key.slice(0, separator),
        path: key.slice(separator + 1),
        grpcMethods: [],
        serving: [],
        draining: [],
      };
    });
    return [...live, ...retired];
  }

  #planOrWarn(node: Node, route: Node['routes'][number], key: string): CallPlan | undefined {
    try {
      return this.#plans.plan(node, route);
    } catch (error) {
      const warning = `${warningPrefix(node)}|${key}`;
      if (!this.#warned.has(warning)) {
        this.#warned.add(warning);
        this.#log.warn(
          { event: 'route-skipped', node: node.id, route: key, grpcMethod: route.grpcMethod },
          `not routing ${key} to ${node.id}: ${(error as Error).message}`,
        );
      }
      return undefined;
    }
  }

  #retire(key: string): void {
    this.#retired.add(key);
    if (this.#retired.size > this.#retiredLimit) {
      this.#retired.delete(this.#retired.values().next().value!);
    }
  }
}

function warningPrefix(node: Node): string {
  return `${node.id} ${node.registeredAt?.getTime() ?? 0}`;
}
