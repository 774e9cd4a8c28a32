import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/gateway/gateway-error.js';
import { bodyFormat, bodyInput } from '../../src/gateway/request-input.js';

describe('bodyFormat', () => {
  it('reads JSON and forms, with or without a UTF-8 charset, in any case', () => {
    expect(bodyFormat('application/json')).toBe('json');
    expect(bodyFormat('Application/JSON; charset=UTF-8')).toBe('json');
    expect(bodyFormat('application/json;charset="utf-8"')).toBe('json');
    expect(bodyFormat('application/x-www-form-urlencoded')).toBe('form');
    expect(bodyFormat('application/x-www-form-urlencoded; charset=utf8')).toBe('form');
  });

  it('refuses other types and charsets', () => {
    for (const type of [
      undefined,
      '',
      'text/plain',
      'application/jsonx',
      'multipart/form-data; boundary=x',
    ]) {
      expect(bodyFormat(type)).toBeUndefined();
    }
    expect(bodyFormat('application/json; charset=iso-8859-1')).toBeUndefined();
  });
});

describe('bodyInput', () => {
  it('parses a JSON object and a form', () => {
    expect(bodyInput('json', Buffer.from('{"a":1}'))).toEqual({ kind: 'json', object: { a: 1 } });
    expect(bodyInput('json', Buffer.from('\uFEFF{"a":1}'))).toEqual({ kind: 'json', object: { a: 1 } });
    const form = bodyInput('form', Buffer.from('name=test+Goods&price=1000&x=%C3%A9'));
    expect(form.kind === 'text' && Object.fromEntries(form.params)).toEqual({
      name: 'test Goods',
      price: '1000',
      x: 'é',
    });
    expect(bodyInput('json', Buffer.alloc(0))).toEqual({ kind: 'none' });
  });

  it('answers 400 for malformed JSON, JSON that is not an object and bytes that are not UTF-8', () => {
    for (const body of ['{', '{"a":1}x', '[1]', '"text"', 'null', '12']) {
      expect(() => bodyInput('json', Buffer.from(body)), body).toThrow(GatewayError);
    }
    expect(() => bodyInput('json', Buffer.from([0x7b, 0xff, 0x7d]))).toThrow('not valid UTF-8');
  });

  it('answers 400 for a form whose percent-escapes are not UTF-8, instead of reading them as U+FFFD', () => {
    // %FF%FE and %FE%FD would both read as two U+FFFD: one user name for two different inputs.
    for (const body of ['username=%FF%FE&password=x', 'name=%ED%A0%80', 'a=%C3', 'a=%c3%28']) {
      expect(() => bodyInput('form', Buffer.from(body)), body).toThrow('not valid UTF-8');
    }
    // Escapes of UTF-8, of U+FFFD itself, and a % that escapes nothing are kept.
    const form = bodyInput('form', Buffer.from('a=%E2%82%AC&b=%EF%BF%BD&c=100%&d=%zz&e=%4'));
    expect(form.kind === 'text' && Object.fromEntries(form.params)).toEqual({
      a: '€',
      b: '\uFFFD',
      c: '100%',
      d: '%zz',
      e: '%4',
    });
  });
});
