import { create } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, type MethodOptions } from '@bufbuild/protobuf/wkt';
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ServiceError } from '../../src/common/service-error.js';
import { declaredRouteKeys, validateNodeDescription } from '../../src/distributor/node-validation.js';
import { REGISTRATION_LIMITS } from '../../src/distributor/registration-limits.js';
import type { NodeDescription, Route } from '../../src/gen/distributor.js';
import { descriptorSetOf, field, httpOptions, message, Type } from '../gateway/support/descriptors.js';
import { GOODS_ROUTE_KEYS, gatewayNode, goodsNode } from '../helpers/nodes.js';
import { JUNK_ROUTE, junkNode } from './support/junk-nodes.js';

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

/** A Route message as nodes sent before the HttpRules (deprecated, bounded, otherwise ignored). */
const route: Route = {
  httpMethod: 'GET',
  path: '/goods',
  grpcMethod: 'shop.v1.GoodsService/ListGoods',
  responseFields: ['results'],
};

/**
 * A node serving `test.rules.v1.RuleService`, whose methods are routed by `rules` (one method per
 * rule, M0, M1, …; `streaming` makes M0 a server-streaming method).
 */
function rulesNode(rules: MethodOptions[], streaming = false): NodeDescription {
  const file = create(FileDescriptorProtoSchema, {
    name: 'test/rules.proto',
    package: 'test.rules.v1',
    syntax: 'proto3',
    messageType: [
      message('Request', [
        field('id', 1, Type.INT32),
        field('tags', 2, Type.STRING, { repeated: true }),
        field('inner', 3, Type.MESSAGE, { typeName: '.test.rules.v1.Request' }),
      ]),
      message('Response', [field('results', 1, Type.STRING, { repeated: true })]),
    ],
    service: [
      {
        name: 'RuleService',
        method: rules.map((options, index) => ({
          name: `M${index}`,
          inputType: '.test.rules.v1.Request',
          outputType: '.test.rules.v1.Response',
          options,
          ...(streaming && index === 0 ? { serverStreaming: true } : {}),
        })),
      },
    ] as never,
  });
  return goodsNode({ name: 'rules', descriptorSet: Buffer.from(descriptorSetOf(file)) });
}

describe('validateNodeDescription', () => {
  it('accepts a service with HttpRules and a gateway without descriptors, and returns the route keys', () => {
    expect(validateNodeDescription(goodsNode())).toEqual(GOODS_ROUTE_KEYS);
    expect(declaredRouteKeys(goodsNode())).toEqual(GOODS_ROUTE_KEYS);
    expect(validateNodeDescription(gatewayNode({ host: '' }))).toEqual([]);
    expect(() => validateNodeDescription(goodsNode({ host: '::1' }))).not.toThrow();
    // A gRPC service without REST routes may register its descriptors.
    expect(validateNodeDescription(junkNode('junk', 9100, 1_000))).toEqual([]);
  });

  it('still takes Route messages from old nodes, bounded but ignored', () => {
    expect(validateNodeDescription(goodsNode({ routes: [route] }))).toEqual(GOODS_ROUTE_KEYS);
    expect(validateNodeDescription(gatewayNode({ routes: [route] }))).toEqual([]);
  });

  it.each([
    ['no name', { name: '' }, 'name is required'],
    ['a name with spaces', { name: 'my goods' }, 'name must be'],
    ['a name too long', { name: 'g'.repeat(REGISTRATION_LIMITS.nameLength + 1) }, 'name must be'],
    ['no port', { port: 0 }, 'port must be from 1 to 65535, got 0'],
    ['a port out of range', { port: 70000 }, 'port must be from 1 to 65535, got 70000'],
    ['a negative port', { port: -1 }, 'port must be from 1 to 65535'],
    ['a host with a slash', { host: 'evil/host' }, 'host must be'],
    // The gateway dials what is listed: each of these would make another target, or none, of it.
    ['a host that names a unix socket', { host: 'unix:evil' }, 'host must be'],
    ['a host with a port', { host: '1.2.3.4:80' }, 'host must be'],
    ['a host that is only a dash', { host: '-' }, 'host must be'],
    ['a host of colons', { host: '::::' }, 'host must be'],
    ['a host with an empty label', { host: 'a..b' }, 'host must be'],
    ['digits and dots that are no IPv4 address', { host: '999.1.1.1' }, 'host must be'],
    // Addresses no other machine can dial: every gateway would dial itself, or an interface by name.
    ['the IPv4 any-address', { host: '0.0.0.0' }, 'host must be an address others can dial'],
    ['the IPv6 any-address', { host: '::' }, 'host must be an address others can dial'],
    [
      'the any-address mapped into IPv6',
      { host: '::ffff:0.0.0.0' },
      'host must be an address others can dial',
    ],
    ['an IPv6 address with a zone id', { host: 'fe80::1%eth0' }, 'host must be an address others can dial'],
    // Without a zone id a link-local address is refused by the system at connect (EINVAL).
    ['a link-local IPv6 address', { host: 'fe80::1' }, 'host must be an address others can dial'],
    ['a link-local IPv6 address in capitals', { host: 'FEBF::1' }, 'host must be an address others can dial'],
    ['an unknown state', { state: 7 }, 'state is not a known NodeState'],
    ['a negative state (ts-proto reads it as UNRECOGNIZED)', { state: -1 }, 'state is not a known NodeState'],
  ] as const)('refuses %s', (_label, overrides, message) => {
    expect(refusal(goodsNode(overrides as Partial<NodeDescription>))).toContain(message);
  });

  it.each([
    ['a template that does not parse', httpOptions('GET /goods/{id'), 'a "{" is not closed'],
    ['a template without a leading slash', httpOptions('GET goods' as never), 'must start with "/"'],
    ['a variable of no field', httpOptions('GET /r/{nope}'), 'Request has no field "nope"'],
    ['a variable of a repeated field', httpOptions('GET /r/{tags}'), 'must name a singular scalar or enum'],
    ['a nested variable through a scalar', httpOptions('GET /r/{id.x}'), 'is not a singular message field'],
    ['"**" before the end', httpOptions('GET /r/**/x'), '"**" must be the last segment'],
    ['a body on GET', httpOptions('GET /r', { body: '*' }), 'a GET route cannot have a body'],
    ['a body of no field', httpOptions('POST /r', { body: 'nope' }), 'body "nope"'],
    ['a body the path binds', httpOptions('POST /r/{id}', { body: 'id' }), 'is also bound by the path'],
    ['an envelope field of no field', httpOptions('GET /r', { envelope: ['rows'] }), 'envelope field "rows"'],
    [
      'an envelope field listed twice',
      httpOptions('GET /r', { envelope: ['results', 'results'] }),
      'listed twice',
    ],
    // The gateway answers these paths itself, before any route: such a route would never be reached.
    ["a path of the gateway's own pages", httpOptions('GET /status'), "/status is the gateway's own page"],
    ['another method on one of them', httpOptions('POST /metrics', { body: '*' }), '/metrics is the gateway'],
    ['the API document', httpOptions('GET /openapi.json'), "/openapi.json is the gateway's own page"],
    ['a path under /docs', httpOptions('GET /docs/{id}'), "/docs is the gateway's own page"],
  ])('refuses an http rule with %s', (_label, options, message) => {
    const refused = refusal(rulesNode([options]));
    expect(refused).toContain('google.api.http: test.rules.v1.RuleService/M0: ');
    expect(refused).toContain(message);
  });

  it("takes a template that only some of the gateway's own paths match: its other paths are reachable", () => {
    expect(validateNodeDescription(rulesNode([httpOptions('GET /{id}')]))).toEqual(['GET /*']);
    expect(validateNodeDescription(rulesNode([httpOptions('GET /status/{id}')]))).toEqual(['GET /status/*']);
    // "/docs:archive" is no path of the documentation's (/docs and below): the gateway routes it.
    expect(validateNodeDescription(rulesNode([httpOptions('GET /docs:archive')]))).toEqual([
      'GET /docs:archive',
    ]);
    expect(refusal(rulesNode([httpOptions('GET /docs/{id}:archive')]))).toContain(
      "/docs is the gateway's own page",
    );
  });

  it('refuses an envelope field that holds a proto2 group, at any depth: the gateway cannot render it', () => {
    // Found by registering fuzzed descriptor sets with a real distributor and gateway: the set was
    // taken and its route held against every other name, but the gateway skipped the route ("uses
    // group encoding, not supported") and answered its path 404.
    const groups = (envelope: string[]) => {
      const file = create(FileDescriptorProtoSchema, {
        name: 'test/groups.proto',
        package: 'test.groups.v1',
        syntax: 'proto2',
        messageType: [
          message('Request', []),
          message(
            'Response',
            [
              field('row', 1, Type.GROUP, { typeName: '.test.groups.v1.Response.Row' }),
              field('holder', 2, Type.MESSAGE, { typeName: '.test.groups.v1.Holder' }),
              field('plain', 3, Type.STRING),
            ],
            { nestedType: [message('Row', [field('x', 1, Type.INT32)])] },
          ),
          message('Holder', [
            field('inner', 1, Type.MESSAGE, { typeName: '.test.groups.v1.Response', repeated: true }),
          ]),
        ],
        service: [
          {
            name: 'GroupService',
            method: [
              {
                name: 'Get',
                inputType: '.test.groups.v1.Request',
                outputType: '.test.groups.v1.Response',
                options: httpOptions('GET /groups', { envelope }),
              },
            ],
          },
        ] as never,
      });
      return goodsNode({ name: 'groups', descriptorSet: Buffer.from(descriptorSetOf(file)) });
    };
    expect(refusal(groups(['row']))).toContain('envelope field "row": field "row" uses group encoding');
    expect(refusal(groups(['holder']))).toContain('envelope field "holder": field "row" uses group encoding');
    expect(validateNodeDescription(groups(['plain']))).toEqual(['GET /groups']);
    expect(validateNodeDescription(groups([]))).toEqual(['GET /groups']);
  });

  it('refuses a route declared twice, by two methods or twice by one', () => {
    expect(refusal(rulesNode([httpOptions('GET /r/{id}'), httpOptions('GET /r/{inner.id}')]))).toContain(
      'GET /r/* is declared twice (also by test.rules.v1.RuleService/M0)',
    );
    expect(refusal(rulesNode([httpOptions('GET /r', { additional: ['GET /r'] })]))).toContain(
      'GET /r is declared twice',
    );
  });

  it('refuses REST routes on a streaming method', () => {
    expect(refusal(rulesNode([httpOptions('GET /r')], true))).toContain(
      'only unary methods can have REST routes',
    );
  });

  it('takes exactly the maximum number of routes, additional bindings counted, and refuses one more', () => {
    const rules = (count: number) =>
      Array.from({ length: count / 2 }, (_, index) =>
        httpOptions(`GET /r${index}`, { additional: [`GET /s${index}`] }),
      );
    expect(validateNodeDescription(rulesNode(rules(REGISTRATION_LIMITS.routes)))).toHaveLength(
      REGISTRATION_LIMITS.routes,
    );
    expect(refusal(rulesNode([...rules(REGISTRATION_LIMITS.routes), httpOptions('GET /last')]))).toContain(
      `at most ${REGISTRATION_LIMITS.routes} REST routes (http rules and bindings) per node, got ${REGISTRATION_LIMITS.routes + 1}`,
    );
  });

  it('bounds the length of a path template', () => {
    const at = `/${'p'.repeat(REGISTRATION_LIMITS.pathLength - 1)}` as const;
    expect(() => validateNodeDescription(rulesNode([httpOptions(`GET ${at}`)]))).not.toThrow();
    expect(refusal(rulesNode([httpOptions(`GET ${at}p`)]))).toContain(
      `the path template must be at most ${REGISTRATION_LIMITS.pathLength} characters`,
    );
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
    ['a response field that is no name', { ...route, responseFields: ['a-b'] }, 'is not a field name'],
  ])('refuses an old Route message with %s', (_label, badRoute, message) => {
    expect(refusal(goodsNode({ routes: [badRoute] }))).toContain(message);
  });

  it('refuses a descriptor set that does not parse, does not resolve, or defines no service', () => {
    expect(refusal(goodsNode({ descriptorSet: Buffer.from([0xff, 0xff, 0xff]) }))).toContain(
      'descriptor_set must be a google.protobuf.FileDescriptorSet',
    );
    const orphan = create(FileDescriptorProtoSchema, {
      name: 'test/orphan.proto',
      syntax: 'proto3',
      dependency: ['test/missing.proto'],
      messageType: [message('Lonely', [])],
    });
    const orphanRefusal = refusal(goodsNode({ descriptorSet: Buffer.from(descriptorSetOf(orphan)) }));
    expect(orphanRefusal).toContain('descriptor_set must be a google.protobuf.FileDescriptorSet');
    expect(orphanRefusal).toContain('test/missing.proto');
    const messagesOnly = create(FileDescriptorProtoSchema, {
      name: 'test/messages.proto',
      syntax: 'proto3',
      messageType: [message('Lonely', [])],
    });
    expect(refusal(gatewayNode({ descriptorSet: Buffer.from(descriptorSetOf(messagesOnly)) }))).toContain(
      'descriptor_set defines no service: send none',
    );
  });

  it('says why a set does not resolve: which import is missing, which name or type is wrong', () => {
    // Found by registering fuzzed descriptor sets with a real distributor: every such refusal said
    // only "... holding its files' imports", also for a field name that is no identifier or a type
    // that no file defines, which left the node's author guessing. A missing import: see above.
    const badName = create(FileDescriptorProtoSchema, {
      name: 'test/bad-name.proto',
      syntax: 'proto3',
      messageType: [message('Odd', [field('not-a-name', 1, Type.STRING)])],
    });
    expect(refusal(goodsNode({ descriptorSet: Buffer.from(descriptorSetOf(badName)) }))).toContain(
      'invalid field name "not-a-name"',
    );
    const unknownType = create(FileDescriptorProtoSchema, {
      name: 'test/unknown-type.proto',
      syntax: 'proto3',
      messageType: [message('Odd', [field('other', 1, Type.MESSAGE, { typeName: '.test.Nowhere' })])],
    });
    expect(refusal(goodsNode({ descriptorSet: Buffer.from(descriptorSetOf(unknownType)) }))).toContain(
      '.test.Nowhere',
    );
  });

  it('takes at most the maximum number of old Route messages', () => {
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

  it.each([
    [
      'host',
      // A host name of n characters, in labels of 7 (a label holds at most 63).
      (n: number) => goodsNode({ host: 'hhhhhhh.'.repeat(Math.ceil(n / 8)).slice(0, n) }),
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
