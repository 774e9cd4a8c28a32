import { createHash } from 'node:crypto';
import { createFileRegistry, type FileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import type { Node, Route } from '../gen/distributor.js';
import { type CallPlan, compileCallPlan } from './call-plan.js';

interface DescriptorEntry {
  readonly registry: FileRegistry;
  /** Plans by method and response fields. */
  readonly plans: Map<string, CallPlan>;
}

/**
 * Compiled call plans, kept across snapshots so that a new revision recompiles nothing it has seen.
 *
 * A node's descriptor set is identified by the node's registration (id and registration time: a
 * node that registers again, perhaps with new descriptors, is looked at afresh) and shared by content
 * (a digest): the instances of one service register the same bytes, so they share one registry and
 * one plan per route, and a retry can reuse the request bytes encoded for another instance.
 */
export class PlanCache {
  readonly #digestByRegistration = new Map<string, string>();
  readonly #byDigest = new Map<string, DescriptorEntry>();

  /** The plan of one of a node's routes; throws when the node's descriptors cannot serve it. */
  plan(node: Node, route: Route): CallPlan {
    const entry = this.#entry(node);
    const planKey = `${route.grpcMethod} ${route.responseFields.join(',')}`;
    let plan = entry.plans.get(planKey);
    if (!plan) {
      plan = compileCallPlan(entry.registry, route.grpcMethod, route.responseFields);
      entry.plans.set(planKey, plan);
    }
    return plan;
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

  #entry(node: Node): DescriptorEntry {
    const registration = registrationKey(node);
    let digest = this.#digestByRegistration.get(registration);
    if (digest === undefined) {
      digest = createHash('sha256').update(node.descriptorSet).digest('base64');
      this.#digestByRegistration.set(registration, digest);
    }
    let entry = this.#byDigest.get(digest);
    if (!entry) {
      let registry: FileRegistry;
      try {
        registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, node.descriptorSet));
      } catch (error) {
        throw new Error(`its descriptor set does not resolve: ${(error as Error).message}`);
      }
      entry = { registry, plans: new Map() };
      this.#byDigest.set(digest, entry);
    }
    return entry;
  }
}

function registrationKey(node: Node): string {
  return `${node.id} ${node.registeredAt?.getTime() ?? 0}`;
}
