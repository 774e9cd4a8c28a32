import {
  create,
  createFileRegistry,
  type DescMessage,
  type FileRegistry,
  fromBinary,
  toJson,
} from '@bufbuild/protobuf';
import {
  type FieldDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  file_google_protobuf_field_mask,
  file_google_protobuf_struct,
} from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { loadShopDescriptorSet } from '../../src/common/descriptors.js';
import { readHttpRoutes } from '../../src/common/http-routes.js';
import { parsePathTemplate } from '../../src/common/path-template.js';
import { ReservedContract } from '../../src/distributor/reserved-contract.js';
import { compileCallPlan } from '../../src/gateway/call-plan.js';
import { ENVELOPE_ROOM } from '../../src/gateway/envelope.js';
import {
  createOpenApiDocument,
  MAX_DOCUMENT_BYTES,
  type OpenApiDocument,
} from '../../src/gateway/openapi.js';
import { MAX_QUERY_NESTING, MAX_QUERY_PARAMETERS } from '../../src/gateway/openapi-query-parameters.js';
import { MAX_COMMENT_LENGTH } from '../../src/gateway/proto-comments.js';
import { compileRequestDecoder } from '../../src/gateway/request-decoder.js';
import { NO_INPUT } from '../../src/gateway/request-input.js';
import { compileResponseRenderer } from '../../src/gateway/response-renderer.js';
import type { RestOperation } from '../../src/gateway/rest-operation.js';
import { Route } from '../../src/gateway/route-table.js';
import { operationOf, operationsOfRoutes } from '../../src/gateway/route-table-operations.js';
import { SHOP_SERVICES } from '../../src/services/service-list.js';
import {
  field,
  httpOptions,
  kitchenFile,
  mapEntry,
  message,
  registryOf,
  Type,
  wideFile,
} from './support/descriptors.js';
import { answerSchema, expectValidOpenApi, schemaValidator } from './support/openapi.js';

/** The shop's routes as its services declare them (HttpRules), each served by one instance, over `registry`. */
function shopRoutes(registry: FileRegistry): Route[] {
  return SHOP_SERVICES.flatMap((spec) =>
    readHttpRoutes(registry)
      .routes.filter((declared) => declared.grpcMethod.startsWith(`${spec.grpc.name}/`))
      .map((declared) => {
        const route = new Route(declared.httpMethod, declared.template.shape, declared.template);
        const plan = compileCallPlan(declared);
        route.serving = [{ nodeId: `${spec.name}@127.0.0.1:1`, upstream: {} as never, plan }];
        return route;
      }),
  );
}

/** The book's services: what these tests check, whatever other services the shop has beside them. */
const BOOK_SERVICES = ['shop.v1.GoodsService', 'shop.v1.MembersService', 'shop.v1.PurchasesService'];

function isBook(grpcMethod: string): boolean {
  return BOOK_SERVICES.includes(grpcMethod.slice(0, grpcMethod.indexOf('/')));
}

/** A tag of the document, by name. */
function tag(document: OpenApiDocument, name: string): OpenApiDocument['tags'][number] | undefined {
  return document.tags.find((candidate) => candidate.name === name);
}

function shopDocument(registry = createFileRegistry(loadShopDescriptorSet())): OpenApiDocument {
  return createOpenApiDocument(operationsOfRoutes(shopRoutes(registry)), { version: 'revision 1' });
}

/** The document walked as plain JSON: a test reads deep into it and checks what it finds. */
// biome-ignore lint/suspicious/noExplicitAny: reading JSON of a known shape, checked by expect()
type Json = Record<string, any>;

function operation(document: OpenApiDocument, method: string, path: string): Json {
  const found = document.paths[path]?.[method.toLowerCase()];
  if (!found) throw new Error(`no ${method} ${path}`);
  return found as Json;
}

function properties(document: OpenApiDocument, method: string, path: string): Json {
  return operation(document, method, path).responses['200'].content['application/json'].schema.properties;
}

describe('the OpenAPI document of the shop', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    await expectValidOpenApi(shopDocument());
  });

  it("lists the book's eight operations and the two by path, each named after its gRPC method", () => {
    const document = shopDocument();
    const listed = Object.entries(document.paths).flatMap(([path, item]) =>
      Object.entries(item).map(([method, op]) => `${method.toUpperCase()} ${path} ${op['x-grpc-method']}`),
    );
    // Every route the shop's services declare, and nothing else, however many services it has.
    const declared = readHttpRoutes(createFileRegistry(loadShopDescriptorSet())).routes.filter((route) =>
      SHOP_SERVICES.some((spec) => route.grpcMethod.startsWith(`${spec.grpc.name}/`)),
    );
    expect(listed).toHaveLength(declared.length);
    expect(listed.filter((line) => isBook(line.slice(line.lastIndexOf(' ') + 1)))).toEqual([
      'GET /goods shop.v1.GoodsService/ListGoods',
      'POST /goods shop.v1.GoodsService/CreateGoods',
      'DELETE /goods shop.v1.GoodsService/DeleteGoods',
      'DELETE /goods/{id} shop.v1.GoodsService/DeleteGoods',
      'GET /members shop.v1.MembersService/SignIn',
      'POST /members shop.v1.MembersService/CreateMember',
      'DELETE /members shop.v1.MembersService/DeleteMember',
      'GET /purchases shop.v1.PurchasesService/ListPurchases',
      'POST /purchases shop.v1.PurchasesService/CreatePurchase',
      'GET /purchases/{userid} shop.v1.PurchasesService/ListPurchases',
    ]);
    expect(operation(document, 'GET', '/goods').operationId).toBe('GoodsService_ListGoods');
    expect(document.tags.map((each) => each.name).filter((name) => BOOK_SERVICES.includes(name))).toEqual(
      BOOK_SERVICES,
    );
    expect(new Set(document.tags.map((each) => each.name))).toEqual(
      new Set(SHOP_SERVICES.map((spec) => spec.grpc.name)),
    );
  });

  it('types GET and DELETE parameters from the query fields, POST bodies from the request message', () => {
    const document = shopDocument();
    const query = (method: string, path: string) =>
      (operation(document, method, path).parameters as Json[])
        .filter((parameter) => parameter.in === 'query')
        .map((parameter) => [parameter.name, parameter.schema, parameter.required]);
    expect(query('GET', '/goods')).toEqual([
      ['page_size', { type: 'integer', format: 'int32' }, false],
      ['page_token', { type: 'string' }, false],
    ]);
    expect(query('DELETE', '/goods')).toEqual([['id', { type: 'integer', format: 'int32' }, false]]);
    expect(query('GET', '/members')).toEqual([
      ['username', { type: 'string' }, false],
      ['password', { type: 'string' }, false],
    ]);
    expect(operation(document, 'GET', '/goods').requestBody).toBeUndefined();

    const post = operation(document, 'POST', '/goods');
    expect(post.parameters).toEqual([{ $ref: '#/components/parameters/IdempotencyKey' }]);
    expect(Object.keys(post.requestBody.content)).toEqual([
      'application/json',
      'application/x-www-form-urlencoded',
    ]);
    const body = post.requestBody.content['application/json'].schema;
    expect(body.type).toBe('object');
    expect(Object.keys(body.properties)).toEqual(['name', 'category', 'price', 'description']);
    expect(body.properties.price).toMatchObject({ type: 'integer', format: 'int32' });
    expect(body.required).toBeUndefined();
  });

  it("answers with the book's envelope and the route's fields", () => {
    const document = shopDocument();
    const goods = properties(document, 'GET', '/goods');
    expect(Object.keys(goods)).toEqual(['key', 'errorcode', 'errormessage', 'results', 'next_page_token']);
    expect(goods.errorcode).toMatchObject({ type: 'integer', enum: [0, 1] });
    expect(goods.results).toMatchObject({
      type: 'array',
      items: { $ref: '#/components/schemas/shop.v1.Goods' },
    });
    expect(goods.next_page_token.description).toMatch(/asks for one page/);
    expect(Object.keys(properties(document, 'GET', '/members'))).toEqual([
      'key',
      'errorcode',
      'errormessage',
      'userid',
    ]);
    expect(Object.keys(properties(document, 'POST', '/goods'))).toEqual(['key', 'errorcode', 'errormessage']);
    expect(Object.keys(properties(document, 'GET', '/purchases'))).toEqual([
      'key',
      'errorcode',
      'errormessage',
      'results',
      'next_page_token',
    ]);
    // A row of an answer carries every column.
    expect(document.components.schemas['shop.v1.Goods']).toMatchObject({
      required: ['id', 'name', 'category', 'price', 'description'],
      additionalProperties: false,
    });
    expect(document.components.schemas['shop.v1.Purchase']?.properties).toMatchObject({
      date: { type: ['string', 'null'], format: 'date-time' },
    });
  });

  it("validates the seed run's bodies against the answers it documents", () => {
    const document = shopDocument();
    const ajv = schemaValidator(document);
    const seed: [string, string, unknown][] = [
      ['DELETE', '/members', { key: 0, errorcode: 0, errormessage: 'success' }],
      ['GET', '/members', { key: 2, errorcode: 0, errormessage: 'success', userid: 1 }],
      [
        'GET',
        '/goods',
        {
          key: 4,
          errorcode: 0,
          errormessage: 'success',
          results: [{ id: 1, name: 'test Goods', category: 'tests', price: 1000, description: 'test' }],
        },
      ],
      [
        'GET',
        '/purchases',
        {
          key: 7,
          errorcode: 0,
          errormessage: 'success',
          results: [{ id: 1, goodsid: 1, date: '2020-11-04T15:31:47.000Z' }],
        },
      ],
      ['GET', '/goods', { key: 8, errorcode: 1, errormessage: 'no data' }],
    ];
    for (const [method, path, body] of seed) {
      const validate = ajv.compile(answerSchema(document, method, path));
      expect(validate(body), `${method} ${path} ${JSON.stringify(validate.errors)}`).toBe(true);
    }
    const wrong = ajv.compile(answerSchema(document, 'GET', '/goods'));
    expect(wrong({ key: 1, errorcode: 0, errormessage: 'success', results: [{ id: 1 }] })).toBe(false);
  });

  it("lists the gateway's error statuses with the envelope, each where it can happen", () => {
    const document = shopDocument();
    const statuses = (method: string, path: string) =>
      Object.keys(operation(document, method, path).responses).sort();
    const always = [
      '400',
      '404',
      '405',
      '408',
      '414',
      '417',
      '421',
      '429',
      '431',
      '500',
      '501',
      '502',
      '503',
      '504',
    ];
    expect(statuses('GET', '/goods')).toEqual(['200', ...always].sort());
    expect(statuses('DELETE', '/goods')).toEqual(['200', '403', '409', '422', ...always].sort());
    expect(statuses('POST', '/goods')).toEqual(['200', '403', '409', '413', '415', '422', ...always].sort());
    // A write whose method does not make it once per key takes no Idempotency-Key, and has no 409 or 422.
    const unkeyed = createOpenApiDocument(
      operationsOfFiles(itemFile('test.unkeyed.v1', 'notes', [field('name', 1, Type.STRING)])),
      { version: '1' },
    );
    expect(Object.keys(operation(unkeyed, 'POST', '/notes').responses)).not.toContain('422');
    expect(Object.keys(operation(unkeyed, 'POST', '/notes').responses)).not.toContain('409');
    // A POST that takes all its fields from the query still has its body read: 413 and 415 apply.
    const bodiless = createOpenApiDocument(
      operationsOfFiles(
        itemFile('test.bodiless.v1', 'marks', [field('name', 1, Type.STRING)], 'A mark.', ''),
      ),
      { version: '1' },
    );
    expect(Object.keys(operation(bodiless, 'POST', '/marks').responses)).toEqual(
      expect.arrayContaining(['413', '415']),
    );
    expect(operation(bodiless, 'POST', '/marks').requestBody).toBeUndefined();
    expect(operation(unkeyed, 'POST', '/notes').parameters ?? []).toEqual([]);
    expect(operation(document, 'POST', '/goods').parameters).toEqual([
      { $ref: '#/components/parameters/IdempotencyKey' },
    ]);
    const unavailable = document.components.responses.ServiceUnavailable as Json;
    expect(unavailable.content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/ErrorEnvelope',
    });
    expect(unavailable.headers['Retry-After']).toEqual({ $ref: '#/components/headers/RetryAfter' });
    // Each cause a REST client can meet is named, the gateway's own bounds among them.
    for (const cause of ['connections', 'requests in flight', 'request bodies', 'long lists']) {
      expect(unavailable.description).toContain(cause);
    }
    const badRequest = document.components.responses.BadRequest as Json;
    expect(badRequest.description).toContain('no `Host` (HTTP/1.1) or several');
    const expectation = document.components.responses.ExpectationFailed as Json;
    expect(expectation.description).toContain('100-continue');
  });

  it('takes its descriptions from the proto comments the descriptor set carries', () => {
    const document = shopDocument();
    expect(operation(document, 'GET', '/goods').description).toMatch(/^Lists the catalogue in id order/);
    expect(operation(document, 'GET', '/members').description).toMatch(/^Checks a username and password/);
    expect(tag(document, 'shop.v1.GoodsService')).toEqual({
      name: 'shop.v1.GoodsService',
      description: 'The goods catalogue.',
    });
    const goods = document.components.schemas['shop.v1.Goods'] as Json;
    expect(goods.description).toBe('One item of the catalogue.');
    expect(goods.properties.price.description).toBe("The item's price, a non-negative whole number.");
    const pageSize = (operation(document, 'GET', '/goods').parameters as Json[])[0]!;
    expect(pageSize.description).toMatch(/^The most items the page may hold/);
  });

  it('is still valid, without descriptions, from a descriptor set stripped of its comments', async () => {
    const set = loadShopDescriptorSet();
    for (const file of set.file) file.sourceCodeInfo = undefined;
    const document = shopDocument(createFileRegistry(set));
    await expectValidOpenApi(document);
    expect(operation(document, 'GET', '/goods').description).toBeUndefined();
    expect(tag(document, 'shop.v1.GoodsService')).toEqual({ name: 'shop.v1.GoodsService' });
  });

  it('does not depend on the order the routes were registered in', () => {
    const registry = createFileRegistry(loadShopDescriptorSet());
    const forward = createOpenApiDocument(operationsOfRoutes(shopRoutes(registry)), { version: '1' });
    const backward = createOpenApiDocument(operationsOfRoutes(shopRoutes(registry).reverse()), {
      version: '1',
    });
    expect(JSON.stringify(backward)).toBe(JSON.stringify(forward));
  });

  it('leaves out a route whose instances have all gone, and one whose template has an anonymous wildcard', async () => {
    const routes = shopRoutes(createFileRegistry(loadShopDescriptorSet()));
    for (const route of routes) if (route.path.startsWith('/purchases')) route.serving = [];
    const template = parsePathTemplate('/goods/*');
    const wildcard = new Route('GET', template.shape, template);
    const [first] = routes[0]!.serving;
    wildcard.serving = [{ ...first!, plan: { ...first!.plan, route: { ...first!.plan.route, template } } }];
    routes.push(wildcard);
    const document = createOpenApiDocument(operationsOfRoutes(routes), { version: '1' });
    // The other paths stay, the shop's other services' included.
    expect(Object.keys(document.paths)).toEqual(
      Object.keys(shopDocument().paths).filter((path) => !path.startsWith('/purchases')),
    );
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(['/goods', '/goods/{id}', '/members']),
    );
    expect(document.components.schemas['shop.v1.Purchase']).toBeUndefined();
    await expectValidOpenApi(document);
  });
});

describe('JSON Schemas of proto types', () => {
  const registry = registryOf(kitchenFile());
  const echo = registry.getService('test.kitchen.v1.KitchenService')!.methods[0]!;
  const everything = registry.getMessage('test.kitchen.v1.Everything')!;
  const fieldsOf = (message: DescMessage, ...names: string[]) =>
    names.map((name) => message.fields.find((field) => field.name === name)!);

  /** A GET whose query takes every field and whose answer shows every field. */
  function kitchenDocument(): OpenApiDocument {
    return createOpenApiDocument(
      [
        {
          httpMethod: 'GET',
          pathTemplate: '/kitchen',
          pathParams: [],
          queryFields: everything.fields,
          body: { kind: 'none' },
          method: echo,
          envelopeFields: fieldsOf(everything, 'f_nested', 'r_nested', 'self', 'when'),
        },
        {
          httpMethod: 'POST',
          pathTemplate: '/kitchen',
          pathParams: [],
          queryFields: [],
          body: { kind: 'all' },
          method: echo,
          envelopeFields: fieldsOf(everything, ...everything.fields.map((field) => field.name)),
        },
      ],
      { version: '1' },
    );
  }

  it('maps every scalar, enum, list, map and well-known type as the gateway writes them', async () => {
    const document = kitchenDocument();
    await expectValidOpenApi(document);
    const body = operation(document, 'POST', '/kitchen').requestBody.content['application/json'].schema
      .properties as Json;
    expect(body).toMatchObject({
      f_int32: { type: 'integer', format: 'int32' },
      f_sint32: { type: 'integer', format: 'int32' },
      f_sfixed32: { type: 'integer', format: 'int32' },
      f_uint32: { type: 'integer', format: 'uint32', minimum: 0, maximum: 4294967295 },
      f_fixed32: { type: 'integer', format: 'uint32' },
      f_int64: { type: ['integer', 'string'], format: 'int64', pattern: '^-?[0-9]+$' },
      f_sint64: { type: ['integer', 'string'], format: 'int64' },
      f_uint64: { type: ['integer', 'string'], format: 'uint64', minimum: 0, pattern: '^[0-9]+$' },
      f_fixed64: { type: ['integer', 'string'], format: 'uint64' },
      f_float: { oneOf: [{ type: 'number', format: 'float' }, { enum: ['NaN', 'Infinity', '-Infinity'] }] },
      f_double: { oneOf: [{ type: 'number', format: 'double' }, { type: 'string' }] },
      f_bool: { type: 'boolean' },
      f_string: { type: 'string' },
      f_bytes: { type: 'string', contentEncoding: 'base64' },
      f_enum: { $ref: '#/components/schemas/test.kitchen.v1.Color' },
      f_nested: { oneOf: [{ $ref: '#/components/schemas/test.kitchen.v1.Nested' }, { type: 'null' }] },
      r_int32: { type: 'array', items: { type: 'integer', format: 'int32' } },
      r_nested: { type: 'array', items: { $ref: '#/components/schemas/test.kitchen.v1.Nested' } },
      r_enum: { type: 'array', items: { $ref: '#/components/schemas/test.kitchen.v1.Color' } },
      m_string_int32: { type: 'object', additionalProperties: { type: 'integer', format: 'int32' } },
      m_int64_nested: {
        type: 'object',
        propertyNames: { pattern: '^-?[0-9]+$' },
        additionalProperties: { $ref: '#/components/schemas/test.kitchen.v1.Nested' },
      },
      when: { type: ['string', 'null'], format: 'date-time' },
      how_long: { type: ['string', 'null'], pattern: '^-?[0-9]+(\\.[0-9]{1,9})?s$' },
      maybe_int32: { type: ['integer', 'null'], format: 'int32' },
      self: { oneOf: [{ $ref: '#/components/schemas/test.kitchen.v1.Everything' }, { type: 'null' }] },
    });
    expect(document.components.schemas['test.kitchen.v1.Color']).toMatchObject({
      anyOf: [
        { type: 'string', enum: ['COLOR_UNSPECIFIED', 'COLOR_RED', 'COLOR_BLUE'] },
        { type: 'integer', format: 'int32' },
      ],
    });
  });

  it('takes an enum by name or by number, as the gateway reads it and answers a number it cannot name', () => {
    const document = kitchenDocument();
    const color = schemaValidator(document).compile({
      $ref: 'urn:openapi:components#/$defs/test.kitchen.v1.Color',
    });
    expect(color('COLOR_RED')).toBe(true);
    // A number in a request (proto3 JSON), and a value the descriptor does not name in an answer.
    expect(color(1)).toBe(true);
    expect(color(7)).toBe(true);
    expect(color('COLOR_GREEN')).toBe(false);
    expect(color(1.5)).toBe(false);
    expect(color(2 ** 31)).toBe(false);
    const description = (document.components.schemas['test.kitchen.v1.Color'] as Json).description;
    expect(description).toContain('`COLOR_RED` (1)');
    expect(description).toContain('by number');
  });

  it('requires every field of a message only answers show, except the members of a oneof', () => {
    const answersOnly = createOpenApiDocument(
      [
        {
          httpMethod: 'GET',
          pathTemplate: '/kitchen',
          pathParams: [],
          queryFields: [],
          body: { kind: 'none' },
          method: echo,
          envelopeFields: fieldsOf(everything, 'self'),
        },
      ],
      { version: '1' },
    );
    const schema = answersOnly.components.schemas['test.kitchen.v1.Everything'] as Json;
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toContain('f_int32');
    // proto3 `optional` is a field of its own, always shown; a real oneof's members are not.
    expect(schema.required).toContain('o_int32');
    expect(schema.required).not.toContain('choice_text');
    expect(schema.required).not.toContain('choice_number');
    // A message that requests carry too (the POST body) requires nothing.
    const both = kitchenDocument().components.schemas['test.kitchen.v1.Everything'] as Json;
    expect(both.required).toBeUndefined();
    expect(both.additionalProperties).toBeUndefined();
  });

  it('puts in the query only what a query string can carry', () => {
    const names = (operation(kitchenDocument(), 'GET', '/kitchen').parameters as Json[]).map(
      (parameter) => parameter.name,
    );
    expect(names).toContain('r_int32');
    expect(names).toContain('when');
    expect(names).toContain('maybe_int32');
    expect(names).not.toContain('f_nested');
    expect(names).toContain('m_string_int32');
    expect(names).not.toContain('m_int64_nested');
    const list = (operation(kitchenDocument(), 'GET', '/kitchen').parameters as Json[]).find(
      (parameter) => parameter.name === 'r_int32',
    );
    expect(list).toMatchObject({ style: 'form', explode: true, schema: { type: 'array' } });
  });
});

describe('operations shaped by HttpRules (what the rest-contract route model feeds)', () => {
  const registry = createFileRegistry(create(FileDescriptorSetSchema, loadShopDescriptorSet()));
  const goods = registry.getService('shop.v1.GoodsService')!;
  const method = (name: string) => goods.methods.find((candidate) => candidate.name === name)!;
  const deleteGoods = method('DeleteGoods');
  const createGoods = method('CreateGoods');
  const idField = deleteGoods.input.fields.find((field) => field.name === 'id')!;

  const operations: RestOperation[] = [
    {
      httpMethod: 'DELETE',
      pathTemplate: '/goods',
      pathParams: [],
      queryFields: deleteGoods.input.fields,
      body: { kind: 'none' },
      method: deleteGoods,
      envelopeFields: [],
    },
    {
      httpMethod: 'DELETE',
      pathTemplate: '/goods/{id}',
      pathParams: [{ name: 'id', field: idField }],
      queryFields: [],
      body: { kind: 'none' },
      method: deleteGoods,
      envelopeFields: [],
    },
    {
      httpMethod: 'PUT',
      pathTemplate: '/goods/{name}',
      pathParams: [{ name: 'name', field: createGoods.input.fields[0]! }],
      queryFields: [],
      body: { kind: 'all' },
      method: createGoods,
      envelopeFields: [],
      description: 'Adds an item under its name.',
    },
    {
      httpMethod: 'PATCH',
      pathTemplate: '/goods',
      pathParams: [],
      queryFields: createGoods.input.fields.slice(1),
      body: { kind: 'field', field: createGoods.input.fields[0]! },
      method: createGoods,
      envelopeFields: createGoods.output.fields,
    },
  ];

  it('documents path variables, body "*" less the path, a body field, and one operationId each', async () => {
    const document = createOpenApiDocument(operations, { version: '1' });
    await expectValidOpenApi(document);
    expect(Object.keys(document.paths)).toEqual(['/goods', '/goods/{id}', '/goods/{name}']);
    const byId = operation(document, 'DELETE', '/goods/{id}');
    expect(byId.parameters[0]).toMatchObject({
      name: 'id',
      in: 'path',
      required: true,
      schema: { type: 'integer', format: 'int32' },
      description: 'The id of the item to delete: a positive number.',
    });
    expect(byId.operationId).toBe('GoodsService_DeleteGoods_2');
    expect(operation(document, 'DELETE', '/goods').operationId).toBe('GoodsService_DeleteGoods');

    const put = operation(document, 'PUT', '/goods/{name}');
    expect(put.description).toBe('Adds an item under its name.');
    expect(Object.keys(put.requestBody.content['application/json'].schema.properties)).toEqual([
      'category',
      'price',
      'description',
    ]);
    const patch = operation(document, 'PATCH', '/goods');
    expect(patch.requestBody.content['application/json'].schema).toMatchObject({ type: 'string' });
    // A form is refused for a body that is one scalar (Invalid Parameters): it is not offered.
    expect(Object.keys(patch.requestBody.content)).toEqual(['application/json']);
    expect(Object.keys(put.requestBody.content)).toEqual([
      'application/json',
      'application/x-www-form-urlencoded',
    ]);
    expect(patch.parameters.map((parameter: Json) => parameter.name)).toEqual([
      'category',
      'price',
      'description',
    ]);
    expect(Object.keys(patch.responses['200'].content['application/json'].schema.properties)).toContain('id');
  });
});

/**
 * A file of its own (each service registers its own descriptors) with `package`'s `ItemService`:
 * `POST /{path}` (body `*`, or `body`) takes and answers an `Item` of the given fields, showing all
 * of them and `others`, a list of `Item`. `Item` has the comment `comment`.
 */
function itemFile(
  pkg: string,
  path: string,
  fields: FieldDescriptorProto[],
  comment = 'An item.',
  body = '*',
) {
  const prefix = pkg ? `.${pkg}` : '';
  const others = field('others', 99, Type.MESSAGE, { repeated: true, typeName: `${prefix}.Item` });
  return create(FileDescriptorProtoSchema, {
    name: `${pkg || 'root'}/${path}.proto`,
    package: pkg,
    syntax: 'proto3',
    messageType: [message('Item', [...fields, others])],
    service: [
      {
        name: 'ItemService',
        method: [
          {
            name: 'Put',
            inputType: `${prefix}.Item`,
            outputType: `${prefix}.Item`,
            options: httpOptions(`POST /${path}`, {
              body,
              envelope: [...fields.map((one) => one.name), 'others'],
            }),
          },
        ],
      } as never,
    ],
    // The comment of message 0 (path [4, 0]).
    sourceCodeInfo: { location: [{ path: [4, 0], span: [0, 0, 0], leadingComments: ` ${comment}\n` }] },
  });
}

/** The operations of each file's routes, each file in a registry of its own, as services register. */
function operationsOfFiles(...files: ReturnType<typeof itemFile>[]): RestOperation[] {
  return files.flatMap((file) =>
    readHttpRoutes(registryOf(file)).routes.map((route) => operationOf(route, false)!),
  );
}

/** The `$ref` of `others` items in the answer of `POST path`: the schema its Item is named by. */
function itemRef(document: OpenApiDocument, path: string): string {
  return properties(document, 'POST', `/${path}`).others.items.$ref;
}

describe('names of the schemas of proto types', () => {
  it('names messages by full name, so that like-named ones of two packages are told apart', async () => {
    const document = createOpenApiDocument(
      operationsOfFiles(
        itemFile('shop.a', 'a', [field('name', 1, Type.STRING)]),
        itemFile('shop.b', 'b', [field('count', 1, Type.INT32)]),
      ),
      { version: '1' },
    );
    await expectValidOpenApi(document);
    expect(itemRef(document, 'a')).toBe('#/components/schemas/shop.a.Item');
    expect(itemRef(document, 'b')).toBe('#/components/schemas/shop.b.Item');
    expect(Object.keys((document.components.schemas['shop.a.Item'] as Json).properties)).toEqual([
      'name',
      'others',
    ]);
  });

  it('describes one full name once, as the first operation by path defines it', async () => {
    const older = itemFile('test.clash.v1', 'old', [field('name', 1, Type.STRING)]);
    const newer = itemFile('test.clash.v1', 'new', [
      field('name', 1, Type.STRING),
      field('size', 2, Type.INT32),
    ]);
    const document = createOpenApiDocument(operationsOfFiles(older, newer), { version: '1' });
    await expectValidOpenApi(document);
    // Operations are met by path: /new, then /old.
    expect(itemRef(document, 'new')).toBe('#/components/schemas/test.clash.v1.Item');
    expect(itemRef(document, 'old')).toBe('#/components/schemas/test.clash.v1.Item');
    const schemas = document.components.schemas as Json;
    expect(Object.keys(schemas['test.clash.v1.Item'].properties)).toEqual(['name', 'size', 'others']);
  });

  it("keeps the gateway's ErrorEnvelope, and types named like Object's members, apart from proto types", async () => {
    const envelope = itemFile('', 'envelope', [field('name', 1, Type.STRING)]);
    envelope.messageType[0]!.name = 'ErrorEnvelope';
    const named = itemFile('', 'constructor', [field('name', 1, Type.STRING)]);
    named.messageType[0]!.name = 'constructor';
    for (const file of [envelope, named]) {
      const name = file.messageType[0]!.name;
      file.messageType[0]!.field[1]!.typeName = `.${name}`;
      file.service[0]!.method[0]!.inputType = `.${name}`;
      file.service[0]!.method[0]!.outputType = `.${name}`;
    }
    const document = createOpenApiDocument(operationsOfFiles(envelope, named), { version: '1' });
    await expectValidOpenApi(document);
    const schemas = document.components.schemas as Json;
    expect(schemas.ErrorEnvelope.properties.errorcode).toEqual({ const: 1 });
    expect(itemRef(document, 'envelope')).toBe('#/components/schemas/ErrorEnvelope-2');
    expect(Object.keys(schemas['ErrorEnvelope-2'].properties)).toEqual(['name', 'others']);
    expect(itemRef(document, 'constructor')).toBe('#/components/schemas/constructor');
    const own = Object.getOwnPropertyDescriptor(schemas, 'constructor')?.value as Json | undefined;
    expect(Object.keys(own?.properties ?? {})).toEqual(['name', 'others']);
  });
});

describe('a proto field named __proto__', () => {
  it('is a property of the request body, of the answer and of the message schema', async () => {
    const file = itemFile('test.odd.v1', 'odd', [
      field('__proto__', 1, Type.STRING),
      field('name', 2, Type.STRING),
    ]);
    const document = createOpenApiDocument(operationsOfFiles(file), { version: '1' });
    await expectValidOpenApi(document);
    const served = JSON.parse(JSON.stringify(document)) as Json;
    const post = served.paths['/odd'].post;
    expect(Object.keys(post.requestBody.content['application/json'].schema.properties)).toEqual([
      '__proto__',
      'name',
      'others',
    ]);
    expect(Object.keys(post.responses['200'].content['application/json'].schema.properties)).toEqual([
      'key',
      'errorcode',
      'errormessage',
      '__proto__',
      'name',
      'others',
    ]);
    const item = served.components.schemas['test.odd.v1.Item'];
    expect(Object.keys(item.properties)).toEqual(['__proto__', 'name', 'others']);
    expect(Object.getOwnPropertyDescriptor(item.properties, '__proto__')?.value).toEqual({ type: 'string' });
  });
});

/** A service outside the contract, `GoodsService` of its own package, with one method `ListGoods` on `GET /aaa`. */
function outsiderFile(methodComment?: string) {
  return create(FileDescriptorProtoSchema, {
    name: 'test/outsider.proto',
    package: 'test.outsider.v1',
    syntax: 'proto3',
    messageType: [message('Thing', [field('id', 1, Type.STRING)])],
    service: [
      {
        name: 'GoodsService',
        method: [
          {
            name: 'ListGoods',
            inputType: '.test.outsider.v1.Thing',
            outputType: '.test.outsider.v1.Thing',
            options: httpOptions('GET /aaa', { envelope: ['id'] }),
          },
        ],
      } as never,
    ],
    ...(methodComment === undefined
      ? {}
      : {
          sourceCodeInfo: {
            location: [{ path: [6, 0, 2, 0], span: [0, 0, 0], leadingComments: methodComment }],
          },
        }),
  });
}

describe('a service outside the contract', () => {
  it("does not take the operationId of a contract's operation with a path that sorts first", () => {
    const shop = operationsOfRoutes(shopRoutes(createFileRegistry(loadShopDescriptorSet())));
    const document = createOpenApiDocument([...operationsOfFiles(outsiderFile()), ...shop], {
      version: '1',
      pinnedServices: ReservedContract.ofShop().services,
    });
    expect(operation(document, 'GET', '/goods').operationId).toBe('GoodsService_ListGoods');
    expect(operation(document, 'GET', '/aaa').operationId).toBe('GoodsService_ListGoods_2');
  });

  it("has its method's comment cut as every other comment is", () => {
    const long = ` ${'*_a'.repeat(10_000)}\n`;
    const document = createOpenApiDocument(operationsOfFiles(outsiderFile(long)), { version: '1' });
    const description = operation(document, 'GET', '/aaa').description as string;
    // Lengths, not texts: a failure would print 30,000 characters.
    expect(description.length).toBe(MAX_COMMENT_LENGTH + 1);
    expect(description === `${long.trim().slice(0, MAX_COMMENT_LENGTH)}…`).toBe(true);
  });
});

/**
 * `test.query.v1`: `GET /search` and `GET /search/{page.size}` of a request whose query sets nested
 * fields: `page` (a plain message), `filter` (recursive, and four messages deep through `deep`),
 * `items` (a list of messages, which a query cannot enter) and `wide` (300 fields).
 */
function queryFile() {
  const Q = '.test.query.v1';
  const wide = Array.from({ length: 300 }, (_, index) => field(`w${index}`, index + 1, Type.INT32));
  return create(FileDescriptorProtoSchema, {
    name: 'test/query.proto',
    package: 'test.query.v1',
    syntax: 'proto3',
    dependency: ['google/protobuf/field_mask.proto'],
    messageType: [
      message('Search', [
        field('page', 1, Type.MESSAGE, { typeName: `${Q}.Page` }),
        field('filter', 2, Type.MESSAGE, { typeName: `${Q}.Filter` }),
        field('items', 3, Type.MESSAGE, { repeated: true, typeName: `${Q}.Page` }),
        field('q', 4, Type.STRING),
        field('mask', 5, Type.MESSAGE, { typeName: '.google.protobuf.FieldMask' }),
      ]),
      message('SearchWide', [
        field('q', 1, Type.STRING),
        field('wide', 2, Type.MESSAGE, { typeName: `${Q}.Wide` }),
      ]),
      message('Page', [field('size', 1, Type.INT32), field('token', 2, Type.STRING)]),
      message('Filter', [
        field('name', 1, Type.STRING),
        field('and', 2, Type.MESSAGE, { typeName: `${Q}.Filter` }),
        field('deep', 3, Type.MESSAGE, { typeName: `${Q}.Deep` }),
      ]),
      message('Deep', [
        field('level', 1, Type.INT32),
        field('next', 2, Type.MESSAGE, { typeName: `${Q}.Deeper` }),
      ]),
      message('Deeper', [
        field('level', 1, Type.INT32),
        field('next', 2, Type.MESSAGE, { typeName: `${Q}.Deepest` }),
      ]),
      message('Deepest', [field('level', 1, Type.INT32)]),
      message('Wide', wide),
    ],
    service: [
      {
        name: 'SearchService',
        method: [
          {
            name: 'Search',
            inputType: `${Q}.Search`,
            outputType: `${Q}.Page`,
            options: httpOptions('GET /search', { additional: ['GET /search/{page.size}'] }),
          },
          {
            name: 'SearchWide',
            inputType: `${Q}.SearchWide`,
            outputType: `${Q}.Page`,
            options: httpOptions('GET /wide'),
          },
        ],
      } as never,
    ],
  });
}

describe('query parameters of nested messages', () => {
  const registry = createFileRegistry(
    create(FileDescriptorSetSchema, { file: [file_google_protobuf_field_mask.proto, queryFile()] }),
  );
  const routes = readHttpRoutes(registry).routes;
  const document = createOpenApiDocument(
    routes.map((route) => operationOf(route, false)!),
    { version: '1' },
  );
  const names = (path: string) =>
    (operation(document, 'GET', path).parameters as Json[]).map((parameter) => parameter.name);

  it('lists the fields of message fields by dotted name, breadth first, each as the gateway takes it', async () => {
    await expectValidOpenApi(document);
    expect(names('/search')).toEqual([
      'q',
      'mask',
      'page.size',
      'page.token',
      'filter.name',
      'filter.deep.level',
      'filter.deep.next.level',
    ]);
    // The gateway takes each of them as a query parameter of the route.
    const route = routes.find((candidate) => candidate.template.text === '/search')!;
    const decode = compileRequestDecoder(route);
    const values = new URLSearchParams(names('/search').map((name): [string, string] => [name, '1']));
    const decoded = fromBinary(
      registry.getMessage('test.query.v1.Search')!,
      decode({ pathValues: [], query: values.toString(), body: NO_INPUT }),
    );
    expect(toJson(registry.getMessage('test.query.v1.Search')!, decoded)).toEqual({
      q: '1',
      mask: '1',
      page: { size: 1, token: '1' },
      filter: { name: '1', deep: { level: 1, next: { level: 1 } } },
    });
  });

  it('leaves out what the path sets, and says what a recursive or deeper message leaves unlisted', () => {
    expect(names('/search/{page.size}')).toEqual([
      'page.size',
      'q',
      'mask',
      'page.token',
      'filter.name',
      'filter.deep.level',
      'filter.deep.next.level',
    ]);
    expect(
      (operation(document, 'GET', '/search/{page.size}').parameters as Json[]).filter(
        (parameter) => parameter.in === 'query' && parameter.name === 'page.size',
      ),
    ).toEqual([]);
    const description = operation(document, 'GET', '/search').description as string;
    expect(description).toContain("a recursive message's fields are listed at its first level");
    expect(description).toContain(`nested messages are listed ${MAX_QUERY_NESTING} deep`);
    expect(description).toContain('`test.query.v1.Search`');
  });

  it(`lists at most ${MAX_QUERY_PARAMETERS} per operation, and says that more are taken`, () => {
    const listed = names('/wide');
    expect(listed).toHaveLength(MAX_QUERY_PARAMETERS);
    expect(listed.slice(0, 3)).toEqual(['q', 'wide.w0', 'wide.w1']);
    expect(operation(document, 'GET', '/wide').description).toContain(
      `at most ${MAX_QUERY_PARAMETERS} are listed per operation`,
    );
  });
});

describe('query parameters set by key, and the mask a PATCH fills', () => {
  // test.labels.v1: GET /things (labels by key, a map of messages), PATCH /things/{thing.name}
  // (body "thing", a mask the gateway fills) and PATCH /things (body "*", a mask it leaves).
  const T = '.test.labels.v1';
  const labelsFile = create(FileDescriptorProtoSchema, {
    name: 'test/labels.proto',
    package: 'test.labels.v1',
    syntax: 'proto3',
    dependency: ['google/protobuf/field_mask.proto'],
    messageType: [
      message(
        'Thing',
        [
          field('name', 1, Type.STRING),
          field('labels', 2, Type.MESSAGE, { repeated: true, typeName: `${T}.Thing.LabelsEntry` }),
          field('parts', 3, Type.MESSAGE, { repeated: true, typeName: `${T}.Thing.PartsEntry` }),
          field('sizes', 4, Type.MESSAGE, { repeated: true, typeName: `${T}.Thing.SizesEntry` }),
        ],
        {
          nestedType: [
            mapEntry('LabelsEntry', Type.STRING, Type.STRING),
            mapEntry('PartsEntry', Type.STRING, Type.MESSAGE, `${T}.Thing`),
            mapEntry('SizesEntry', Type.INT32, Type.INT64),
          ],
        },
      ),
      message('UpdateThingRequest', [
        field('thing', 1, Type.MESSAGE, { typeName: `${T}.Thing` }),
        field('update_mask', 2, Type.MESSAGE, { typeName: '.google.protobuf.FieldMask' }),
      ]),
    ],
    service: [
      {
        name: 'ThingService',
        method: [
          {
            name: 'ListThings',
            inputType: `${T}.Thing`,
            outputType: `${T}.Thing`,
            options: httpOptions('GET /things'),
          },
          {
            name: 'UpdateThing',
            inputType: `${T}.UpdateThingRequest`,
            outputType: `${T}.Thing`,
            options: httpOptions('PATCH /things/{thing.name}', {
              body: 'thing',
              additional: [['PATCH /things', '*']],
            }),
          },
        ],
      } as never,
    ],
  });
  const registry = createFileRegistry(
    create(FileDescriptorSetSchema, { file: [file_google_protobuf_field_mask.proto, labelsFile] }),
  );
  const routes = readHttpRoutes(registry).routes;
  const document = createOpenApiDocument(
    routes.map((route) => operationOf(route, false)!),
    { version: '1' },
  );
  const parameters = (method: string, path: string) =>
    (operation(document, method, path).parameters ?? []) as Json[];

  it('lists a map of scalars as a deepObject, as the gateway takes it by key, and leaves a map of messages out', async () => {
    await expectValidOpenApi(document);
    const listed = parameters('GET', '/things');
    expect(listed.map((parameter) => parameter.name)).toEqual(['name', 'labels', 'sizes']);
    const labels = listed.find((parameter) => parameter.name === 'labels')!;
    expect(labels).toMatchObject({
      in: 'query',
      style: 'deepObject',
      explode: true,
      schema: { type: 'object', additionalProperties: { type: 'string' } },
    });
    // What a client serialising by the document sends, the gateway takes.
    const route = routes.find((candidate) => candidate.template.text === '/things')!;
    const Thing = registry.getMessage('test.labels.v1.Thing')!;
    const decoded = fromBinary(
      Thing,
      compileRequestDecoder(route)({
        pathValues: [],
        query: 'labels[env]=prod&labels[tier]=web&sizes[7]=9',
        body: NO_INPUT,
      }),
    );
    expect(toJson(Thing, decoded)).toEqual({ labels: { env: 'prod', tier: 'web' }, sizes: { 7: '9' } });
    const ajv = schemaValidator(document);
    const sizes = ajv.compile(listed.find((parameter) => parameter.name === 'sizes')!.schema);
    expect(sizes({ 7: '9' })).toBe(true);
    expect(sizes({ seven: '9' })).toBe(false);
  });

  it('says of the update mask of a PATCH with a body field that the gateway fills it from the body', () => {
    const mask = parameters('PATCH', '/things/{thing.name}').find(
      (parameter) => parameter.name === 'update_mask',
    );
    expect(mask?.description).toContain('the gateway sets it to the fields the body names');
    // A body "*" carries the mask itself: no query parameter, nothing filled.
    expect(parameters('PATCH', '/things').map((parameter) => parameter.name)).not.toContain('update_mask');
  });
});

describe('the size of the document', () => {
  it(`leaves out the largest services outside the contract past ${MAX_DOCUMENT_BYTES} bytes, and says so`, async () => {
    const shop = operationsOfRoutes(shopRoutes(createFileRegistry(loadShopDescriptorSet())));
    const document = createOpenApiDocument(
      [...operationsOfFiles(wideFile()), ...operationsOfFiles(outsiderFile()), ...shop],
      { version: '1', pinnedServices: ReservedContract.ofShop().services },
    );
    const size = Buffer.byteLength(JSON.stringify(document));
    expect(size).toBeLessThanOrEqual(MAX_DOCUMENT_BYTES);
    expect(document['x-left-out-services']).toEqual(['test.wide.v1.WideService']);
    expect(document.info.description).toContain('`test.wide.v1.WideService`');
    expect(Object.keys(document.paths).filter((path) => path.startsWith('/wide'))).toEqual([]);
    // The small outsider and the contract stay.
    expect(operation(document, 'GET', '/aaa').operationId).toBe('GoodsService_ListGoods_2');
    expect(operation(document, 'GET', '/goods').operationId).toBe('GoodsService_ListGoods');
    expect(Object.keys(document.components.schemas)).not.toContain('test.wide.v1.Wide');
    await expectValidOpenApi(document);
  });

  it("leaves out every service outside the contract, never the contract's, however small the bound", () => {
    const shop = operationsOfRoutes(shopRoutes(createFileRegistry(loadShopDescriptorSet())));
    const whole = createOpenApiDocument([...operationsOfFiles(outsiderFile()), ...shop], {
      version: '1',
      pinnedServices: ReservedContract.ofShop().services,
    });
    expect(whole['x-left-out-services']).toBeUndefined();
    const bounded = createOpenApiDocument([...operationsOfFiles(outsiderFile()), ...shop], {
      version: '1',
      pinnedServices: ReservedContract.ofShop().services,
      maxBytes: 1000,
    });
    expect(bounded['x-left-out-services']).toEqual(['test.outsider.v1.GoodsService']);
    expect(bounded.paths['/aaa']).toBeUndefined();
    expect(bounded.paths['/goods']).toBeDefined();
  });
});

describe('Struct, Value, ListValue, FieldMask and NullValue', () => {
  /** `POST /loose` (body `*`) of a message holding each, showing them all in its answer. */
  function looseFile() {
    const fields = [
      field('st', 1, Type.MESSAGE, { typeName: '.google.protobuf.Struct' }),
      field('val', 2, Type.MESSAGE, { typeName: '.google.protobuf.Value' }),
      field('lv', 3, Type.MESSAGE, { typeName: '.google.protobuf.ListValue' }),
      field('mask', 4, Type.MESSAGE, { typeName: '.google.protobuf.FieldMask' }),
      field('nothing', 5, Type.ENUM, { typeName: '.google.protobuf.NullValue' }),
    ];
    return create(FileDescriptorProtoSchema, {
      name: 'test/loose.proto',
      package: 'test.loose.v1',
      syntax: 'proto3',
      dependency: ['google/protobuf/struct.proto', 'google/protobuf/field_mask.proto'],
      messageType: [message('Loose', fields)],
      service: [
        {
          name: 'LooseService',
          method: [
            {
              name: 'Echo',
              inputType: '.test.loose.v1.Loose',
              outputType: '.test.loose.v1.Loose',
              options: httpOptions('POST /loose', { body: '*', envelope: fields.map((one) => one.name) }),
            },
          ],
        } as never,
      ],
    });
  }

  it('documents them as the gateway reads and renders them, in proto3 JSON', async () => {
    const registry = createFileRegistry(
      create(FileDescriptorSetSchema, {
        file: [file_google_protobuf_struct.proto, file_google_protobuf_field_mask.proto, looseFile()],
      }),
    );
    const [route] = readHttpRoutes(registry).routes;
    const document = createOpenApiDocument([operationOf(route!, false)!], { version: '1' });
    await expectValidOpenApi(document);
    const ajv = schemaValidator(document);
    const sent = { st: { a: [1, { b: null }] }, val: 'x', lv: [true], mask: 'fooBar,baz' };
    // The answer the gateway renders for what it read from that body.
    const Loose = registry.getMessage('test.loose.v1.Loose')!;
    const request = compileRequestDecoder(route!)({
      pathValues: [],
      query: '',
      body: { kind: 'json', object: sent },
    });
    const rendered = compileResponseRenderer(Loose, ['st', 'val', 'lv', 'mask', 'nothing'])(request);
    const answer = JSON.parse(
      `{"key":0,"errorcode":0,"errormessage":"success"${rendered.subarray(ENVELOPE_ROOM).toString()}`,
    ) as Record<string, unknown>;
    expect(answer).toMatchObject({ ...sent, nothing: null });
    const validate = ajv.compile(answerSchema(document, 'POST', '/loose'));
    expect(validate(answer), JSON.stringify(validate.errors)).toBe(true);
    const body = operation(document, 'POST', '/loose').requestBody.content['application/json'].schema;
    const validateBody = ajv.compile(body);
    expect(validateBody(sent), JSON.stringify(validateBody.errors)).toBe(true);
    // The form the document gave before, as a plain message, which the gateway refuses.
    expect(validateBody({ mask: { paths: ['a'] } })).toBe(false);
  });
});
