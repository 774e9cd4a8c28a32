import { describe, expect, it } from 'vitest';
import {
  isLiteralTemplate,
  matchPathTemplate,
  PathTemplateError,
  parsePathTemplate,
  templatesOverlap,
} from '../../src/common/path-template.js';

describe('parsePathTemplate', () => {
  it('reads literals, variables, wildcards and a verb, and gives the shape that identifies a route', () => {
    expect(parsePathTemplate('/goods')).toMatchObject({ variables: [], verb: undefined, shape: '/goods' });
    expect(isLiteralTemplate(parsePathTemplate('/goods'))).toBe(true);
    const byId = parsePathTemplate('/goods/{id}');
    expect(byId.shape).toBe('/goods/*');
    expect(byId.variables).toEqual([{ fieldPath: 'id', start: 1, end: 2 }]);
    expect(isLiteralTemplate(byId)).toBe(false);
    const nested = parsePathTemplate('/v1/{book.name=shelves/*/books/*}:publish');
    expect(nested.shape).toBe('/v1/shelves/*/books/*:publish');
    expect(nested.verb).toBe('publish');
    expect(nested.variables).toEqual([{ fieldPath: 'book.name', start: 1, end: 5 }]);
    expect(parsePathTemplate('/files/{path=**}').shape).toBe('/files/**');
    expect(parsePathTemplate('/').segments).toEqual([]);
  });

  it.each([
    ['goods', 'must start with "/"'],
    ['/goods/', 'is not a path segment'],
    ['/goods//x', 'is not a path segment'],
    ['/goods/{id', 'a "{" is not closed'],
    ['/goods/{1d}', 'is not a field path'],
    ['/goods/{id}/{id}', 'appears twice'],
    ['/goods/x{id}', 'whole segments'],
    ['/goods/{id}x', 'whole segments'],
    ['/a/{b={c}}', 'variables cannot nest'],
    ['/**/goods', '"**" must be the last segment'],
    ['/go ods', 'is not a path segment'],
    ['/goods?x=1', 'is not a path segment'],
  ])('refuses %s', (template, problem) => {
    expect(() => parsePathTemplate(template)).toThrow(PathTemplateError);
    expect(() => parsePathTemplate(template)).toThrow(problem);
  });
});

describe('matchPathTemplate', () => {
  it('matches segment by segment, and gives the variables decoded', () => {
    const byId = parsePathTemplate('/goods/{id}');
    expect(matchPathTemplate(byId, '/goods/42')).toEqual(['42']);
    expect(matchPathTemplate(byId, '/goods/caf%C3%A9%2F1')).toEqual(['café/1']);
    for (const path of ['/goods', '/goods/', '/goods/1/2', '/goodsx/1', 'goods/1', '/goods/%E0%A4%A']) {
      expect(matchPathTemplate(byId, path), path).toBeUndefined();
    }
  });

  it('matches a multi-segment variable and ** over any depth, and a verb', () => {
    const nested = parsePathTemplate('/v1/{name=shelves/*/books/*}:publish');
    expect(matchPathTemplate(nested, '/v1/shelves/1/books/2:publish')).toEqual(['shelves/1/books/2']);
    expect(matchPathTemplate(nested, '/v1/shelves/1/books/2')).toBeUndefined();
    expect(matchPathTemplate(nested, '/v1/shelves/1/novels/2:publish')).toBeUndefined();
    const files = parsePathTemplate('/files/{path=**}');
    expect(matchPathTemplate(files, '/files/a/b/c')).toEqual(['a/b/c']);
    expect(matchPathTemplate(files, '/files/')).toEqual(['']);
    expect(matchPathTemplate(parsePathTemplate('/'), '/')).toEqual([]);
    expect(matchPathTemplate(parsePathTemplate('/'), '/x')).toBeUndefined();
  });

  it('leaves %2F escaped in a multi-segment variable, as google/api/http.proto says, and decodes the rest', () => {
    const files = parsePathTemplate('/files/{path=**}');
    // Decoded, a name of two segments ("a/b%2Fc") was the name of three ("a/b/c").
    expect(matchPathTemplate(files, '/files/a/b%2Fc')).toEqual(['a/b%2Fc']);
    expect(matchPathTemplate(files, '/files/a/b%2fc%20d%C3%A9')).toEqual(['a/b%2fc dé']);
    expect(matchPathTemplate(files, '/files/%252F')).toEqual(['%2F']);
    const shelves = parsePathTemplate('/v1/{name=shelves/*}/books/{book}');
    expect(matchPathTemplate(shelves, '/v1/shelves/a%2Fb/books/c%2Fd')).toEqual(['shelves/a%2Fb', 'c/d']);
    // The literals inside the variable still match decoded.
    expect(matchPathTemplate(shelves, '/v1/shelve%73/1/books/2')).toEqual(['shelves/1', '2']);
    expect(matchPathTemplate(files, '/files/%E0%A4%A')).toBeUndefined();
  });
});

describe('templatesOverlap', () => {
  // Each pair that overlaps comes with a path both templates match.
  it.each([
    ['/goods/{id}', '/goods/special', '/goods/special'],
    ['/purchases/{id}', '/purchases/1', '/purchases/1'],
    ['/goods/{id}', '/goods/{name}', '/goods/x'],
    ['/a/{x}/c', '/a/b/{y}', '/a/b/c'],
    ['/files/{path=**}', '/files/a/b/c', '/files/a/b/c'],
    ['/files/**', '/files', '/files'],
    ['/{all=**}', '/', '/'],
    ['/{all=**}', '/goods/1:cancel', '/goods/1:cancel'],
    ['/goods/{id}:cancel', '/goods/{id}', '/goods/1:cancel'],
    ['/goods/{id}:cancel', '/goods/7:cancel', '/goods/7:cancel'],
    ['/a/{p=**}:v', '/a/%3Av', '/a/:v'],
    ['/goods/{id}:cancel', '/goods/{id}:cancel', '/goods/1:cancel'],
    ['/a/b%3AA', '/a/b:%41', '/a/b:%41'],
    ['/a/**', '/a/b:x', '/a/b:x'],
    ['/a/{x}', '/a/{y}:x', '/a/b:x'],
    ['/{x}', '/:cancel', '/:cancel'],
    ['/a/{p=**}:verb', '/{x}', '/a:verb'],
    ['/a/{p=**}:verb', '/a%3Averb', '/a:verb'],
    ['/a/{p=**}:v', '/a/b/{c}', '/a/b/c:v'],
  ])('%s and %s overlap (both match %s)', (first, second, path) => {
    const [a, b] = [parsePathTemplate(first), parsePathTemplate(second)];
    expect(matchPathTemplate(a, path)).toBeDefined();
    expect(matchPathTemplate(b, path)).toBeDefined();
    expect(templatesOverlap(a, b)).toBe(true);
    expect(templatesOverlap(b, a)).toBe(true);
  });

  it.each([
    ['/goods', '/members'],
    ['/goods/{id}', '/goods'],
    ['/goods/{id}', '/goods/{id}/reviews'],
    ['/a/{x}/c', '/a/b/d'],
    ['/files/{path=**}', '/other/a'],
    ['/', '/goods'],
    ['/goods/{id}:cancel', '/goods/{id}:refund'],
    ['/goods/{id}:cancel', '/goods/7'],
    ['/goods/{id}:cancel', '/goods'],
    ['/', '/:cancel'],
    ['/a/{x}:v', '/a/%3Av'],
    ['/a/{x}:v', '/a/b'],
    ['/a/**', '/a:x'],
    ['/files/**', '/files:batchDelete'],
    ['/a/b', '/a/{x}:v'],
    ['/a/{p=**}:v', '/b/c'],
    ['/a/{p=**}:v', '/a'],
    ['/a/{p=**}:v', '/a/b/c'],
  ])('%s and %s do not', (first, second) => {
    const [a, b] = [parsePathTemplate(first), parsePathTemplate(second)];
    expect(templatesOverlap(a, b)).toBe(false);
    expect(templatesOverlap(b, a)).toBe(false);
  });
});
