import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/gateway/gateway-error.js';
import { type BodyFormat, bodyFormat, bodyInput } from '../../src/gateway/request-input.js';

const JSON_UTF8: BodyFormat = { syntax: 'json', charset: 'utf-8' };
const FORM_UTF8: BodyFormat = { syntax: 'form', charset: 'utf-8' };

describe('bodyFormat', () => {
  it('reads JSON and forms, with or without a UTF-8 charset, in any case', () => {
    expect(bodyFormat('application/json')).toEqual(JSON_UTF8);
    expect(bodyFormat('Application/JSON; charset=UTF-8')).toEqual(JSON_UTF8);
    expect(bodyFormat('application/json;charset="utf-8"')).toEqual(JSON_UTF8);
    expect(bodyFormat('application/x-www-form-urlencoded')).toEqual(FORM_UTF8);
    expect(bodyFormat('application/x-www-form-urlencoded; charset=utf8')).toEqual(FORM_UTF8);
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

  it('reads US-ASCII, a subset of UTF-8, in any case', () => {
    for (const type of ['application/json; charset=us-ascii', 'application/json;Charset="US-ASCII"']) {
      expect(bodyFormat(type), type).toEqual({ syntax: 'json', charset: 'us-ascii' });
    }
    expect(bodyFormat('application/x-www-form-urlencoded; charset=Us-Ascii')).toEqual({
      syntax: 'form',
      charset: 'us-ascii',
    });
  });
});

describe('bodyInput', () => {
  it('answers 400 for a body declared US-ASCII with a byte from 0x80 up, raw or percent-escaped', () => {
    const json: BodyFormat = { syntax: 'json', charset: 'us-ascii' };
    const form: BodyFormat = { syntax: 'form', charset: 'us-ascii' };
    expect(bodyInput(json, Buffer.from('{"a":"b"}'))).toEqual({ kind: 'json', object: { a: 'b' } });
    // Valid UTF-8 still is not US-ASCII: the client said it was, and is not read as if it had not.
    expect(() => bodyInput(json, Buffer.from('{"a":"é"}'))).toThrow('not valid US-ASCII');
    expect(() => bodyInput(json, Buffer.from([0x7b, 0xff, 0x7d]))).toThrow('not valid US-ASCII');
    expect(() => bodyInput(form, Buffer.from('a=%C3%A9'))).toThrow('not valid US-ASCII');
    const plain = bodyInput(form, Buffer.from('a=b+c&d=%41'));
    expect(plain.kind === 'text' && Object.fromEntries(plain.params)).toEqual({ a: 'b c', d: 'A' });
  });

  it('parses a JSON object and a form', () => {
    expect(bodyInput(JSON_UTF8, Buffer.from('{"a":1}'))).toEqual({ kind: 'json', object: { a: 1 } });
    expect(bodyInput(JSON_UTF8, Buffer.from('\uFEFF{"a":1}'))).toEqual({ kind: 'json', object: { a: 1 } });
    const form = bodyInput(FORM_UTF8, Buffer.from('name=test+Goods&price=1000&x=%C3%A9'));
    expect(form.kind === 'text' && Object.fromEntries(form.params)).toEqual({
      name: 'test Goods',
      price: '1000',
      x: 'é',
    });
    expect(bodyInput(JSON_UTF8, Buffer.alloc(0))).toEqual({ kind: 'none' });
  });

  it('answers 400 for malformed JSON, JSON that is not an object and bytes that are not UTF-8', () => {
    for (const body of ['{', '{"a":1}x', '[1]', '"text"', 'null', '12']) {
      expect(() => bodyInput(JSON_UTF8, Buffer.from(body)), body).toThrow(GatewayError);
    }
    expect(() => bodyInput(JSON_UTF8, Buffer.from([0x7b, 0xff, 0x7d]))).toThrow('not valid UTF-8');
  });

  it('answers 400 for a form whose percent-escapes are not UTF-8, instead of reading them as U+FFFD', () => {
    // %FF%FE and %FE%FD would both read as two U+FFFD: one user name for two different inputs.
    for (const body of ['username=%FF%FE&password=x', 'name=%ED%A0%80', 'a=%C3', 'a=%c3%28']) {
      expect(() => bodyInput(FORM_UTF8, Buffer.from(body)), body).toThrow('not valid UTF-8');
    }
    // Escapes of UTF-8, of U+FFFD itself, and a % that escapes nothing are kept.
    const form = bodyInput(FORM_UTF8, Buffer.from('a=%E2%82%AC&b=%EF%BF%BD&c=100%&d=%zz&e=%4'));
    expect(form.kind === 'text' && Object.fromEntries(form.params)).toEqual({
      a: '€',
      b: '\uFFFD',
      c: '100%',
      d: '%zz',
      e: '%4',
    });
  });
});
