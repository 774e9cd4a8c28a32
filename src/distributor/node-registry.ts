import type { Logger } from '../common/logger.js';
import { silentLogger } from '../common/logger.js';
import { type Node, type NodeDescription, NodeState, type Snapshot } from '../gen/distributor.js';

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
  lease: Lease;
  onReplaced: () => void;
}

/** Options of {@link NodeRegistry}. */
export interface NodeRegistryOptions {
  log?: Logger;
  now?: () => Date;
}

/**
 * The distributor's state: the registered nodes and a revision that grows by one on every change.
 * Listeners are told of every change synchronously and in order, so that every stream sees the same
 * sequence of lists.
 */
export class NodeRegistry {
  readonly #entries = new Map<string, Entry>();
  readonly #listeners = new Set<SnapshotListener>();
  readonly #log: Logger;
  readonly #now: () => Date;
  #snapshot: Snapshot = { revision: 0, nodes: [] };

  constructor({ log = silentLogger(), now = () => new Date() }: NodeRegistryOptions = {}) {
    this.#log = log;
    this.#now = now;
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
   * Lists a node under "name@host:port". A node already listed under that identity is replaced, never
   * listed twice, and its `onReplaced` is called so that its stream can be closed.
   */
  join(description: NodeDescription, host: string, onReplaced: () => void): Lease {
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
    const lease: Lease = {
      id,
      setState: (state) => this.#setState(lease, state),
      leave: (reason) => this.#leave(lease, reason),
    };
    const previous = this.#entries.get(id);
    this.#entries.delete(id);
    this.#entries.set(id, { node, lease, onReplaced });
    this.#publish();
    this.#log.info(
      {
        event: previous ? 'rejoin' : 'join',
        node: id,
        routes: node.routes.length,
        revision: this.#snapshot.revision,
      },
      previous ? `node ${id} registered again, replacing its earlier entry` : `node ${id} joined`,
    );
    previous?.onReplaced();
    return lease;
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
    if (!this.#current(lease)) return;
    this.#entries.delete(lease.id);
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
