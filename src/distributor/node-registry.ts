import { status } from '@grpc/grpc-js';
import type { Logger } from '../common/logger.js';
import { silentLogger } from '../common/logger.js';
import { ServiceError } from '../common/service-error.js';
import { type Node, type NodeDescription, NodeState, type Snapshot } from '../gen/distributor.js';
import { NodeBudget, type NodeCost } from './node-budget.js';
import { declaredRouteKeys } from './node-validation.js';
import {
  DEFAULT_BUDGET,
  REGISTRATION_LIMITS,
  type RegistrationLimits,
  registrationBudget,
} from './registration-limits.js';
import { ANONYMOUS_PRINCIPAL } from './registry-auth.js';
import { nodeEntryBytes } from './snapshot-size.js';

/** A node's hold on its registry entry: it lasts until `leave()` or until a newer registration replaces it. */
export interface Lease {
  /** The identity the node is listed under: "name@host:port". */
  readonly id: string;
  /** Changes the node's state; a change of state is a change of the list. */
  setState(state: NodeState): void;
  /** Removes the node, unless a newer registration of the same identity has replaced it. */
  leave(reason: string): void;
}

/** Called with every new snapshot, in revision order. */
export type SnapshotListener = (snapshot: Snapshot) => void;

interface Entry {
  node: Node;
  /** The keys of the REST routes it declares (see validateNodeDescription). */
  routeKeys: readonly string[];
  lease: Lease;
  principal: string;
  cost: NodeCost;
  onReplaced: () => void;
}

/** Options of {@link NodeRegistry}. */
export interface NodeRegistryOptions {
  log?: Logger;
  now?: () => Date;
  /** Nodes in all and per name, and the bytes of the list; REGISTRATION_LIMITS by default. */
  limits?: RegistrationLimits;
}

/**
 * The distributor's state: the registered nodes and a revision that grows by one on every change.
 * Listeners are told of every change synchronously and in order, so that every stream sees the same
 * sequence of lists.
 *
 * The list stays within its limits (nodes in all, per name, and bytes, so that every snapshot fits
 * what clients accept): a node that would break one is refused and nothing changes. A node already
 * listed is never pushed out to make room.
 */
export class NodeRegistry {
  readonly #entries = new Map<string, Entry>();
  readonly #listeners = new Set<SnapshotListener>();
  readonly #log: Logger;
  readonly #now: () => Date;
  readonly #budget: NodeBudget;
  #snapshot: Snapshot = { revision: 0, nodes: [] };

  constructor({ log = silentLogger(), now = () => new Date(), limits }: NodeRegistryOptions = {}) {
    this.#log = log;
    this.#now = now;
    this.#budget = limits
      ? new NodeBudget(limits, registrationBudget(limits))
      : new NodeBudget(REGISTRATION_LIMITS, DEFAULT_BUDGET);
  }

  /** What the listed nodes add to an encoded snapshot, in bytes: the running total the limits check. */
  get listBytes(): number {
    return this.#budget.bytes;
  }

  /** The current list. */
  snapshot(): Snapshot {
    return this.#snapshot;
  }

  /**
   * Drops every listener at once: for a distributor that is stopping, so that closing its streams one
   * by one does not tell the streams still open that every node has left.
   */
  unsubscribeAll(): void {
    this.#listeners.clear();
  }

  /** Registers a listener for every later change; returns the function that unregisters it. */
  subscribe(listener: SnapshotListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Lists a node under "name@host:port" for `principal` (who the registering stream authenticated as).
   *
   * Takeover rule: an identity held by a live registration of the same principal is replaced (newest
   * wins: the earlier entry's `onReplaced` is called so that its stream can be closed), so a node that
   * restarts before its old connection is seen dead registers again at once. An identity held by
   * another principal is refused with ALREADY_EXISTS until its holder leaves.
   *
   * Route rule: a REST route (`routeKeys`, "METHOD shape") belongs to the name that registered it
   * first. Instances of that name may all declare it; a node of another name that declares it is
   * refused with ALREADY_EXISTS, and the conflict is logged, until every node of the holding name
   * has left.
   *
   * Throws ALREADY_EXISTS, or RESOURCE_EXHAUSTED when the node would break a limit; a refused node
   * changes nothing and nobody is told.
   */
  join(
    description: NodeDescription,
    host: string,
    onReplaced: () => void,
    principal: string = ANONYMOUS_PRINCIPAL,
    routeKeys: readonly string[] = declaredRouteKeys(description),
  ): Lease {
    const id = `${description.name}@${host}:${description.port}`;
    const node: Node = {
      id,
      name: description.name,
      host,
      port: description.port,
      routes: description.routes,
      descriptorSet: description.descriptorSet,
      state:
        description.state === NodeState.NODE_STATE_DRAINING
          ? NodeState.NODE_STATE_DRAINING
          : NodeState.NODE_STATE_SERVING,
      registeredAt: this.#now(),
    };
    const previous = this.#entries.get(id);
    if (previous && previous.principal !== principal) {
      throw new ServiceError(
        status.ALREADY_EXISTS,
        `node ${id} is held by a live registration of another principal; it can register again once that one ends`,
      );
    }
    this.#checkRouteOwners(description.name, id, routeKeys);
    // SERVING and DRAINING encode to the same size, so a change of state never changes the cost.
    const cost: NodeCost = { name: node.name, bytes: nodeEntryBytes(node) };
    this.#budget.check(cost, previous?.cost);
    const lease: Lease = {
      id,
      setState: (state) => this.#setState(lease, state),
      leave: (reason) => this.#leave(lease, reason),
    };
    if (previous) this.#budget.remove(previous.cost);
    this.#budget.add(cost);
    this.#entries.delete(id);
    this.#entries.set(id, { node, routeKeys, lease, principal, cost, onReplaced });
    this.#publish();
    this.#log.info(
      {
        event: previous ? 'rejoin' : 'join',
        node: id,
        routes: routeKeys.length,
        revision: this.#snapshot.revision,
      },
      previous ? `node ${id} registered again, replacing its earlier entry` : `node ${id} joined`,
    );
    previous?.onReplaced();
    return lease;
  }

  /** Throws ALREADY_EXISTS when a node of another name holds one of these routes. */
  #checkRouteOwners(name: string, id: string, routeKeys: readonly string[]): void {
    if (routeKeys.length === 0) return;
    const wanted = new Set(routeKeys);
    for (const entry of this.#entries.values()) {
      if (entry.node.name === name) continue;
      const taken = entry.routeKeys.find((key) => wanted.has(key));
      if (taken === undefined) continue;
      const message =
        `route "${taken}" is served by ${entry.node.id}: a node named "${name}" cannot serve it too ` +
        '(two services cannot share a REST route; it is free again once every node of that name has left)';
      this.#log.warn(
        { event: 'route-conflict', node: id, route: taken, holder: entry.node.id },
        `refused ${id}: ${message}`,
      );
      throw new ServiceError(status.ALREADY_EXISTS, message);
    }
  }

  #setState(lease: Lease, state: NodeState): void {
    const entry = this.#current(lease);
    if (!entry || entry.node.state === state) return;
    entry.node = { ...entry.node, state };
    this.#publish();
    this.#log.info(
      { event: 'state', node: lease.id, state: NodeState[state], revision: this.#snapshot.revision },
      `node ${lease.id} is ${state === NodeState.NODE_STATE_DRAINING ? 'draining' : 'serving'}`,
    );
  }

  #leave(lease: Lease, reason: string): void {
    const entry = this.#current(lease);
    if (!entry) return;
    this.#entries.delete(lease.id);
    this.#budget.remove(entry.cost);
    this.#publish();
    this.#log.info(
      { event: 'leave', node: lease.id, reason, revision: this.#snapshot.revision },
      `node ${lease.id} left`,
    );
  }

  #current(lease: Lease): Entry | undefined {
    const entry = this.#entries.get(lease.id);
    return entry?.lease === lease ? entry : undefined;
  }

  #publish(): void {
    this.#snapshot = {
      revision: this.#snapshot.revision + 1,
      nodes: [...this.#entries.values()].map((entry) => entry.node),
    };
    for (const listener of this.#listeners) listener(this.#snapshot);
  }
}
