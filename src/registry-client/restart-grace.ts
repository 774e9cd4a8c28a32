import { type Logger, silentLogger } from '../common/logger.js';
import { nodeIdOf } from '../common/node-id.js';
import type { Node, Snapshot } from '../gen/distributor.js';

/** Options of {@link RestartGrace}. */
export interface RestartGraceOptions {
  /** How long instances missing after a restart are kept at most. */
  graceMs: number;
  /**
   * Applies a node list (to the gateway's route table, say); `kept` are those of its nodes that
   * the distributor no longer lists, kept through its restart.
   */
  apply: (snapshot: Snapshot, kept: readonly Node[]) => void;
  log?: Logger;
}

/**
 * Keeps a node list's instances through a distributor restart: the gateway's routes, the
 * `distributor:///` resolver's addresses.
 *
 * A restarted distributor knows nobody: every node registers again by itself, one after the other,
 * so its first snapshots are partial. Applied as they are, they would remove routes whose instances
 * are alive and about to come back (their requests answered 503 meanwhile). The same holds for
 * a distributor that stays up but loses every node at once (frozen, or cut off from the network):
 * it lists them as gone until each registers again. So after a restart or a lost stream (a
 * snapshot from another distributor instance, the registration stream lost and come back, even to
 * the same instance, or a snapshot's revision that went back) the nodes of the
 * last snapshot before it that are missing from the new ones are kept, for `graceMs` at most or
 * until every one of them is back. Nodes in the new snapshots are taken as they are (state
 * included), and one registered anew (a later registeredAt) is kept no more (should it leave again,
 * it is gone); a node that
 * really left is dropped when the grace period ends.
 */
export class RestartGrace {
  readonly #graceMs: number;
  readonly #apply: (snapshot: Snapshot, kept: readonly Node[]) => void;
  readonly #log: Logger;
  /** The last snapshot received. */
  #latest: Snapshot | undefined;
  /** The stream was lost since the last snapshot: the next one may come from a new distributor. */
  #reconnecting = false;
  /** During a grace period: the nodes known before the restart, by address. */
  #kept: Map<string, Node> | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Runs from the stream's return for `graceMs`: the time a lost stream still explains a change. */
  #backTimer: NodeJS.Timeout | undefined;

  constructor(options: RestartGraceOptions) {
    this.#graceMs = options.graceMs;
    this.#apply = options.apply;
    this.#log = options.log ?? silentLogger();
  }

  /** The registration stream has ended: what comes next may be a restarted distributor. */
  disconnected(): void {
    this.#reconnecting = true;
    clearTimeout(this.#backTimer);
    this.#backTimer = undefined;
  }

  /**
   * The stream is back (registered again, or answered). A stream resumed with nothing missed brings
   * no list: the changes a lost stream explains (nodes listed as gone until they register again)
   * come within `graceMs` of its return, and a change after that (a node that crashed an hour
   * later) is taken as it is, not as one of them.
   */
  connected(): void {
    if (!this.#reconnecting || this.#backTimer !== undefined) return;
    this.#backTimer = setTimeout(() => {
      this.#backTimer = undefined;
      this.#reconnecting = false;
    }, this.#graceMs);
    this.#backTimer.unref();
  }

  /** A snapshot from the distributor. */
  snapshot(snapshot: Snapshot): void {
    const previous = this.#latest;
    // A snapshot from another distributor instance is a restart, and so is a revision that went
    // back. So is a lost stream, even one resumed on the same instance: what cut this stream (a
    // frozen distributor thawed, a network blip at its host) most often cut every node's too, and the
    // distributor, still running, has listed them as gone until each registers again; applied as
    // they are, those lists would leave routes with no instance for a moment (503). A stream lost by
    // this component alone resumes with every node there: nothing is missing, nothing kept.
    const restarted =
      previous !== undefined &&
      (this.#reconnecting ||
        (snapshot.instanceId && previous.instanceId
          ? snapshot.instanceId !== previous.instanceId
          : snapshot.revision < previous.revision));
    this.#reconnecting = false;
    clearTimeout(this.#backTimer);
    this.#backTimer = undefined;
    this.#latest = snapshot;
    if (restarted && this.#graceMs > 0) {
      // Another restart or lost stream during a grace: the nodes kept still are, those that came
      // back or joined since are kept as well, and the grace starts again for them all.
      const kept = this.#kept ?? new Map<string, Node>();
      for (const node of previous.nodes) kept.set(addressKey(node), node);
      this.#kept = kept;
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.#settle('grace period over'), this.#graceMs);
      this.#timer.unref();
    }
    if (!this.#kept) {
      this.#apply(snapshot, []);
      return;
    }
    // A node registered anew is back: taken as listed from now on, so that if it leaves again (a
    // rolling restart that reaches it during the grace) it is gone, not brought back as it was
    // before the restart (SERVING, say, after it said it drained). One still listed under its old
    // registration is not back: a distributor that lost every stream at once lists it until it
    // sees its stream end, and it stays kept.
    const present = new Set<string>();
    for (const node of snapshot.nodes) {
      const key = addressKey(node);
      present.add(key);
      const kept = this.#kept.get(key);
      if (kept && registeredAnew(node, kept)) this.#kept.delete(key);
    }
    const missing = [...this.#kept].filter(([key]) => !present.has(key)).map(([, node]) => node);
    if (missing.length === 0) {
      this.#settle('every instance is back');
      return;
    }
    this.#log.debug(
      { event: 'restart-grace', revision: snapshot.revision, kept: missing.map((node) => node.id) },
      'distributor restarted: keeping the instances not registered again yet',
    );
    this.#apply({ ...snapshot, nodes: [...snapshot.nodes, ...missing] }, missing);
  }

  /** Ends a grace period at once, if one runs. */
  stop(): void {
    clearTimeout(this.#timer);
    clearTimeout(this.#backTimer);
    this.#backTimer = undefined;
    this.#kept = undefined;
  }

  #settle(reason: string): void {
    clearTimeout(this.#timer);
    const kept = this.#kept;
    this.#kept = undefined;
    const latest = this.#latest!;
    const gone = kept
      ? [...kept.keys()].filter((key) => !latest.nodes.some((node) => addressKey(node) === key))
      : [];
    if (gone.length > 0) {
      this.#log.info(
        { event: 'restart-grace-over', revision: latest.revision, dropped: gone },
        `distributor restart settled (${reason}): dropping instances that did not come back`,
      );
    }
    this.#apply(latest, []);
  }
}

/** Whether `node` is a registration made after `kept`'s (unknown when either lacks its time). */
function registeredAnew(node: Node, kept: Node): boolean {
  return (
    node.registeredAt !== undefined &&
    kept.registeredAt !== undefined &&
    node.registeredAt.getTime() !== kept.registeredAt.getTime()
  );
}

/** A node's name and address: the same instance before and after a restart, whatever its id. */
function addressKey(node: Node): string {
  return nodeIdOf(node);
}
