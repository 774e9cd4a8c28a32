import {
  encodeDescriptorSet,
  filesForServices,
  loadShopDescriptorSet,
} from '../../src/common/descriptors.js';
import { type NodeDescription, NodeState, type Route } from '../../src/gen/distributor.js';

/** The descriptor set a goods node registers: GoodsService with its imports. */
export function goodsDescriptorSet(): Buffer {
  return encodeDescriptorSet(filesForServices(loadShopDescriptorSet(), ['shop.v1.GoodsService']));
}

/** The routes the goods service registers. */
export const GOODS_ROUTES: Route[] = [
  { httpMethod: 'POST', path: '/goods', grpcMethod: 'shop.v1.GoodsService/CreateGoods', responseFields: [] },
  {
    httpMethod: 'GET',
    path: '/goods',
    grpcMethod: 'shop.v1.GoodsService/ListGoods',
    responseFields: ['results'],
  },
  {
    httpMethod: 'DELETE',
    path: '/goods',
    grpcMethod: 'shop.v1.GoodsService/DeleteGoods',
    responseFields: [],
  },
];

/** A valid goods-like node description; override any part. */
export function goodsNode(overrides: Partial<NodeDescription> = {}): NodeDescription {
  return {
    name: 'goods',
    host: '127.0.0.1',
    port: 9010,
    routes: GOODS_ROUTES,
    descriptorSet: goodsDescriptorSet(),
    state: NodeState.NODE_STATE_UNSPECIFIED,
    descriptorSetSha256: Buffer.alloc(0),
    ...overrides,
  };
}

/** A gateway-like node description: no routes. */
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
