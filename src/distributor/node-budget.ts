import { status } from '@grpc/grpc-js';
import { ServiceError } from '../common/service-error.js';
import type { RegistrationBudget, RegistrationLimits } from './registration-limits.js';

/** A listed node's size, as {@link NodeBudget} counts it. */
export interface NodeCost {
  readonly name: string;
  /** What the node adds to an encoded snapshot (see nodeEntryBytes). */
  readonly bytes: number;
}

interface Usage {
  nodes: number;
  bytes: number;
}

function exhausted(message: string): ServiceError {
  return new ServiceError(status.RESOURCE_EXHAUSTED, message);
}

/**
 * Counts what the listed nodes take, in all and per name, and refuses a node that would take more
 * than its limits allow. Since nodes are admitted only while the list stays within budget and never
 * pushed out, a flood fills at most the room left and the nodes already listed stay.
 */
export class NodeBudget {
  readonly #limits: RegistrationLimits;
  readonly #budget: RegistrationBudget;
  readonly #perName = new Map<string, Usage>();
  #nodes = 0;
  #bytes = 0;

  constructor(limits: RegistrationLimits, budget: RegistrationBudget) {
    this.#limits = limits;
    this.#budget = budget;
  }

  /** Live nodes. */
  get nodes(): number {
    return this.#nodes;
  }

  /** What the live nodes add to a snapshot, in bytes. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Throws RESOURCE_EXHAUSTED if `cost` cannot be listed; `replacing` is the entry it would take the
   * place of (same identity, so same name), whose room it may reuse.
   */
  check(cost: NodeCost, replacing?: NodeCost): void {
    const limits = this.#limits;
    const name = this.#perName.get(cost.name) ?? { nodes: 0, bytes: 0 };
    const added = replacing ? 0 : 1;
    const freed = replacing?.bytes ?? 0;
    if (this.#nodes + added > limits.nodes) {
      throw exhausted(`the registry is full: at most ${limits.nodes} nodes`);
    }
    if (name.nodes + added > limits.nodesPerName) {
      throw exhausted(`too many nodes named ${cost.name}: at most ${limits.nodesPerName}`);
    }
    if (name.bytes - freed + cost.bytes > this.#budget.nameBytes) {
      throw exhausted(
        `too much registered under the name ${cost.name}: its nodes would take ` +
          `${name.bytes - freed + cost.bytes} bytes of the node list, over their share of ${this.#budget.nameBytes}`,
      );
    }
    if (this.#bytes - freed + cost.bytes > this.#budget.listBytes) {
      throw exhausted(
        `the registry is full: the node list would take ${this.#bytes - freed + cost.bytes} bytes, ` +
          `over the ${this.#budget.listBytes} that keep every response within ${this.#limits.snapshotBytes} bytes`,
      );
    }
  }

  /** Counts a node that was listed. */
  add(cost: NodeCost): void {
    const name = this.#perName.get(cost.name) ?? { nodes: 0, bytes: 0 };
    name.nodes++;
    name.bytes += cost.bytes;
    this.#perName.set(cost.name, name);
    this.#nodes++;
    this.#bytes += cost.bytes;
  }

  /** Stops counting a node that left or was replaced. */
  remove(cost: NodeCost): void {
    const name = this.#perName.get(cost.name);
    if (!name) return;
    name.nodes--;
    name.bytes -= cost.bytes;
    if (name.nodes === 0) this.#perName.delete(cost.name);
    this.#nodes--;
    this.#bytes -= cost.bytes;
  }
}
