import { formatHostPort } from '../common/config.js';
import { type Logger, silentLogger } from '../common/logger.js';
import { isLiteralTemplate, matchPathTemplate, type PathTemplate } from '../common/path-template.js';
import { type Node, NodeState, type Snapshot } from '../gen/distributor.js';
import type { CallPlan } from './call-plan.js';
import type { InstancePool } from './instance-pool.js';
import { PlanCache } from './plan-cache.js';
import { canTakeCalls, outOfReach, type Upstream } from './upstream.js';

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
  /** Since when (performance.now()) no instance serves it, draining or gone; undefined while one does. */
  unservedSince: number | undefined;
  /**
   * The gRPC methods (`/package.Service/Method`) its instances call, as of the last snapshot that
   * listed one; a retired route keeps those of its last instances.
   */
  grpcPaths: ReadonlySet<string> = new Set<string>();
  #next = 0;

  /**
   * `path` is the template's shape ("/goods/*" for "/goods/{id}"), so that "method path" is the
   * route's key; `template` is the template as the first instance's descriptors write it.
   */
  constructor(
    readonly method: string,
    readonly path: string,
    readonly template: PathTemplate,
  ) {}

  /** "METHOD shape": the route's identity (see HttpRoute.key). */
  get key(): string {
    return `${this.method} ${this.path}`;
  }

  /**
   * The next serving instance in round-robin order that can take a call now (canTakeCalls),
   * passing over those still connecting or failing to; when none can, the next one as it comes that
   * is not out of reach (a fresh channel's first connection, or an instance that just dropped, may be
   * made in a moment: its call waits for it or fails as grpc-js decides). Undefined when none serves,
   * or when every serving instance is out of reach (outOfReach: unreachable for longer than the
   * connect timeout, or since its connection went silent): the request is then answered 503 at once,
   * rather than held on a connection attempt to a host that does not answer until its deadline.
   */
  pick(): Instance | undefined {
    const serving = this.serving;
    const count = serving.length;
    if (count === 0) return undefined;
    // The list may have shrunk since the last pick; the counter wraps instead of growing forever.
    const first = this.#next < count ? this.#next : 0;
    let index = first;
    do {
      const candidate = serving[index]!;
      index = index + 1 < count ? index + 1 : 0;
      if (canTakeCalls(candidate.upstream)) {
        this.#next = index;
        return candidate;
      }
    } while (index !== first);
    // None can take a call now: the first, in the same order, that may connect in a moment.
    const nowMs = performance.now();
    do {
      const candidate = serving[index]!;
      index = index + 1 < count ? index + 1 : 0;
      if (!outOfReach(candidate.upstream, nowMs)) {
        this.#next = index;
        return candidate;
      }
    } while (index !== first);
    return undefined;
  }

  /** The next serving instance on another address than `failed` (for a retry), or undefined. */
  pickOther(failed: Instance): Instance | undefined {
    for (let tries = this.serving.length; tries > 0; tries--) {
      const candidate = this.pick();
      if (!candidate) return undefined;
      if (candidate.upstream.address !== failed.upstream.address) return candidate;
    }
    return undefined;
  }
}

/** A route as {@link RouteTable.describe} lists it. */
export interface RouteInfo {
  readonly method: string;
  /** The template's shape: "/goods/*" for "/goods/{id}". */
  readonly path: string;
  /** The template as written, e.g. "/goods/{id}". */
  readonly template: string;
  readonly grpcMethods: string[];
  readonly serving: string[];
  readonly draining: string[];
  /** Since when (performance.now()) no instance serves it, for a route none serves. */
  readonly unservedSince?: number;
}

/** What {@link RouteTable.match} found for a request. */
export interface RouteMatch {
  readonly route: Route;
  /** The path variables' values, decoded, in template order. */
  readonly pathValues: readonly string[];
  /** The route has lost all its nodes (answered 503, not 404). */
  readonly retired: boolean;
}

/** Options of {@link RouteTable}. */
export interface RouteTableOptions {
  pool: InstancePool;
  plans?: PlanCache;
  log?: Logger;
  /** How many routes that have lost all their nodes are remembered (answered 503, not 404). */
  retiredLimit?: number;
  /**
   * Told, after a snapshot pushed retired routes out, of the route templates (`/goods/{id}`) and
   * the gRPC methods (`/shop.v1.GoodsService/ListGoods`) that no route, live or retired, has any
   * more: their metric series can go, so that they stay bounded by the routes the table holds.
   */
  onForgotten?: (forgotten: ForgottenRoutes) => void;
}

/** What {@link RouteTableOptions.onForgotten} is told. */
export interface ForgottenRoutes {
  readonly templates: readonly string[];
  readonly grpcPaths: readonly string[];
}

/**
 * The gateway's view of the registry: REST routes → the instances serving them, rebuilt from each
 * distributor snapshot, with nothing of its own (no service names, no routes, no message types). The
 * routes are the google.api.http options of the descriptor sets the nodes register (see
 * readHttpRoutes); a route is keyed by method and template shape, and a request is matched by its
 * method and path: literal paths first, then templates, the most literal segments first.
 *
 * - A DRAINING node gets no new request from the snapshot that says so; a node missing from a
 *   snapshot is gone, and its channel is closed once its last call ends.
 * - A route whose nodes have all left stays known (503 with Retry-After rather than 404: the service
 *   exists and is expected back), up to `retiredLimit` routes, the oldest forgotten first.
 * - A route a node declares but cannot serve (its descriptors do not hold together) is skipped with a
 *   warning, once per registration; the node's other routes still work.
 * - A route belongs to the node name that declares it first in the snapshot (registration order):
 *   instances of another name that declare it too are skipped, with a warning once per registration.
 *   The distributor refuses such registrations, and those whose routes take paths of another name's
 *   routes; this guards against a list that holds the same route twice anyway (exact routes only:
 *   comparing every route with every other on each snapshot would cost far more than the
 *   distributor's check of each new route, once).
 */
export class RouteTable {
  #routes = new Map<string, Route>();
  readonly #retired = new Map<string, Route>();
  /** Literal routes (live and retired) by path, then method. */
  #byPath = new Map<string, Map<string, Route>>();
  /** Routes with variables or wildcards (live and retired), the most specific first. */
  #templated: Route[] = [];
  readonly #warned = new Set<string>();
  readonly #pool: InstancePool;
  readonly #plans: PlanCache;
  readonly #log: Logger;
  readonly #retiredLimit: number;
  readonly #onForgotten: ((forgotten: ForgottenRoutes) => void) | undefined;
  /** The templates of the live and retired routes (see holdsTemplate). */
  #templates = new Set<string>();
  #revision: number | undefined;

  constructor(options: RouteTableOptions) {
    this.#pool = options.pool;
    this.#plans = options.plans ?? new PlanCache();
    this.#log = options.log ?? silentLogger();
    this.#retiredLimit = options.retiredLimit ?? 1024;
    this.#onForgotten = options.onForgotten;
  }

  /** Whether a live or retired route has this template (`/goods/{id}`). */
  holdsTemplate(template: string): boolean {
    return this.#templates.has(template);
  }

  /** Whether a snapshot has been applied: before that, nothing is known, not even what is missing. */
  get ready(): boolean {
    return this.#revision !== undefined;
  }

  /** Whether any route is known, live or retired: before one is, an unknown path may be one still to come. */
  get knowsAnyRoute(): boolean {
    return this.#routes.size > 0 || this.#retired.size > 0;
  }

  /** The revision of the last snapshot applied. */
  get revision(): number | undefined {
    return this.#revision;
  }

  /** The live route of a key, "METHOD shape". */
  get(key: string): Route | undefined {
    return this.#routes.get(key);
  }

  /** The same object until the live routes or their instances change (a new snapshot is applied). */
  get generation(): object {
    return this.#routes;
  }

  /** The routes that have instances now (serving or draining), in the order nodes registered them. */
  live(): Route[] {
    return [...this.#routes.values()];
  }

  /** Whether the route of a key was served once and has lost all its nodes. */
  isRetired(key: string): boolean {
    return this.#retired.has(key);
  }

  /**
   * The route a request goes to, live or retired, or undefined when none of its method matches. A
   * live route comes before every retired one, however literal: the distributor frees the paths of
   * a name whose nodes have all left, so another name's route may now take them, and a retired
   * route there (DELETE /goods/special of a service gone, beside goods' DELETE /goods/{id}) would
   * answer them 503 for as long as it is remembered.
   */
  match(method: string, path: string): RouteMatch | undefined {
    // One pass, in the order of precedence; a retired match is kept in case no live one follows.
    const literal = this.#byPath.get(path)?.get(method);
    let retiredMatch: RouteMatch | undefined;
    if (literal) {
      if (!this.#retired.has(literal.key)) return { route: literal, pathValues: [], retired: false };
      retiredMatch = { route: literal, pathValues: [], retired: true };
    }
    for (const route of this.#templated) {
      if (route.method !== method) continue;
      const pathValues = matchPathTemplate(route.template, path);
      if (!pathValues) continue;
      if (!this.#retired.has(route.key)) return { route, pathValues, retired: false };
      retiredMatch ??= { route, pathValues, retired: true };
    }
    return retiredMatch;
  }

  /**
   * The template of the most literal route (live or retired) that matches a path, whatever its
   * method: what an answer for the path that no route of its method took (405, OPTIONS) is counted
   * on, rather than on the paths no route has.
   */
  templateOf(path: string): string | undefined {
    if (this.#byPath.has(path)) return path;
    return this.#templated.find((route) => matchPathTemplate(route.template, path))?.template.text;
  }

  /** The methods of the routes (live or retired) that match a path, sorted: empty for an unknown path. */
  methodsOf(path: string): string[] {
    const methods = new Set(this.#byPath.get(path)?.keys());
    for (const route of this.#templated) {
      if (!methods.has(route.method) && matchPathTemplate(route.template, path)) methods.add(route.method);
    }
    return [...methods].sort();
  }

  /**
   * Rebuilds the table from a full node list. Snapshots are applied in the order they arrive; after a
   * distributor restart revisions start again from 1, so a lower revision is not stale.
   */
  apply(snapshot: Snapshot): void {
    const next = new Map<string, { template: PathTemplate; serving: Instance[]; draining: Instance[] }>();
    const owners = new Map<string, string>();
    const upstreams = new Set<string>();
    for (const node of snapshot.nodes) {
      const { plans, problems } = this.#plans.plansOf(node);
      for (const problem of problems) this.#warnOnce(node, problem, { event: 'route-skipped' });
      if (plans.length === 0) continue;
      const address = formatHostPort({ host: node.host, port: node.port });
      for (const plan of plans) {
        const key = plan.route.key;
        const owner = owners.get(key);
        if (owner !== undefined && owner !== node.name) {
          this.#warnOnce(node, `${key} belongs to "${owner}", which declared it first`, {
            event: 'route-conflict',
            owner,
          });
          continue;
        }
        owners.set(key, node.name);
        const upstream = this.#pool.get(node.name, address);
        upstreams.add(upstream.key);
        const instance: Instance = { nodeId: node.id, upstream, plan };
        let lists = next.get(key);
        if (!lists) {
          lists = { template: plan.route.template, serving: [], draining: [] };
          next.set(key, lists);
        }
        (node.state === NodeState.NODE_STATE_DRAINING ? lists.draining : lists.serving).push(instance);
      }
    }
    const routes = new Map<string, Route>();
    /** gRPC methods a route held no longer calls (a new build of its service), maybe held elsewhere. */
    const dropped = new Set<string>();
    for (const [key, lists] of next) {
      const route =
        this.#routes.get(key) ??
        this.#retired.get(key) ??
        new Route(key.slice(0, key.indexOf(' ')), lists.template.shape, lists.template);
      route.serving = lists.serving;
      route.draining = lists.draining;
      const grpcPaths = new Set([...lists.serving, ...lists.draining].map((instance) => instance.plan.path));
      for (const path of route.grpcPaths) if (!grpcPaths.has(path)) dropped.add(path);
      route.grpcPaths = grpcPaths;
      route.unservedSince = lists.serving.length > 0 ? undefined : (route.unservedSince ?? performance.now());
      routes.set(key, route);
      this.#retired.delete(key);
    }
    const evicted: Route[] = [];
    for (const [key, route] of this.#routes) {
      if (!routes.has(key)) evicted.push(...this.#retire(route));
    }
    this.#routes = routes;
    if (evicted.length > 0 || dropped.size > 0) this.#tellForgotten(evicted, dropped);
    this.#index();
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
      template: route.template.text,
      grpcMethods: [
        ...new Set([...route.serving, ...route.draining].map((instance) => instance.plan.grpcMethod)),
      ],
      serving: route.serving.map((instance) => instance.nodeId),
      draining: route.draining.map((instance) => instance.nodeId),
      ...(route.unservedSince === undefined ? {} : { unservedSince: route.unservedSince }),
    }));
    const retired = [...this.#retired.values()].map((route) => ({
      method: route.method,
      path: route.path,
      template: route.template.text,
      grpcMethods: [],
      serving: [],
      draining: [],
      ...(route.unservedSince === undefined ? {} : { unservedSince: route.unservedSince }),
    }));
    return [...live, ...retired];
  }

  /** Rebuilds the lookup structures from the live and retired routes. */
  #index(): void {
    this.#templates = new Set(
      [...this.#routes.values(), ...this.#retired.values()].map((r) => r.template.text),
    );
    const byPath = new Map<string, Map<string, Route>>();
    const templated: Route[] = [];
    for (const route of [...this.#routes.values(), ...this.#retired.values()]) {
      // A literal with a %-escape goes with the templates, which compare segments decoded: looked
      // up by its text, "/caf%C3%A9" missed "/caf%c3%a9" (the same path, RFC 3986 section 6.2.2.1),
      // and "/go%6Fds" every request, the gateway routing that one as "/goods" (see routingPath).
      const { template } = route;
      if (isLiteralTemplate(template) && template.verb === undefined && !template.text.includes('%')) {
        let methods = byPath.get(template.text);
        if (!methods) {
          methods = new Map();
          byPath.set(template.text, methods);
        }
        methods.set(route.method, route);
      } else {
        templated.push(route);
      }
    }
    templated.sort((a, b) => specificity(b.template) - specificity(a.template));
    this.#byPath = byPath;
    this.#templated = templated;
  }

  #warnOnce(node: Node, problem: string, fields: Record<string, unknown>): void {
    const warning = `${warningPrefix(node)}|${problem}`;
    if (this.#warned.has(warning)) return;
    this.#warned.add(warning);
    this.#log.warn({ ...fields, node: node.id }, `not routing to ${node.id}: ${problem}`);
  }

  /** Keeps a route that lost its nodes among the retired; returns the oldest one it pushed out, if any. */
  #retire(route: Route): Route[] {
    route.serving = [];
    route.draining = [];
    route.unservedSince ??= performance.now();
    this.#retired.set(route.key, route);
    if (this.#retired.size <= this.#retiredLimit) return [];
    const [oldestKey, oldest] = this.#retired.entries().next().value!;
    this.#retired.delete(oldestKey);
    return [oldest];
  }

  /**
   * Tells of the templates and gRPC methods of `evicted`, and of the methods in `grpcPaths` that
   * routes stopped calling, that no live or retired route has any more
   * (see onForgotten), once the live routes are those of the snapshot applied.
   */
  #tellForgotten(evicted: readonly Route[], grpcPaths: Set<string>): void {
    if (!this.#onForgotten) return;
    const templates = new Set<string>();
    for (const route of evicted) {
      templates.add(route.template.text);
      for (const path of route.grpcPaths) grpcPaths.add(path);
    }
    for (const held of [this.#routes, this.#retired]) {
      for (const route of held.values()) {
        templates.delete(route.template.text);
        for (const path of route.grpcPaths) grpcPaths.delete(path);
      }
    }
    if (templates.size > 0 || grpcPaths.size > 0) {
      this.#onForgotten({ templates: [...templates], grpcPaths: [...grpcPaths] });
    }
  }
}

/** More literal segments first, then fewer wildcards: "/goods/special" before "/goods/*". */
function specificity(template: PathTemplate): number {
  let score = 0;
  for (const segment of template.segments) {
    if (segment.kind === 'literal') score += 1_000;
    else if (segment.kind === 'single') score += 10;
  }
  return score + (template.verb === undefined ? 0 : 1);
}

function warningPrefix(node: Node): string {
  return `${node.id} ${node.registeredAt?.getTime() ?? 0}`;
}
