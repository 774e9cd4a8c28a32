import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { FieldDescriptorProto_Type, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { registrationDescriptorSet } from '../../src/common/descriptors.js';
import { type HttpRoute, readHttpRoutes, registryOfDescriptorSet } from '../../src/common/http-routes.js';
import { goodsDescriptorSet } from '../helpers/nodes.js';

/** What an OpenAPI generator reads of a route, as plain values. */
function outline(route: HttpRoute) {
  return {
    operation: `${route.httpMethod} ${route.template.text}`,
    grpcMethod: route.grpcMethod,
    pathVariables: route.pathVariables.map((variable) => variable.fieldPath),
    body: route.body.kind === 'field' ? route.body.field.name : route.body.kind,
    query: route.queryFields.map((field) => field.name),
    envelope: route.envelopeFields.map((field) => field.name),
    binding: route.binding,
  };
}

describe('readHttpRoutes on the shop contract', () => {
  const routes = readHttpRoutes(
    registryOfDescriptorSet(
      registrationDescriptorSet([
        'shop.v1.GoodsService',
        'shop.v1.MembersService',
        'shop.v1.PurchasesService',
      ]),
    ),
  );

  it("finds the book's eight routes and the two additional bindings, each with what OpenAPI needs", () => {
    expect(routes.problems).toEqual([]);
    expect(routes.routes.map(outline)).toEqual([
      {
        operation: 'POST /goods',
        grpcMethod: 'shop.v1.GoodsService/CreateGoods',
        pathVariables: [],
        body: 'all',
        query: [],
        envelope: [],
        binding: 0,
      },
      {
        operation: 'GET /goods',
        grpcMethod: 'shop.v1.GoodsService/ListGoods',
        pathVariables: [],
        body: 'none',
        query: ['page_size', 'page_token'],
        envelope: ['results'],
        binding: 0,
      },
      {
        operation: 'DELETE /goods',
        grpcMethod: 'shop.v1.GoodsService/DeleteGoods',
        pathVariables: [],
        body: 'none',
        query: ['id'],
        envelope: [],
        binding: 0,
      },
      {
        operation: 'DELETE /goods/{id}',
        grpcMethod: 'shop.v1.GoodsService/DeleteGoods',
        pathVariables: ['id'],
        body: 'none',
        query: [],
        envelope: [],
        binding: 1,
      },
      {
        operation: 'POST /members',
        grpcMethod: 'shop.v1.MembersService/CreateMember',
        pathVariables: [],
        body: 'all',
        query: [],
        envelope: [],
        binding: 0,
      },
      {
        operation: 'GET /members',
        grpcMethod: 'shop.v1.MembersService/SignIn',
        pathVariables: [],
        body: 'none',
        query: ['username', 'password'],
        envelope: ['userid'],
        binding: 0,
      },
      {
        operation: 'DELETE /members',
        grpcMethod: 'shop.v1.MembersService/DeleteMember',
        pathVariables: [],
        body: 'none',
        query: ['username'],
        envelope: [],
        binding: 0,
      },
      {
        operation: 'POST /purchases',
        grpcMethod: 'shop.v1.PurchasesService/CreatePurchase',
        pathVariables: [],
        body: 'all',
        query: [],
        envelope: [],
        binding: 0,
      },
      {
        operation: 'GET /purchases',
        grpcMethod: 'shop.v1.PurchasesService/ListPurchases',
        pathVariables: [],
        body: 'none',
        query: ['userid', 'page_size', 'page_token'],
        envelope: ['results'],
        binding: 0,
      },
      {
        operation: 'GET /purchases/{userid}',
        grpcMethod: 'shop.v1.PurchasesService/ListPurchases',
        pathVariables: ['userid'],
        body: 'none',
        query: ['page_size', 'page_token'],
        envelope: ['results'],
        binding: 1,
      },
    ]);
  });

  it("keeps the methods' comments, for descriptions", () => {
    const remove = routes.routes.find((route) => route.key === 'DELETE /goods/*')!;
    expect(remove.description).toMatch(
      /^Deletes one item by id\. Deleting an id that does not exist succeeds/,
    );
    expect(remove.method.input.typeName).toBe('shop.v1.DeleteGoodsRequest');
  });
});

describe('readHttpRoutes on a descriptor set that gives an option number of the shop to another option', () => {
  /** Goods' descriptors with the extensions of the given names declared under other names at the same numbers. */
  function goodsWithForeignOptions(...extensions: string[]) {
    const set = fromBinary(FileDescriptorSetSchema, goodsDescriptorSet());
    for (const file of set.file) {
      for (const extension of file.extension) {
        if (extensions.includes(extension.name)) extension.name = `acme_${extension.name}`;
      }
    }
    return readHttpRoutes(registryOfDescriptorSet(toBinary(FileDescriptorSetSchema, set)));
  }

  it('does not read a foreign option at idempotency_key’s number as the shop’s: no keyed retries', () => {
    const asShipped = readHttpRoutes(registryOfDescriptorSet(goodsDescriptorSet()));
    expect(asShipped.routes.find((route) => route.key === 'POST /goods')?.writesOncePerKey).toBe(true);
    const foreign = goodsWithForeignOptions('idempotency_key');
    expect(foreign.problems).toEqual([]);
    expect(foreign.routes.map((route) => route.key)).toEqual(asShipped.routes.map((route) => route.key));
    expect(foreign.routes.every((route) => !route.writesOncePerKey)).toBe(true);
  });

  it('does not read the shop’s option declared with another type (int32 idempotency_key) as the bool it is', () => {
    const set = fromBinary(FileDescriptorSetSchema, goodsDescriptorSet());
    const declared = set.file
      .flatMap((file) => file.extension)
      .find((field) => field.name === 'idempotency_key');
    declared!.type = FieldDescriptorProto_Type.INT32;
    const routes = readHttpRoutes(registryOfDescriptorSet(toBinary(FileDescriptorSetSchema, set)));
    expect(routes.problems).toEqual([]);
    expect(routes.routes.every((route) => !route.writesOncePerKey)).toBe(true);
  });

  it('does not read a foreign option at envelope_fields’ or google.api.http’s number as the shop’s', () => {
    const foreignEnvelope = goodsWithForeignOptions('envelope_fields');
    expect(foreignEnvelope.problems).toEqual([]);
    expect(foreignEnvelope.routes.find((route) => route.key === 'GET /goods')?.envelopeFields).toEqual([]);
    expect(goodsWithForeignOptions('http').routes).toEqual([]);
  });
});
