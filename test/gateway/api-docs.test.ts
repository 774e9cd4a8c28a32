import { createFileRegistry } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { loadShopDescriptorSet } from '../../src/common/descriptors.js';
import { readHttpRoutes } from '../../src/common/http-routes.js';
import { ApiDocs } from '../../src/gateway/api-docs.js';
import { operationOf } from '../../src/gateway/route-table-operations.js';

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
});
