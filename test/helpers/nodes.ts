import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { registrationDescriptorSet } from '../../src/common/descriptors.js';
import { type NodeDescription, NodeState } from '../../src/gen/distributor.js';

/** The descriptor set a goods node registers: GoodsService with its imports and its HttpRules. */
export function goodsDescriptorSet(): Buffer {
  return registrationDescriptorSet(['shop.v1.GoodsService']);
}

/**
 * GoodsService's descriptor set with the google.api.http options taken off its methods: a set that
 * defines the service and declares no REST route (so it claims none of goods' routes).
 */
export function goodsDescriptorSetWithoutRoutes(): Buffer {
  const set = fromBinary(FileDescriptorSetSchema, goodsDescriptorSet());
  for (const file of set.file) {
    for (const service of file.service) for (const method of service.method) method.options = undefined;
  }
  return Buffer.from(toBinary(FileDescriptorSetSchema, set));
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

/**
 * A descriptor set with one option taken off one method (`$unknown` holds the shop's own options,
 * which the descriptor.proto types do not know): a build of a service without that option.
 */
export function withoutMethodOption(descriptorSet: Buffer, methodName: string, fieldNumber: number): Buffer {
  const set = fromBinary(FileDescriptorSetSchema, descriptorSet);
  let found = false;
  for (const file of set.file) {
    for (const service of file.service) {
      for (const method of service.method) {
        const unknown = method.options?.$unknown;
        if (method.name !== methodName || !unknown) continue;
        found = unknown.some((field) => field.no === fieldNumber);
        method.options!.$unknown = unknown.filter((field) => field.no !== fieldNumber);
      }
    }
  }
  if (!found) throw new Error(`withoutMethodOption: ${methodName} has no option ${fieldNumber}`);
  return Buffer.from(toBinary(FileDescriptorSetSchema, set));
}
