import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import {
  encodeDescriptorSet,
  filesForServices,
  loadShopDescriptorSet,
} from '../../src/common/descriptors.js';
import { ServiceError } from '../../src/common/service-error.js';
import { validateNodeDescription } from '../../src/distributor/node-validation.js';
import { REGISTRATION_LIMITS } from '../../src/distributor/registration-limits.js';
import type { NodeDescription } from '../../src/gen/distributor.js';
import { GOODS_ROUTES, gatewayNode, goodsNode } from '../helpers/nodes.js';
import { JUNK_ROUTE, junkDescriptorSet, junkNode } from './support/junk-nodes.js';

function refusal(node: NodeDescription): string {
  try {
    validateNodeDescription(node);
  } catch (error) {
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe(status.INVALID_ARGUMENT);
    return (error as ServiceError).message;
  }
  throw new Error('the description was accepted');
}

const route = GOODS_ROUTES[1]!;

describe('validateNodeDescription', () => {
  it('accepts a service with routes and a gateway without', () => {
    expect(() => validateNodeDescription(goodsNode())).not.toThrow();
    expect(() => validateNodeDescription(gatewayNode({ host: '' }))).not.toThrow();
    expect(() => validateNodeDescription(goodsNode({ host: '::1' }))).not.toThrow();
  });

  it.each([
    ['no name', { name: '' }, 'name is required'],
    ['a name with spaces', { name: 'my goods' }, 'name must be'],
    ['a name too long', { name: 'g'.repeat(REGISTRATION_LIMITS.nameLength + 1) }, 'name must be'],
    ['no port', { port: 0 }, 'port must be from 1 to 65535, got 0'],
    ['a port out of range', { port: 70000 }, 'port must be from 1 to 65535, got 70000'],
    ['a negative port', { port: -1 }, 'port must be from 1 to 65535'],
    ['a host with a slash', { host: 'evil/host' }, 'host must be'],
    ['an unknown state', { state: 7 }, 'state is not a known NodeState'],
  ] as const)('refuses %s', (_label, overrides, message) => {
    expect(refusal(goodsNode(overrides as Partial<NodeDescription>))).toContain(message);
  });

  it.each([
    ['an unknown HTTP method', { ...route, httpMethod: 'FETCH' }, 'the HTTP method must be one of'],
    ['a lower-case HTTP method', { ...route, httpMethod: 'get' }, 'the HTTP method must be one of'],
    ['a path without a leading slash', { ...route, path: 'goods' }, 'the path must start with "/"'],
    ['a path with a query', { ...route, path: '/goods?x=1' }, 'the path must start with "/"'],
    ['a path with a space', { ...route, path: '/go ods' }, 'the path must start with "/"'],
    [
      'a method without a package',
      { ...route, grpcMethod: 'GoodsService/ListGoods' },
      'package.Service/Method',
    ],
    ['a method without a method', { ...route, grpcMethod: 'shop.v1.GoodsService' }, 'package.Service/Method'],
    [
      'a method the descriptors lack',
      { ...route, grpcMethod: 'shop.v1.GoodsService/Nope' },
      'has no shop.v1.GoodsService/Nope',
    ],
    ['a response field the output lacks', { ...route, responseFields: ['rows'] }, 'has no field "rows"'],
    ['a response field that is no name', { ...route, responseFields: ['a-b'] }, 'is not a field name'],
  ])('refuses a route with %s', (_label, badRoute, message) => {
    expect(refusal(goodsNode({ routes: [badRoute] }))).toContain(message);
  });

  it('refuses the same route twice', () => {
    expect(refusal(goodsNode({ routes: [route, route] }))).toContain('is listed twice');
  });

  it('refuses routes without a descriptor set, or with one that does not parse', () => {
    expect(refusal(goodsNode({ descriptorSet: Buffer.alloc(0) }))).toContain(
      'has no shop.v1.GoodsService/CreateGoods',
    );
    expect(refusal(goodsNode({ descriptorSet: Buffer.from([0xff, 0xff, 0xff]) }))).toContain(
      'descriptor_set must be a google.protobuf.FileDescriptorSet',
    );
  });

  it('refuses a streaming method as a route', () => {
    const distributorSet = encodeDescriptorSet(
      filesForServices(loadShopDescriptorSet(), ['shop.v1.DistributorService']),
    );
    const watch = {
      httpMethod: 'GET',
      path: '/watch',
      grpcMethod: 'shop.v1.DistributorService/Watch',
      responseFields: [],
    };
    expect(refusal(goodsNode({ routes: [watch], descriptorSet: distributorSet }))).toContain(
      'must be a unary method',
    );
  });

  it('takes exactly the maximum number of routes, and refuses one more', () => {
    const routes = (count: number) =>
      Array.from({ length: count }, (_, index) => ({ ...route, path: `/r${index}` }));
    expect(() =>
      validateNodeDescription(goodsNode({ routes: routes(REGISTRATION_LIMITS.routes) })),
    ).not.toThrow();
    expect(refusal(goodsNode({ routes: routes(REGISTRATION_LIMITS.routes + 1) }))).toContain(
      `at most ${REGISTRATION_LIMITS.routes} routes per node, got ${REGISTRATION_LIMITS.routes + 1}`,
    );
  });

  it('takes a real descriptor set of exactly the maximum size, and refuses one byte more', () => {
    const limit = REGISTRATION_LIMITS.descriptorSetBytes;
    const atLimit = junkNode('junk', 9100, limit);
    expect(atLimit.descriptorSet.length).toBe(limit);
    expect(() => validateNodeDescription(atLimit)).not.toThrow();
    const over = junkNode('junk', 9100, limit + 1);
    expect(refusal(over)).toContain(`descriptor_set must be at most ${limit} bytes, got ${limit + 1}`);
  });

  it('refuses a descriptor set from a node without routes', () => {
    expect(refusal(gatewayNode({ descriptorSet: junkDescriptorSet(1_000) }))).toContain(
      'a node without routes must send no descriptor_set',
    );
  });

  it.each([
    [
      'host',
      (n: number) => goodsNode({ host: 'h'.repeat(n) }),
      REGISTRATION_LIMITS.hostLength,
      'host must be',
    ],
    [
      'path',
      (n: number) => junkNode('junk', 9100, 1_000, { ...JUNK_ROUTE, path: `/${'p'.repeat(n - 1)}` }),
      REGISTRATION_LIMITS.pathLength,
      'the path must start with "/"',
    ],
    [
      'gRPC method',
      (n: number) => goodsNode({ routes: [{ ...route, grpcMethod: `a.${'S'.repeat(n - 4)}/M` }] }),
      REGISTRATION_LIMITS.grpcMethodLength,
      'the gRPC method must be "package.Service/Method" of at most',
    ],
    [
      'response field name',
      (n: number) => goodsNode({ routes: [{ ...route, responseFields: ['f'.repeat(n)] }] }),
      REGISTRATION_LIMITS.fieldNameLength,
      'is not a field name of at most',
    ],
  ] as const)('bounds the length of a %s, and echoes no more than that', (_label, make, limit, message) => {
    const over = refusal(make(limit + 1));
    expect(over).toContain(message);
    expect(over.length).toBeLessThan(limit + 200);
    // At the limit the syntax check passes: whatever is refused then is refused for another reason.
    try {
      validateNodeDescription(make(limit));
    } catch (error) {
      expect((error as ServiceError).message).not.toContain(message);
    }
  });
});
