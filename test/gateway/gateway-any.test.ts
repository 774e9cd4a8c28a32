import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { type Any, AnySchema } from '@bufbuild/protobuf/wkt';
import type { ServerUnaryCall, ServiceDefinition, sendUnaryData } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registryOfDescriptorSet } from '../../src/common/http-routes.js';
import type { OpenApiDocument } from '../../src/gateway/openapi.js';
import { httpJson } from '../helpers/http.js';
import { Closer, startDistributor, startGateway, startService, waitForRoute } from './support/cluster.js';
import { anythingFile, descriptorSetOf } from './support/descriptors.js';
import { answerSchema, expectValidOpenApi, schemaValidator } from './support/openapi.js';

// A service outside the contract whose messages hold google.protobuf.Any, behind a real distributor
// and gateway: the gateway reads and writes its Anys as proto3 JSON, from the types of the
// descriptor set the service registered.

const descriptorSet = descriptorSetOf(anythingFile());
const registry = registryOfDescriptorSet(descriptorSet);
const Holder = registry.getMessage('test.anything.v1.Holder')!;
const PAYLOAD = 'type.googleapis.com/test.anything.v1.Payload';
const SECRET = 'type.googleapis.com/other.v1.Secret';

type HolderShape = { item?: Any; items: Any[]; byName: Record<string, Any> };

const definition: ServiceDefinition = {
  Echo: {
    path: '/test.anything.v1.AnythingService/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: (value: Parameters<typeof toBinary>[1]) => Buffer.from(toBinary(Holder, value)),
    requestDeserialize: (bytes: Buffer) => fromBinary(Holder, bytes),
    responseSerialize: (value: Parameters<typeof toBinary>[1]) => Buffer.from(toBinary(Holder, value)),
    responseDeserialize: (bytes: Buffer) => fromBinary(Holder, bytes),
  },
};

describe('gateway: google.protobuf.Any in requests and answers', () => {
  const closer = new Closer();
  let port: number;
  /** What the service received last, as the gateway encoded it. */
  let received: HolderShape | undefined;

  beforeAll(async () => {
    const { address } = await startDistributor(closer);
    const started = await startGateway(closer, address);
    port = started.port;
    await startService(closer, {
      distributor: address,
      name: 'anything',
      definition,
      implementation: {
        // Echoes the request; with no item, answers one of a type its descriptor set does not define.
        Echo: (call: ServerUnaryCall<HolderShape, unknown>, callback: sendUnaryData<unknown>) => {
          received = call.request;
          const answer = call.request.item
            ? call.request
            : {
                ...call.request,
                item: create(AnySchema, { typeUrl: SECRET, value: new Uint8Array([1, 2, 3]) }),
              };
          callback(null, answer);
        },
      },
      descriptorSet,
    });
    await waitForRoute(started.gateway, 'POST /anything', 1);
  });

  afterAll(() => closer.closeAll());

  it('carries an Any of a type of the descriptor set both ways as "@type" and its fields', async () => {
    const result = await httpJson(port, 'POST', '/anything', {
      item: { '@type': PAYLOAD, count: 5, big: '9007199254740993', label: 'x', passwordConfirm: 'dropped' },
      items: [
        { '@type': 'type.googleapis.com/google.protobuf.Timestamp', value: '2020-11-04T15:31:47.123Z' },
        // Duration: the set does not import duration.proto, yet a well-known type is always known.
        { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '2s' },
      ],
      by_name: { a: { '@type': 'type.googleapis.com/google.protobuf.Any', value: { '@type': PAYLOAD } } },
    });
    expect(result.status).toBe(200);
    expect(received?.item?.typeUrl).toBe(PAYLOAD);
    const body = JSON.parse(result.body) as Record<string, unknown>;
    expect(body).toMatchObject({ errorcode: 0, errormessage: 'success' });
    expect(result.body).toContain(
      `"item":{"@type":"${PAYLOAD}","count":5,"big":"9007199254740993","data":"","label":"x","inner":null,"when":null}`,
    );
    expect(body.items).toEqual([
      { '@type': 'type.googleapis.com/google.protobuf.Timestamp', value: '2020-11-04T15:31:47.123Z' },
      { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '2s' },
    ]);
    expect(body.by_name).toEqual({
      a: {
        '@type': 'type.googleapis.com/google.protobuf.Any',
        value: { '@type': PAYLOAD, count: 0, big: 0, data: '', label: '', inner: null, when: null },
      },
    });
  });

  it('answers an Any of a type the set does not define as its URL and its bytes in base64', async () => {
    const result = await httpJson(port, 'POST', '/anything', {});
    expect(result.status).toBe(200);
    expect(JSON.parse(result.body)).toMatchObject({
      errorcode: 0,
      item: { '@type': SECRET, value: 'AQID' },
      items: [],
      by_name: {},
    });
  });

  it('answers "Invalid Parameters" for an Any of an unknown type or with a malformed payload', async () => {
    received = undefined;
    for (const item of [
      { '@type': SECRET, count: 1 },
      { count: 1 },
      { '@type': PAYLOAD, count: '0x10' },
      { '@type': PAYLOAD, data: 'AQ==ID' },
      { '@type': 'type.googleapis.com/google.protobuf.Int32Value', value: '+5' },
    ]) {
      const result = await httpJson(port, 'POST', '/anything', { item });
      expect(result.status, JSON.stringify(item)).toBe(200);
      expect(result.body, JSON.stringify(item)).toMatch(
        /^\{"key":\d+,"errorcode":1,"errormessage":"Invalid Parameters"\}$/,
      );
    }
    expect(received).toBeUndefined();
  });

  it('describes Any in /openapi.json as "@type" and more properties, which the answers match', async () => {
    const document = JSON.parse((await httpJson(port, 'GET', '/openapi.json')).body) as OpenApiDocument;
    await expectValidOpenApi(document);
    // One component, as protoc-gen-openapiv2's protobufAny; before, the fields type_url and value.
    expect(document.components.schemas['google.protobuf.Any']).toMatchObject({
      type: 'object',
      properties: { '@type': { type: 'string' } },
      additionalProperties: true,
    });
    const body = document.paths['/anything']!.post!.requestBody as {
      content: Record<string, { schema: { properties: Record<string, unknown> } }>;
    };
    expect(body.content['application/json']!.schema.properties.item).toEqual({
      oneOf: [{ $ref: '#/components/schemas/google.protobuf.Any' }, { type: 'null' }],
    });
    const validate = schemaValidator(document).compile(answerSchema(document, 'POST', '/anything'));
    const answer = await httpJson(port, 'POST', '/anything', { item: { '@type': PAYLOAD, count: 1 } });
    expect(validate(JSON.parse(answer.body)), JSON.stringify(validate.errors)).toBe(true);
  });
});
