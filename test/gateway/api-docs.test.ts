import { createFileRegistry } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { loadShopDescriptorSet } from '../../src/common/descriptors.js';
import { readHttpRoutes } from '../../src/common/http-routes.js';
import { ApiDocs } from '../../src/gateway/api-docs.js';
import { chooseCoding } from '../../src/gateway/content-coding.js';
import { operationOf } from '../../src/gateway/route-table-operations.js';
import { captureLog } from '../helpers/log-capture.js';
import { registryOf, wideFile } from './support/descriptors.js';

const OPERATIONS = readHttpRoutes(createFileRegistry(loadShopDescriptorSet())).routes.map(
  (route) => operationOf(route, false)!,
);

function header(answer: { headers: readonly [string, string][] }, name: string): string | undefined {
  return answer.headers.find(([candidate]) => candidate.toLowerCase() === name.toLowerCase())?.[1];
}

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

  it('compresses the document once per generation and coding, not per request', () => {
    let generation = {};
    const docs = new ApiDocs({
      surface: () => ({ revision: 1, generation, operations: () => OPERATIONS }),
      retryAfterSeconds: 1,
    });
    const plain = docs.answer('GET', '/openapi.json', undefined);
    expect(header(plain, 'Vary')).toBe('Accept-Encoding');
    expect(header(plain, 'Content-Encoding')).toBeUndefined();
    for (const coding of ['br', 'gzip']) {
      const first = docs.answer('GET', '/openapi.json', coding);
      expect(header(first, 'Content-Encoding')).toBe(coding);
      expect(header(first, 'Vary')).toBe('Accept-Encoding');
      expect(first.body.length).toBeLessThan(plain.body.length);
      // The very same bytes: compressed once, kept with the document.
      expect(docs.answer('GET', '/openapi.json', coding).body).toBe(first.body);
      expect(docs.answer('HEAD', '/openapi.json', coding).body).toBe(first.body);
    }
    const gzipped = docs.answer('GET', '/openapi.json', 'gzip').body;
    generation = {};
    expect(docs.answer('GET', '/openapi.json', 'gzip').body).not.toBe(gzipped);
  });

  it('tags each representation of each document, and answers 304 to a request that has it', () => {
    let generation = {};
    let operations = OPERATIONS;
    const docs = new ApiDocs({
      surface: () => ({ revision: 1, generation, operations: () => operations }),
      retryAfterSeconds: 1,
    });
    const plain = header(docs.answer('GET', '/openapi.json', undefined), 'ETag')!;
    const gzip = header(docs.answer('GET', '/openapi.json', 'gzip'), 'ETag')!;
    const br = header(docs.answer('GET', '/openapi.json', 'br'), 'ETag')!;
    expect(plain).toMatch(/^"[A-Za-z0-9_-]+"$/);
    expect(new Set([plain, gzip, br]).size).toBe(3);
    for (const [accept, ifNoneMatch] of [
      [undefined, plain],
      ['gzip', gzip],
      ['gzip', `W/${gzip}`],
      ['br', `"other", ${br}`],
      ['br', '*'],
    ] as const) {
      const answer = docs.answer('GET', '/openapi.json', accept, ifNoneMatch);
      expect(answer.status, ifNoneMatch).toBe(304);
      expect(answer.body.length).toBe(0);
      expect(header(answer, 'Vary')).toBe('Accept-Encoding');
      expect(header(answer, 'Cache-Control')).toBe('no-cache');
      expect(docs.answer('HEAD', '/openapi.json', accept, ifNoneMatch).status).toBe(304);
    }
    // Another representation's tag, or the tag of a document before the routes changed: the document.
    expect(docs.answer('GET', '/openapi.json', 'br', gzip).status).toBe(200);
    generation = {};
    // The tag is the text's: routes made anew, but alike, make the same document.
    expect(docs.answer('GET', '/openapi.json', undefined, plain).status).toBe(304);
    generation = {};
    operations = OPERATIONS.slice(1);
    const changed = docs.answer('GET', '/openapi.json', undefined, plain);
    expect(changed.status).toBe(200);
    expect(header(changed, 'ETag')).not.toBe(plain);
  });

  it('logs the services a document leaves out for its size', () => {
    const wide = wideFile();
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

describe('the choice of a content coding', () => {
  it('takes the coding of highest weight, brotli on a tie, none that weighs 0', () => {
    const both = ['br', 'gzip'] as const;
    expect(chooseCoding(undefined, both)).toBeUndefined();
    expect(chooseCoding('', both)).toBeUndefined();
    expect(chooseCoding('gzip, deflate, br', both)).toBe('br');
    expect(chooseCoding('gzip', both)).toBe('gzip');
    expect(chooseCoding('br;q=0.5, gzip', both)).toBe('gzip');
    expect(chooseCoding('GZIP;Q=0.9, br;q=0.8', both)).toBe('gzip');
    expect(chooseCoding('*', both)).toBe('br');
    expect(chooseCoding('*;q=0.5, br;q=0', both)).toBe('gzip');
    expect(chooseCoding('br;q=0, gzip;q=0.000', both)).toBeUndefined();
    expect(chooseCoding('identity', both)).toBeUndefined();
    expect(chooseCoding('gzip;q=2', both)).toBeUndefined();
    expect(chooseCoding('br', ['gzip'])).toBeUndefined();
  });
});
