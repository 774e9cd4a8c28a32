import type { RouteInfo } from './route-table.js';
import type { UnreachableReason, UpstreamConnection } from './upstream.js';

/** What the gateway tells its telemetry about itself. */
export interface GatewayView {
  /**
   * The route (its path template as written, e.g. "/goods/{id}") that a request of `method` to
   * `path` belongs to, including a route that has lost all its instances, or else the route of
   * another method on that path (a 405, an OPTIONS); undefined when no route has the path: such
   * requests share one label. Asked only for requests the gateway did not route (see
   * RequestTelemetry.route).
   */
  routeOf(method: string, path: string): string | undefined;
  /** Every known route with its instances. */
  routes(): RouteInfo[];
  /** Whether a live or retired route has this template: series are kept only for those (see forget). */
  holdsTemplate(template: string): boolean;
  /** The revision of the last node list applied; undefined before the first. */
  revision(): number | undefined;
  /** Whether the gateway is stopping (then it is not ready). */
  stopping(): boolean;
  /**
   * How long a route that no instance serves (its service's database down, its instances draining or
   * gone) keeps the gateway not ready: long enough for a service to restart; after it, one service's
   * outage or retirement does not take every gateway out of its load balancer.
   */
  unservedRouteReadyAfterMs(): number;
  /**
   * How long after losing the distributor the gateway, routing from its last node list meanwhile,
   * stays ready: a distributor restart must not take every gateway out of its load balancer.
   */
  restartGraceMs(): number;
  /**
   * Since when this gateway has failed to connect to a node ("name@host:port") the distributor
   * lists; undefined while it can (see Upstream.unreachableSince).
   */
  unreachableSince(nodeId: string): number | undefined;
  /** Whether a node is out of this gateway's reach now: given no call (see outOfReach). */
  outOfReach(nodeId: string): boolean;
  /** What this gateway last learnt of why it cannot reach a node (see Upstream.unreachableReason). */
  unreachableReason(nodeId: string): UnreachableReason | undefined;
  /**
   * Where this gateway's channel to a node stands (see InstancePool.connection); undefined for a node
   * it routes nothing to.
   */
  connection(nodeId: string): UpstreamConnection | undefined;
  /** Its REST connections and requests in flight now, and its `--max-connections`. */
  connectionLoad(): { connections: number; requestsInFlight: number; maxConnections: number };
}
