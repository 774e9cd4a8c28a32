import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { limiterOf } from '../common/log-limiter.js';
import type { Logger } from '../common/logger.js';
import { silentLogger } from '../common/logger.js';
import { nodeIdOf } from '../common/node-id.js';
import { ServiceError } from '../common/service-error.js';
import { Node, type NodeDescription, NodeState, type Snapshot } from '../gen/distributor.js';
import { type DescriptorSet, DescriptorSetStore } from './descriptor-set-store.js';
import { NodeBudget, type NodeCost } from './node-budget.js';
import {
  DEFAULT_BUDGET,
  REGISTRATION_LIMITS,
  type RegistrationBudget,
  type RegistrationLimits,
  registrationBudget,
} from './registration-limits.js';
import { ANONYMOUS_PRINCIPAL } from './registry-auth.js';
import { ReservedContract } from './reserved-contract.js';
import { RouteOwners } from './route-owners.js';
import { MAX_INSTANCE_ID_LENGTH, varintBytes } from './snapshot-size.js';

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

/** One change of the list, at the revision it made. */
export type RegistryChange =
  | {
      readonly kind: 'added';
      readonly revision: number;
      /** As listed: descriptor set by hash. A node listed under the same id before is replaced. */
      readonly node: Node;
      /** `node`, encoded once. */
      readonly encoded: Uint8Array;
    }
  | { readonly kind: 'removed'; readonly revision: number; readonly nodeId: string }
  | {
      readonly kind: 'stateChanged';
      readonly revision: number;
      readonly nodeId: string;
      readonly state: NodeState;
    };

/** Called with every change, in revision order. */
export type ChangeListener = (change: RegistryChange) => void;

interface Entry {
  /** As listed: the descriptor set by its hash, descriptor_set empty. */
  node: Node;
  /** `node`, encoded: the node's part of every snapshot and its `added` event. */
  encoded: Uint8Array;
  /** The node's set, held in the store while the entry lives; none for a node that serves nothing. */
  readonly descriptorSet: DescriptorSet | undefined;
  /** The keys of the REST routes it declares (its set's, see validateDescriptorSet). */
  readonly routeKeys: readonly string[];
  /** `node` with its descriptor set's bytes, for the first contract's snapshots; made when first needed. */
  legacyNode: Node | undefined;
  /** What the set's bytes add to the node's entry in a first-contract snapshot. */
  readonly legacyExtraBytes: number;
  readonly lease: Lease;
  readonly principal: string;
  /** The address it registered from, for the log; undefined when not told. */
  readonly peer: string | undefined;
  readonly cost: NodeCost;
  readonly onReplaced: () => void;
}

/** Options of {@link NodeRegistry}. */
export interface NodeRegistryOptions {
  log?: Logger;
  now?: () => Date;
  /** Nodes in all and per name, and the bytes of the list; REGISTRATION_LIMITS by default. */
  limits?: RegistrationLimits;
  /** This registry's instance id (Snapshot.instance_id); by default a random one. */
  instanceId?: string;
  /** The services and routes only the names their contract gives may serve; the shop's by default. */
  reserved?: ReservedContract;
}

const EMPTY = Buffer.alloc(0);

/**
 * The distributor's state: the registered nodes, the distinct descriptor sets they use, and a
 * revision that grows by one on every change, under an instance id of its own (random: revisions
 * start again with the next instance). Listeners are told of every change synchronously and in
 * order, so that every stream sees the same sequence.
 *
 * The list stays within its limits (nodes in all, per name, the bytes of the list so that every
 * snapshot fits what clients accept, and the bytes of the distinct descriptor sets): a node that
 * would break one is refused and nothing changes. A node already listed is never pushed out to make
 * room. Nodes are listed with the SHA-256 of their descriptor set; the store serves the sets.
 */
export class NodeRegistry {
  readonly instanceId: string;
  /** The distinct descriptor sets of the listed nodes, by SHA-256. */
  readonly descriptorSets: DescriptorSetStore;
  readonly #entries = new Map<string, Entry>();
  readonly #routeOwners: RouteOwners;
  readonly #reserved: ReservedContract;
  readonly #listeners = new Set<SnapshotListener>();
  readonly #changeListeners = new Set<ChangeListener>();
  readonly #log: Logger;
  readonly #now: () => Date;
  readonly #limits: RegistrationBudget;
  readonly #budget: NodeBudget;
  #revision = 0;
  #snapshot: Snapshot | undefined;
  #legacySnapshot: Snapshot | undefined;

  constructor({
    log = silentLogger(),
    now = () => new Date(),
    limits,
    instanceId,
    reserved = ReservedContract.ofShop(),
  }: NodeRegistryOptions = {}) {
    this.#log = log;
    this.#reserved = reserved;
    this.#now = now;
    this.#limits = limits ? registrationBudget(limits) : DEFAULT_BUDGET;
    this.#budget = new NodeBudget(limits ?? REGISTRATION_LIMITS, this.#limits);
    this.descriptorSets = new DescriptorSetStore(limits ?? REGISTRATION_LIMITS);
    const { heldRoutes, nameShare } = limits ?? REGISTRATION_LIMITS;
    this.#routeOwners = new RouteOwners({ limit: heldRoutes, nameLimit: Math.floor(heldRoutes * nameShare) });
    this.instanceId = instanceId ?? randomBytes(12).toString('base64url');
    if (!this.instanceId || this.instanceId.length > MAX_INSTANCE_ID_LENGTH) {
      throw new RangeError(`instanceId: expected 1 to ${MAX_INSTANCE_ID_LENGTH} characters`);
    }
  }

  /** The registry's clock: the time nodes' registeredAt are taken by. */
  now(): Date {
    return this.#now();
  }

  /** The revision of the list now: 0 before the first change. */
  get revision(): number {
    return this.#revision;
  }

  /** What the listed nodes add to an encoded snapshot, in bytes: the running total the limits check. */
  get listBytes(): number {
    return this.#budget.bytes;
  }

  /** The current list, with descriptor sets by hash; the same object until the next change. */
  snapshot(): Snapshot {
    this.#snapshot ??= {
      revision: this.#revision,
      nodes: [...this.#entries.values()].map((entry) => entry.node),
      instanceId: this.instanceId,
    };
    return this.#snapshot;
  }

  /** Every listed node encoded (see Entry.encoded), in registration order: a snapshot's parts. */
  encodedNodes(): Uint8Array[] {
    return [...this.#entries.values()].map((entry) => entry.encoded);
  }

  /**
   * The current list as the first contract sends it: nodes carry their descriptor set's bytes, in
   * registration order, as long as the response stays within the limit clients accept; the nodes
   * whose bytes no longer fit are listed with the hash alone. The same object until the next change.
   */
  legacySnapshot(): Snapshot {
    if (this.#legacySnapshot) return this.#legacySnapshot;
    let room = this.#limits.listBytes - this.#budget.bytes;
    const nodes = [...this.#entries.values()].map((entry) => {
      if (!entry.descriptorSet || entry.legacyExtraBytes > room) return entry.node;
      room -= entry.legacyExtraBytes;
      entry.legacyNode ??= { ...entry.node, descriptorSet: entry.descriptorSet.bytes };
      return entry.legacyNode;
    });
    this.#legacySnapshot = { revision: this.#revision, nodes, instanceId: this.instanceId };
    return this.#legacySnapshot;
  }

  /**
   * Drops every listener at once: for a distributor that is stopping, so that closing its streams one
   * by one does not tell the streams still open that every node has left.
   */
  unsubscribeAll(): void {
    this.#listeners.clear();
    this.#changeListeners.clear();
  }

  /**
   * Registers a listener for the list after every later change; returns the function that
   * unregisters it. The list is built once per revision, and only while someone listens.
   */
  subscribe(listener: SnapshotListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Registers a listener for every later change; returns the function that unregisters it. */
  onChange(listener: ChangeListener): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  /**
   * Lists a node under "name@host:port" for `principal` (who the registering stream authenticated as).
   *
   * Takeover rule: an identity held by a live registration of the same principal is replaced (newest
   * wins: the earlier entry's `onReplaced` is called so that its stream can be closed), so a node that
   * restarts before its old connection is seen dead registers again at once. An identity held by
   * another principal is refused with ALREADY_EXISTS until its holder leaves.
   *
   * Reserved rule: a service of the shop's own contract, and its REST routes (or a route that would
   * take some of their paths), may be registered only under the name its `served_by` option gives
   * (see ReservedContract); any other name is refused with PERMISSION_DENIED.
   *
   * Route rule: any other REST route (a key of its descriptor set's routes, "METHOD shape") belongs to the
   * name that registered it first. Instances of that name may all declare it; a node of another name
   * that declares it is refused with ALREADY_EXISTS, and the conflict is logged, until every node of
   * the holding name has left.
   *
   * The node's descriptor set is validated once per distinct set (a set the store holds is not
   * parsed again) and held in the store under its SHA-256 while the node is listed. `routeKeys`, if
   * given, stands for the keys its set declares (a test of the route rule). `peer`, the address the
   * node registered from, is logged, and a replacement from another address is logged as a warning.
   *
   * Throws ALREADY_EXISTS; PERMISSION_DENIED; RESOURCE_EXHAUSTED when the node would break a limit; INVALID_ARGUMENT or
   * FAILED_PRECONDITION for its descriptor set (see DescriptorSetStore.resolve). A refused node
   * changes nothing and nobody is told.
   */
  join(
    description: NodeDescription,
    host: string,
    onReplaced: () => void,
    principal: string = ANONYMOUS_PRINCIPAL,
    routeKeys?: readonly string[],
    peer?: string,
  ): Lease {
    const id = nodeIdOf({ name: description.name, host, port: description.port });
    const previous = this.#entries.get(id);
    if (previous && previous.principal !== principal) {
      throw new ServiceError(
        status.ALREADY_EXISTS,
        `node ${id} is held by a live registration of another principal; it can register again once that one ends`,
      );
    }
    // A node serves the services of its descriptor set, sent or named by hash; a gateway has none.
    const routed = description.descriptorSet.length > 0 || description.descriptorSetSha256.length > 0;
    const sha256 = routed
      ? this.descriptorSets.digest(description.descriptorSet, description.descriptorSetSha256)
      : EMPTY;
    const node: Node = {
      id,
      name: description.name,
      host,
      port: description.port,
      routes: description.routes,
      descriptorSet: EMPTY,
      state:
        description.state === NodeState.NODE_STATE_DRAINING
          ? NodeState.NODE_STATE_DRAINING
          : NodeState.NODE_STATE_SERVING,
      registeredAt: this.#now(),
      descriptorSetSha256: sha256,
    };
    // SERVING and DRAINING encode to the same size, so a change of state never changes the cost.
    const encoded = Node.encode(node).finish();
    const cost: NodeCost = { name: node.name, bytes: entryBytes(encoded.length) };
    this.#budget.check(cost, previous?.cost);
    // The list has room: only now is a set the store lacks parsed and validated.
    // The entry replaced gives back the room it alone holds, as in the budget and the route owners.
    const replacedSet = previous?.descriptorSet?.key;
    const descriptorSet = routed
      ? this.descriptorSets.resolve(node.name, sha256, description.descriptorSet, replacedSet)
      : undefined;
    const keys = routeKeys ?? descriptorSet?.routeKeys ?? [];
    this.#reserved.check(description.name, descriptorSet?.services ?? [], keys);
    this.#checkRouteOwners(description.name, id, keys, previous?.routeKeys);
    if (descriptorSet) this.descriptorSets.check(node.name, descriptorSet, replacedSet);
    const lease: Lease = {
      id,
      setState: (state) => this.#setState(lease, state),
      leave: (reason) => this.#leave(lease, reason),
    };
    if (previous) {
      this.#budget.remove(previous.cost);
      this.#routeOwners.remove(id, previous.routeKeys);
    }
    this.#budget.add(cost);
    this.#routeOwners.add(node.name, id, keys);
    // Held before the replaced entry lets go, so that a set both use is never dropped in between.
    if (descriptorSet) this.descriptorSets.hold(node.name, descriptorSet);
    if (previous?.descriptorSet) this.descriptorSets.release(previous.node.name, previous.descriptorSet.key);
    const setBytes = descriptorSet?.bytes.length ?? 0;
    const legacyLength = encoded.length + (setBytes > 0 ? 1 + varintBytes(setBytes) + setBytes : 0);
    this.#entries.delete(id);
    this.#entries.set(id, {
      node,
      encoded,
      descriptorSet,
      routeKeys: keys,
      legacyNode: undefined,
      legacyExtraBytes: entryBytes(legacyLength) - cost.bytes,
      lease,
      principal,
      peer,
      cost,
      onReplaced,
    });
    this.#publish({ kind: 'added', revision: this.#revision + 1, node, encoded });
    // A replacement from another address is a takeover by the same principal (one certificate on
    // two hosts): say so, as it may be a copied certificate rather than a restart.
    const moved = previous?.peer !== undefined && peer !== undefined && previous.peer !== peer;
    this.#log[moved ? 'warn' : 'info'](
      {
        event: previous ? 'rejoin' : 'join',
        node: id,
        routes: keys.length,
        revision: this.#revision,
        ...(peer === undefined ? {} : { peer }),
        ...(moved ? { previousPeer: previous.peer } : {}),
      },
      previous
        ? moved
          ? `node ${id} registered again from ${peer}, replacing its earlier entry registered from ${previous.peer}`
          : `node ${id} registered again, replacing its earlier entry`
        : `node ${id} joined`,
    );
    previous?.onReplaced();
    return lease;
  }

  /**
   * Throws RESOURCE_EXHAUSTED when the routes new to the registry would not fit its bounds, and
   * ALREADY_EXISTS when a node of another name holds one of these routes or some of its paths.
   */
  #checkRouteOwners(
    name: string,
    id: string,
    routeKeys: readonly string[],
    previousKeys: readonly string[] | undefined,
  ): void {
    const full = this.#routeOwners.overLimit(
      name,
      routeKeys,
      previousKeys === undefined ? undefined : { id, keys: previousKeys },
    );
    if (full !== undefined)
      throw new ServiceError(status.RESOURCE_EXHAUSTED, `the registry is full: ${full}`);
    const conflict = this.#routeOwners.conflict(name, routeKeys);
    if (!conflict) return;
    const served =
      conflict.heldKey === conflict.key
        ? `route "${conflict.key}" is served by ${conflict.holder}`
        : `route "${conflict.key}" takes paths of route "${conflict.heldKey}", served by ${conflict.holder}`;
    const message =
      `${served}: a node named "${name}" cannot serve it too ` +
      '(two services cannot share a REST path; it is free again once every node of that name has left)';
    // The node retries (its holder may leave), every few seconds at most: one line per 10 s.
    limiterOf(this.#log).warn(
      `route-conflict ${id} ${conflict.key}`,
      {
        event: 'route-conflict',
        node: id,
        route: conflict.key,
        ...(conflict.heldKey === conflict.key ? {} : { heldRoute: conflict.heldKey }),
        holder: conflict.holder,
      },
      `refused ${id}: ${message}`,
    );
    throw new ServiceError(status.ALREADY_EXISTS, message);
  }

  #setState(lease: Lease, state: NodeState): void {
    const entry = this.#current(lease);
    if (!entry || entry.node.state === state) return;
    entry.node = { ...entry.node, state };
    entry.encoded = Node.encode(entry.node).finish();
    entry.legacyNode = undefined;
    this.#publish({ kind: 'stateChanged', revision: this.#revision + 1, nodeId: lease.id, state });
    this.#log.info(
      { event: 'state', node: lease.id, state: NodeState[state], revision: this.#revision },
      `node ${lease.id} is ${state === NodeState.NODE_STATE_DRAINING ? 'draining' : 'serving'}`,
    );
  }

  #leave(lease: Lease, reason: string): void {
    const entry = this.#current(lease);
    if (!entry) return;
    this.#entries.delete(lease.id);
    this.#budget.remove(entry.cost);
    this.#routeOwners.remove(lease.id, entry.routeKeys);
    if (entry.descriptorSet) this.descriptorSets.release(entry.node.name, entry.descriptorSet.key);
    this.#publish({ kind: 'removed', revision: this.#revision + 1, nodeId: lease.id });
    this.#log.info(
      { event: 'leave', node: lease.id, reason, revision: this.#revision },
      `node ${lease.id} left`,
    );
  }

  #current(lease: Lease): Entry | undefined {
    const entry = this.#entries.get(lease.id);
    return entry?.lease === lease ? entry : undefined;
  }

  #publish(change: RegistryChange): void {
    this.#revision = change.revision;
    this.#snapshot = undefined;
    this.#legacySnapshot = undefined;
    for (const listener of this.#changeListeners) listener(change);
    if (this.#listeners.size === 0) return;
    const snapshot = this.snapshot();
    for (const listener of this.#listeners) listener(snapshot);
  }
}

/** What a node of `length` encoded bytes adds to a snapshot: its field tag, its length and itself. */
function entryBytes(length: number): number {
  return 1 + varintBytes(length) + length;
}
