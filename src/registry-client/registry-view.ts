import { EventEmitter } from 'node:events';
import { detailsCause, limiterOf } from '../common/log-limiter.js';
import { type Logger, silentLogger } from '../common/logger.js';
import type { Node, NodeListSubscription, NodeListUpdate, Snapshot } from '../gen/distributor.js';

/** Fetches a descriptor set by its SHA-256 (GetDescriptorSet); rejects when it cannot. */
export type DescriptorSetFetcher = (sha256: Buffer) => Promise<Buffer>;

/** Options of {@link RegistryView}. */
export interface RegistryViewOptions {
  /**
   * Fills in each routed node's descriptor set, fetched once per distinct hash and kept while a
   * listed node uses it. Without it (a resolver, say) snapshots carry the hashes alone.
   */
  fetchDescriptorSet?: DescriptorSetFetcher;
  log?: Logger;
  /** How long to wait before fetching a set again after a failure (default 1000 ms). */
  retryMs?: number;
}

interface RegistryViewEvents {
  /** The list changed: the whole list, as a snapshot. */
  snapshot: [snapshot: Snapshot];
}

/** What {@link RegistryView.apply} asks of the stream's owner. */
export type ApplyResult = 'applied' | 'resync';

/**
 * A subscriber's copy of the distributor's node list, kept from a snapshot and the events after it
 * (NodeListUpdate), and handed on as whole snapshots: the shape the gateway's route table takes.
 *
 * - Each event must carry the next revision of the instance the list came from; anything else (a
 *   gap, another instance, an event for a node it does not hold) is not applied, and `apply` says
 *   'resync': the owner asks for a snapshot, and until one (or a resume) arrives, events are ignored.
 * - A new stream starts the same way ({@link restart}); {@link resumePoint} says what to resume from.
 *   After a distributor restart the instance id differs and the distributor sends a snapshot.
 * - With `fetchDescriptorSet`, each distinct set is fetched once and filled into every node that
 *   uses it. A snapshot is handed on once the sets it needs have arrived (or failed to); after that,
 *   a node whose set has not arrived yet is left out until it has (a node that cannot be routed to
 *   yet is better absent than present without its descriptors).
 * - Snapshots are emitted at most once per turn of the event loop, with the latest revision: within
 *   one instance, revisions never go back. A snapshot repeats its revision only when a set that was
 *   missing arrives without any change of the list.
 */
export class RegistryView extends EventEmitter<RegistryViewEvents> {
  readonly #fetch: DescriptorSetFetcher | undefined;
  readonly #log: Logger;
  readonly #retryMs: number;
  readonly #nodes = new Map<string, Node>();
  /** Descriptor sets by hex SHA-256, while a listed node uses them. */
  readonly #sets = new Map<string, Buffer>();
  readonly #fetching = new Set<string>();
  /**
   * Sets whose last fetch failed, not fetched again until the next change of the list or their retry
   * timer: without it, every emit after a failure would fetch again at once, in a loop with no delay.
   */
  readonly #failed = new Set<string>();
  /** Listed nodes with their descriptor set filled in, by the node object they stand for. */
  readonly #filled = new WeakMap<Node, Node>();
  #instanceId = '';
  #revision = 0;
  /** The list is known (a snapshot arrived) and events apply to it. */
  #based = false;
  /** Waiting for a snapshot or a resume: events are ignored. */
  #awaitingBase = true;
  /** A snapshot arrived and its descriptor sets are on their way: emit once they are here. */
  #settling = false;
  #emitScheduled: NodeJS.Immediate | undefined;
  readonly #retryTimers = new Set<NodeJS.Timeout>();
  #snapshot: Snapshot | undefined;
  #closed = false;

  constructor(options: RegistryViewOptions = {}) {
    super();
    this.#fetch = options.fetchDescriptorSet;
    this.#log = options.log ?? silentLogger();
    this.#retryMs = options.retryMs ?? 1_000;
  }

  /** The last snapshot emitted. */
  get snapshot(): Snapshot | undefined {
    return this.#snapshot;
  }

  /** The instance and revision of the list held: what a new subscription resumes from. */
  resumePoint(): NodeListSubscription {
    return this.#based
      ? { resumeInstanceId: this.#instanceId, resumeRevision: this.#revision }
      : { resumeInstanceId: '', resumeRevision: 0 };
  }

  /** A new stream (or a resync) starts: events are ignored until it sends a snapshot or resumes. */
  restart(): void {
    this.#awaitingBase = true;
  }

  /** Applies one update of the stream. */
  apply(update: NodeListUpdate): ApplyResult {
    const change = update.change;
    if (!change) return this.#refuse(update, 'an update without a change');
    if (change.$case === 'snapshot') {
      this.#nodes.clear();
      for (const node of change.value.nodes) this.#nodes.set(node.id, node);
      this.#instanceId = update.instanceId;
      this.#revision = update.revision;
      this.#based = true;
      this.#awaitingBase = false;
      this.#settling = true;
      this.#failed.clear();
      this.#scheduleEmit();
      return 'applied';
    }
    if (this.#awaitingBase) {
      if (change.$case !== 'resumed') return 'applied';
      if (!this.#based || update.instanceId !== this.#instanceId || update.revision !== this.#revision) {
        return this.#refuse(update, 'a resume from a point this view does not hold');
      }
      this.#awaitingBase = false;
      return 'applied';
    }
    if (change.$case === 'resumed') return this.#refuse(update, 'a resume in the middle of a stream');
    if (update.instanceId !== this.#instanceId || update.revision !== this.#revision + 1) {
      return this.#refuse(update, `a gap after revision ${this.#revision}`);
    }
    switch (change.$case) {
      case 'added':
        this.#nodes.delete(change.value.id);
        this.#nodes.set(change.value.id, change.value);
        break;
      case 'removed':
        if (!this.#nodes.delete(change.value))
          return this.#refuse(update, `removal of unknown ${change.value}`);
        break;
      case 'stateChanged': {
        const node = this.#nodes.get(change.value.nodeId);
        if (!node) return this.#refuse(update, `state of unknown ${change.value.nodeId}`);
        this.#nodes.set(node.id, { ...node, state: change.value.state });
        break;
      }
    }
    this.#revision = update.revision;
    this.#failed.clear();
    this.#scheduleEmit();
    return 'applied';
  }

  /** Stops emitting and fetching. */
  close(): void {
    this.#closed = true;
    if (this.#emitScheduled) clearImmediate(this.#emitScheduled);
    for (const timer of this.#retryTimers) clearTimeout(timer);
    this.#retryTimers.clear();
  }

  #refuse(update: NodeListUpdate, what: string): ApplyResult {
    this.#log.warn(
      {
        event: 'registry-resync',
        held: `${this.#instanceId}@${this.#revision}`,
        got: `${update.instanceId}@${update.revision}`,
      },
      `node list: ${what}; asking the distributor for a snapshot`,
    );
    this.#awaitingBase = true;
    return 'resync';
  }

  #scheduleEmit(): void {
    if (this.#closed || this.#emitScheduled) return;
    this.#emitScheduled = setImmediate(() => {
      this.#emitScheduled = undefined;
      this.#emit();
    });
  }

  #emit(): void {
    if (this.#closed || !this.#based) return;
    const nodes: Node[] = [];
    const used = new Set<string>();
    for (const node of this.#nodes.values()) {
      const filled = this.#fill(node, used);
      if (filled) nodes.push(filled);
    }
    // A whole list is handed on once its sets are here (or failed to come): nobody should see the
    // services it lists as gone for the moment it takes to fetch their descriptors.
    if (this.#settling && this.#fetching.size > 0) return;
    this.#settling = false;
    for (const key of this.#sets.keys()) if (!used.has(key)) this.#sets.delete(key);
    this.#snapshot = { revision: this.#revision, nodes, instanceId: this.#instanceId };
    this.emit('snapshot', this.#snapshot);
  }

  /** The node as emitted: with its descriptor set, or undefined while the set is on its way. */
  #fill(node: Node, used: Set<string>): Node | undefined {
    if (!this.#fetch || node.descriptorSetSha256.length === 0 || node.descriptorSet.length > 0) return node;
    const key = node.descriptorSetSha256.toString('hex');
    used.add(key);
    const bytes = this.#sets.get(key);
    if (!bytes) {
      this.#fetchSet(key, node.descriptorSetSha256);
      return undefined;
    }
    let filled = this.#filled.get(node);
    if (!filled) {
      filled = { ...node, descriptorSet: bytes };
      this.#filled.set(node, filled);
    }
    return filled;
  }

  #fetchSet(key: string, sha256: Buffer): void {
    if (this.#fetching.has(key) || this.#failed.has(key) || !this.#fetch) return;
    this.#fetching.add(key);
    this.#fetch(Buffer.from(sha256)).then(
      (bytes) => {
        this.#fetching.delete(key);
        if (this.#closed) return;
        this.#sets.set(key, bytes);
        this.#scheduleEmit();
      },
      (error: unknown) => {
        this.#fetching.delete(key);
        if (this.#closed) return;
        // Not fetched again by the emit this schedules: a snapshot that waited for it goes on without
        // its nodes ("or failed to"), and the set is fetched again at the next change or the timer.
        this.#failed.add(key);
        this.#scheduleEmit();
        // One line per set and reason every 10 s, with a count of the ones left out: a refusal that
        // lasts (a clock that jumped past the registry token's proof window, say) is retried every
        // second, and wrote a warning with its stack every second.
        const { code, details } = (error ?? {}) as { code?: unknown; details?: string };
        limiterOf(this.#log).warn(
          `descriptor-set-fetch ${key} ${String(code)} ${detailsCause(details ?? String(error))}`,
          { event: 'descriptor-set-fetch', sha256: key, err: error },
          `could not fetch descriptor set ${key}${details ? ` (${details})` : ''}; trying again every ${this.#retryMs} ms while a listed node needs it`,
        );
        // Tried again at the next change, or when this timer fires if a listed node still needs it.
        const timer = setTimeout(() => {
          this.#retryTimers.delete(timer);
          this.#failed.delete(key);
          const node = [...this.#nodes.values()].find((candidate) =>
            candidate.descriptorSetSha256.equals(sha256),
          );
          if (node && !this.#sets.has(key)) this.#fetchSet(key, sha256);
        }, this.#retryMs);
        timer.unref();
        this.#retryTimers.add(timer);
      },
    );
  }
}
