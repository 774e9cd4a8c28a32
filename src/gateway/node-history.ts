import { formatHostPort } from '../common/config.js';
import { type Node, NodeState } from '../gen/distributor.js';
import type { UnreachableReason } from './upstream.js';

/** One node as the status page shows it. */
export interface NodeStatus {
  readonly id: string;
  readonly name: string;
  /** "gone": listed before and not any more (shown for a while after it left). */
  readonly state: 'serving' | 'draining' | 'gone';
  /** "host:port". */
  readonly address: string;
  readonly registeredAt: string | null;
  /**
   * Seconds since it registered; for a gone node, how long it had been registered when it left.
   * Counted by the distributor's clock, whose time registeredAt is (see describe).
   */
  readonly ageSeconds: number | null;
  /** When it left, for a gone node. */
  readonly goneAt?: string;
  /**
   * Listed before the distributor restarted and not registered again yet: still routed to, for the
   * gateway's restart grace at most (see RestartGrace).
   */
  readonly kept?: true;
  /**
   * Listed, and this gateway holds a connection to it now: a call to it starts at once. Absent while
   * it connects or fails to (an address it cannot reach: link-local, another host's, behind a
   * firewall), and for a node it routes nothing to. The launcher says the shop is ready only once
   * every service has such a node (see ShopReadiness).
   */
  readonly connected?: true;
  /**
   * Listed, and this gateway is connecting to it with no attempt failed yet: its first connection,
   * or a new one after it lost the last (a restart). A call to it waits for the attempt.
   */
  readonly connecting?: true;
  /**
   * Listed, and this gateway holds no connection to it now, none failed: its last one was closed
   * (idle, or by its peer); the next call, or the gateway within a few seconds, makes one.
   */
  readonly idle?: true;
  /**
   * Listed, but this gateway has failed to connect to it (refused, or past the connect timeout), or
   * passed it over after a health check it did not answer, for this many seconds: it gets no calls
   * from here meanwhile, though the distributor lists it (a partition, a frozen process).
   */
  readonly unreachableSeconds?: number;
  /** With unreachableSeconds: what this gateway last learnt of why (see UnreachableReason). */
  readonly unreachableReason?: UnreachableReason;
  /**
   * Unreachable, and out of reach (see outOfReach in upstream.ts): no call is handed to it, and
   * a route no other instance serves is answered 503 at once rather than at its deadline.
   */
  readonly outOfReach?: true;
}

/** Options of {@link NodeHistory}. */
export interface NodeHistoryOptions {
  /** How long a node that left stays listed as gone (default 60 s). */
  keepGoneMs?: number;
  /** At most this many gone nodes are kept, the oldest dropped first (default 256). */
  maxGone?: number;
}

/**
 * The nodes the gateway routes to, and those it has seen leave: each node list is compared with
 * the one before, and a node missing from the new one is remembered as gone for a minute, so that
 * the status page can say "gone" rather than let a row vanish unnoticed.
 */
export class NodeHistory {
  readonly #keepGoneMs: number;
  readonly #maxGone: number;
  #kept: ReadonlySet<Node> = new Set();
  /** The nodes listed now, by id, in the order of the list. */
  #listed = new Map<string, Node>();
  readonly #gone = new Map<string, { node: Node; goneAt: number }>();

  constructor(options: NodeHistoryOptions = {}) {
    this.#keepGoneMs = options.keepGoneMs ?? 60_000;
    this.#maxGone = options.maxGone ?? 256;
  }

  /** Takes the node list the gateway now routes to; `kept` are those of them kept through a distributor restart. */
  update(nodes: readonly Node[], nowMs = Date.now(), kept: readonly Node[] = []): void {
    const current = new Map(nodes.map((node) => [node.id, node]));
    for (const [id, node] of this.#listed) {
      if (!current.has(id)) this.#gone.set(id, { node, goneAt: nowMs });
    }
    for (const id of current.keys()) this.#gone.delete(id);
    while (this.#gone.size > this.#maxGone) this.#gone.delete(this.#gone.keys().next().value!);
    this.#listed = current;
    this.#kept = new Set(kept);
  }

  /**
   * The listed nodes, then the ones gone within the last minute, newest departure first.
   * `distributorClockOffsetMs`, how far the distributor's clock is ahead of this host's, puts the
   * ages on the distributor's clock, by which registeredAt was taken: on another host, one whose
   * clock is an hour off would otherwise show every node an hour old, or 0 s for an hour.
   */
  describe(nowMs = Date.now(), distributorClockOffsetMs = 0): NodeStatus[] {
    for (const [id, { goneAt }] of this.#gone) {
      if (nowMs - goneAt > this.#keepGoneMs) this.#gone.delete(id);
    }
    const live = [...this.#listed.values()].map((node) => {
      const described = describeNode(node, nowMs + distributorClockOffsetMs);
      return this.#kept.has(node) ? { ...described, kept: true as const } : described;
    });
    const gone = [...this.#gone.values()]
      .sort((a, b) => b.goneAt - a.goneAt)
      .map(({ node, goneAt }) => ({
        ...describeNode(node, goneAt + distributorClockOffsetMs),
        state: 'gone' as const,
        goneAt: new Date(goneAt).toISOString(),
      }));
    return [...live, ...gone];
  }
}

function describeNode(node: Node, nowMs: number): NodeStatus {
  const registeredAt = node.registeredAt?.getTime();
  return {
    id: node.id,
    name: node.name,
    state: node.state === NodeState.NODE_STATE_DRAINING ? 'draining' : 'serving',
    address: formatHostPort({ host: node.host, port: node.port }),
    registeredAt: registeredAt === undefined ? null : new Date(registeredAt).toISOString(),
    ageSeconds: registeredAt === undefined ? null : Math.max(0, Math.round((nowMs - registeredAt) / 1000)),
  };
}
