import { describe, expect, it } from 'vitest';
import { DistributorTelemetry } from '../../src/distributor/distributor-telemetry.js';
import { NodeRegistry } from '../../src/distributor/node-registry.js';
import { goodsNode } from '../helpers/nodes.js';

describe('DistributorTelemetry', () => {
  it('reports a node name whose last instance left as 0, not as a series that vanished', async () => {
    const telemetry = new DistributorTelemetry();
    const registry = new NodeRegistry();
    telemetry.watchRegistry(registry, () => 0);
    const nodesSeries = async () =>
      (await telemetry.registry!.metrics())
        .split('\n')
        .filter((line) => line.startsWith('shop_registry_nodes{'))
        .sort();
    const lease = registry.join(goodsNode({ port: 9010 }), '127.0.0.1', () => {});
    expect(await nodesSeries()).toEqual([
      'shop_registry_nodes{name="goods",state="draining"} 0',
      'shop_registry_nodes{name="goods",state="serving"} 1',
    ]);
    lease.leave('test');
    expect(await nodesSeries()).toEqual([
      'shop_registry_nodes{name="goods",state="draining"} 0',
      'shop_registry_nodes{name="goods",state="serving"} 0',
    ]);
  });

  it('reports as 0 a name whose only instance came and went between two scrapes', async () => {
    const telemetry = new DistributorTelemetry();
    const registry = new NodeRegistry();
    telemetry.watchRegistry(registry, () => 0);
    registry.join(goodsNode({ port: 9010 }), '127.0.0.1', () => {}).leave('crashed');
    const metrics = await telemetry.registry!.metrics();
    expect(metrics).toContain('shop_registry_nodes{name="goods",state="serving"} 0');
    expect(metrics).toContain('shop_registry_nodes{name="goods",state="draining"} 0');
  });
});
