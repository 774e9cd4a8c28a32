import { registrationDescriptorSet } from '../../src/common/descriptors.js';
import { type NodeDescription, NodeState } from '../../src/gen/distributor.js';

/** The descriptor set a goods node registers: GoodsService with its imports and its HttpRules. */
export function goodsDescriptorSet(): Buffer {
  return registrationDescriptorSet(['shop.v1.GoodsService']);
}

/** The keys of the REST routes GoodsService declares (see HttpRoute.key). */
export const GOODS_ROUTE_KEYS = ['POST /goods', 'GET /goods', 'DELETE /goods', 'DELETE /goods/*'];

/** A valid goods-like node description; override any part. */
export function goodsNode(overrides: Partial<NodeDescription> = {}): NodeDescription {
  return {
    name: 'goods',
    host: '127.0.0.1',
    port: 9010,
    routes: [],
    descriptorSet: goodsDescriptorSet(),
    state: NodeState.NODE_STATE_UNSPECIFIED,
    descriptorSetSha256: Buffer.alloc(0),
    ...overrides,
  };
}

/** A gateway-like node description: no descriptor set. */
export function gatewayNode(overrides: Partial<NodeDescription> = {}): NodeDescription {
  return {
    name: 'gateway',
    host: '127.0.0.1',
    port: 8000,
    routes: [],
    descriptorSet: Buffer.alloc(0),
    state: NodeState.NODE_STATE_UNSPECIFIED,
    descriptorSetSha256: Buffer.alloc(0),
    ...overrides,
  };
}
