import type { DistributorServer } from '../../../src/distributor/distributor-server.js';

/** The names of the nodes a distributor lists now, sorted. */
export const listed = (distributor: DistributorServer): string[] =>
  distributor.registry
    .snapshot()
    .nodes.map((node) => node.name)
    .sort();

/**
 * The ids of the nodes the distributor removes from its list from now on, as it removes them; the
 * listener is taken off by `cleanups` (a harness's, run after each test).
 */
export function removalsFrom(distributor: DistributorServer, cleanups: Array<() => unknown>): string[] {
  const removed: string[] = [];
  cleanups.push(
    distributor.registry.onChange((change) => {
      if (change.kind === 'removed') removed.push(change.nodeId);
    }),
  );
  return removed;
}
