import type { NodeListSubscription } from '../gen/distributor.js';
import type { NodeRegistry, RegistryChange } from './node-registry.js';
import { encodeChangeUpdate, encodeResumedUpdate, encodeSnapshotUpdate } from './update-encoding.js';

/** Options of {@link NodeListFeed}. */
export interface NodeListFeedOptions {
  /** The most recent events kept for subscribers that resume (default 4096). */
  historyEvents?: number;
  /** The most bytes those events take (default 1 MiB). */
  historyBytes?: number;
}

/** A subscriber's sink for events: called with the same buffer for every subscriber. */
export type EventSink = (event: Buffer) => void;

/** The least backlog a stream may have before a snapshot replaces it, however small the list. */
const MIN_BACKLOG_BYTES = 64 * 1024;

interface HeldEvent {
  readonly revision: number;
  readonly bytes: Buffer;
}

/**
 * The node list as a stream of updates: each change of the registry is encoded once, as response
 * bytes that every Register and Watch stream shares, and kept in a bounded history so that a
 * subscriber that reconnects to the same instance gets only what it missed.
 */
export class NodeListFeed {
  readonly #registry: NodeRegistry;
  readonly #historyEvents: number;
  readonly #historyBytes: number;
  readonly #sinks = new Set<EventSink>();
  /** Consecutive revisions, oldest first. */
  #history: HeldEvent[] = [];
  #heldBytes = 0;
  #snapshot: { revision: number; bytes: Buffer } | undefined;
  readonly #stop: () => void;

  constructor(registry: NodeRegistry, options: NodeListFeedOptions = {}) {
    this.#registry = registry;
    this.#historyEvents = options.historyEvents ?? 4096;
    this.#historyBytes = options.historyBytes ?? 1024 * 1024;
    this.#stop = registry.onChange((change) => this.#publish(change));
  }

  /** The update with the whole list now, as response bytes: encoded once per revision. */
  snapshot(): Buffer {
    const revision = this.#registry.revision;
    if (this.#snapshot?.revision !== revision) {
      const bytes = encodeSnapshotUpdate(this.#registry.instanceId, revision, this.#registry.encodedNodes());
      this.#snapshot = { revision, bytes };
    }
    return this.#snapshot.bytes;
  }

  /**
   * How many bytes of events may wait for a stream before it is sent a snapshot instead: about what
   * the snapshot costs (at least 64 KiB), so that a slow stream never holds more than a snapshot would.
   */
  backlogLimit(): number {
    return Math.max(MIN_BACKLOG_BYTES, this.#registry.listBytes);
  }

  /**
   * What a subscription that starts now is sent first: if it resumes from this instance at a
   * revision the history still covers, and what it missed costs no more than a snapshot, the
   * `resumed` marker and the events since; otherwise a snapshot.
   */
  start(from: NodeListSubscription | undefined): Buffer[] {
    const instanceId = this.#registry.instanceId;
    const current = this.#registry.revision;
    if (from?.resumeInstanceId === instanceId && from.resumeRevision <= current) {
      const held = from.resumeRevision;
      const oldest = this.#history[0]?.revision ?? current + 1;
      if (held + 1 >= oldest) {
        const missed = this.#history.slice(held + 1 - oldest).map((event) => event.bytes);
        const missedBytes = missed.reduce((sum, bytes) => sum + bytes.length, 0);
        if (missedBytes <= this.backlogLimit()) return [encodeResumedUpdate(instanceId, held), ...missed];
      }
    }
    return [this.snapshot()];
  }

  /** Sends every later event to `sink`; returns the function that stops it. */
  subscribe(sink: EventSink): () => void {
    this.#sinks.add(sink);
    return () => this.#sinks.delete(sink);
  }

  /** Stops following the registry and drops every sink. */
  close(): void {
    this.#stop();
    this.#sinks.clear();
  }

  #publish(change: RegistryChange): void {
    const bytes = encodeChangeUpdate(this.#registry.instanceId, change);
    this.#history.push({ revision: change.revision, bytes });
    this.#heldBytes += bytes.length;
    let drop = 0;
    while (
      drop < this.#history.length &&
      (this.#history.length - drop > this.#historyEvents || this.#heldBytes > this.#historyBytes)
    ) {
      this.#heldBytes -= this.#history[drop]!.bytes.length;
      drop++;
    }
    if (drop > 0) this.#history = this.#history.slice(drop);
    for (const sink of this.#sinks) sink(bytes);
  }
}
