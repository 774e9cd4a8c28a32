import { createHash } from 'node:crypto';
import type { FileRegistry } from '@bufbuild/protobuf';
import { readHttpRoutes, registryOfDescriptorSet } from '../common/http-routes.js';
import type { Node } from '../gen/distributor.js';
import { anyTypesOf } from './any-types.js';
import { type CallPlan, compileCallPlan } from './call-plan.js';

/** The call plans of one descriptor set: one per REST route it declares. */
export interface NodePlans {
  readonly plans: readonly CallPlan[];
  /** One sentence per route that cannot be served (left out of `plans`). */
  readonly problems: readonly string[];
}

const NONE: NodePlans = { plans: [], problems: [] };

/**
 * Compiled call plans, kept across snapshots so that a new revision recompiles nothing it has seen.
 *
 * A node's descriptor set is identified by the node's registration (id and registration time: a
 * node that registers again, perhaps with new descriptors, is looked at afresh) and shared by content
 * (a digest): the instances of one service register the same bytes, so they share one set of plans,
 * and a retry can reuse the request bytes encoded for another instance.
 */
export class PlanCache {
  readonly #digestByRegistration = new Map<string, string>();
  readonly #byDigest = new Map<string, NodePlans>();

  /** The plans of a node's routes, read from the google.api.http options of its descriptor set. */
  plansOf(node: Node): NodePlans {
    if (node.descriptorSet.length === 0) return NONE;
    const registration = registrationKey(node);
    let digest = this.#digestByRegistration.get(registration);
    if (digest === undefined) {
      digest = createHash('sha256').update(node.descriptorSet).digest('base64');
      this.#digestByRegistration.set(registration, digest);
    }
    let entry = this.#byDigest.get(digest);
    if (!entry) {
      entry = compileNodePlans(node.descriptorSet);
      this.#byDigest.set(digest, entry);
    }
    return entry;
  }

  /** Forgets every registration and descriptor set not used by these nodes. */
  retainOnly(nodes: readonly Node[]): void {
    const registrations = new Set(nodes.map(registrationKey));
    for (const key of this.#digestByRegistration.keys()) {
      if (!registrations.has(key)) this.#digestByRegistration.delete(key);
    }
    const digests = new Set(this.#digestByRegistration.values());
    for (const digest of this.#byDigest.keys()) {
      if (!digests.has(digest)) this.#byDigest.delete(digest);
    }
  }
}

function compileNodePlans(descriptorSet: Uint8Array): NodePlans {
  let read: ReturnType<typeof readHttpRoutes>;
  let registry: FileRegistry;
  try {
    registry = registryOfDescriptorSet(descriptorSet);
    read = readHttpRoutes(registry);
  } catch (error) {
    return { plans: [], problems: [`its descriptor set does not resolve: ${(error as Error).message}`] };
  }
  // The messages its Anys may hold: its own, for every route of the set (made once, if any route is read).
  const types = read.routes.length > 0 ? anyTypesOf(registry) : undefined;
  const plans: CallPlan[] = [];
  const problems = [...read.problems];
  for (const route of read.routes) {
    try {
      plans.push(compileCallPlan(route, types));
    } catch (error) {
      problems.push(`${route.key} (${route.grpcMethod}): ${(error as Error).message}`);
    }
  }
  return { plans, problems };
}

function registrationKey(node: Node): string {
  return `${node.id} ${node.registeredAt?.getTime() ?? 0}`;
}
