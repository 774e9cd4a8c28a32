import { create, createFileRegistry } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { loadShopDescriptorSet } from '../../src/common/descriptors.js';
import { readHttpRoutes } from '../../src/common/http-routes.js';
import { ApiDocs } from '../../src/gateway/api-docs.js';
import { operationOf } from '../../src/gateway/route-table-operations.js';
import { captureLog } from '../helpers/log-capture.js';
import { field, httpOptions, message, registryOf, Type } from './support/descriptors.js';

const OPERATIONS = readHttpRoutes(createFileRegistry(loadShopDescriptorSet())).routes.map(
  (route) => operationOf(route, false)!,
);

describe('ApiDocs', () => {
  it('makes the document once per generation of the routes, however often it is asked for', () => {
    let made = 0;
    let generation = {};
    const docs = new ApiDocs({
      surface: () => ({
        revision: 1,
        generation,
        operations: () => {
          made++;
          return OPERATIONS;
        },
      }),
      retryAfterSeconds: 1,
    });
    const first = docs.answer('GET', '/openapi.json', undefined);
    expect(first.status).toBe(200);
    expect(docs.answer('GET', '/openapi.json', undefined).body).toEqual(first.body);
    expect(docs.answer('HEAD', '/openapi.json', undefined).status).toBe(200);
    expect(made).toBe(1);

    generation = {};
    docs.answer('GET', '/openapi.json', undefined);
    expect(made).toBe(2);
  });

  it('logs the services a document leaves out for its size', () => {
    const fields = Array.from({ length: 5000 }, (_, index) =>
      field(`field_number_${index}`, index + 1, Type.INT32),
    );
    const wide = create(FileDescriptorProtoSchema, {
      name: 'test/wide.proto',
      package: 'test.wide.v1',
      syntax: 'proto3',
      messageType: [message('Wide', fields)],
      service: [
        {
          name: 'WideService',
          method: Array.from({ length: 64 }, (_, index) => ({
            name: `Put${index}`,
            inputType: '.test.wide.v1.Wide',
            outputType: '.test.wide.v1.Wide',
            options: httpOptions(`POST /wide${index}`, { body: '*' }),
          })),
        } as never,
      ],
    });
    const operations = [
      ...OPERATIONS,
      ...readHttpRoutes(registryOf(wide)).routes.map((route) => operationOf(route, false)!),
    ];
    const { log, lines } = captureLog('gateway');
    const docs = new ApiDocs({
      surface: () => ({ revision: 3, generation: operations, operations: () => operations }),
      retryAfterSeconds: 1,
      log,
    });
    expect(docs.answer('GET', '/openapi.json', undefined).status).toBe(200);
    docs.answer('GET', '/openapi.json', undefined);
    const warnings = lines.filter((line) => line.event === 'openapi-services-left-out');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ services: ['test.wide.v1.WideService'], revision: 3 });
  });
});
