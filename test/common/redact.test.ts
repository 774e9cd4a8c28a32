import { Writable } from 'node:stream';
import { Metadata, status } from '@grpc/grpc-js';
import { type Logger, pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { redactDatabaseValues, redactUrl } from '../../src/common/redact.js';

describe('redactUrl', () => {
  it('replaces the values of secret query parameters and keeps the rest as it came', () => {
    expect(redactUrl('/members?username=ada&password=1234')).toBe(
      '/members?username=ada&password=[redacted]',
    );
    expect(redactUrl('/x?passwordConfirm=a&token=b&api_key=c&newPassword=d&q=%20e#frag')).toBe(
      '/x?passwordConfirm=[redacted]&token=[redacted]&api_key=[redacted]&newPassword=[redacted]&q=%20e#frag',
    );
    expect(redactUrl('/x?pass%77ord=1&PASSWORD=2&password')).toBe(
      '/x?pass%77ord=[redacted]&PASSWORD=[redacted]&password',
    );
    expect(redactUrl('/goods?id=1')).toBe('/goods?id=1');
    expect(redactUrl('/goods')).toBe('/goods');
    expect(redactUrl('/x?%E0%A4%A=1&password=2')).toBe('/x?%E0%A4%A=1&password=[redacted]');
  });

  it('takes a "#" in the query for part of it, as the gateway reads the query: no password after one is logged', () => {
    // The gateway reads everything after "?" with URLSearchParams: "bob#1" is the username and
    // "secret" the password; "ab#cd" is a password whole.
    expect(redactUrl('/membrs?username=bob#1&password=secret')).toBe(
      '/membrs?username=bob#1&password=[redacted]',
    );
    expect(redactUrl('/membrs?username=bob&password=ab#cd')).toBe('/membrs?username=bob&password=[redacted]');
    expect(redactUrl('/membrs?username=bob&password=ab#cd&password=ef')).toBe(
      '/membrs?username=bob&password=[redacted]&password=[redacted]',
    );
    expect(redactUrl('/membrs#?password=x')).toBe('/membrs#?password=[redacted]');
  });

  it('drops the user information of an absolute-form target, which the gateway answers as it came', () => {
    expect(redactUrl('http://bob:secret@shop.example:8000/nonexist')).toBe(
      'http://[redacted]@shop.example:8000/nonexist',
    );
    expect(redactUrl('http://a:b@c@shop.example/x?password=1')).toBe(
      'http://[redacted]@shop.example/x?password=[redacted]',
    );
    expect(redactUrl('http://token@shop.example/x')).toBe('http://[redacted]@shop.example/x');
    expect(redactUrl('http://shop.example/x?u=a@b')).toBe('http://shop.example/x?u=a@b');
    expect(redactUrl('/x?u=http://a:b@c')).toBe('/x?u=http://a:b@c');
  });
});

describe('createLogger', () => {
  it('redacts secrets at every level, debug included: url queries and fields named as secrets', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const log = createLogger({ component: 'test', level: 'trace', destination });
    log.trace({ url: '/nope?username=ada&password=hunter2' }, 'no route');
    log.debug({ request: { username: 'ada', password: 'hunter2', passwordConfirm: 'hunter2' } }, 'request');
    log.warn(
      {
        call: { body: { password: 'hunter2' } },
        token: 'hunter2',
        headers: { authorization: 'Bearer hunter2' },
      },
      'x',
    );
    log.error({ err: new Error('failed'), registryToken: 'hunter2' }, 'failed');
    expect(lines).toHaveLength(4);
    expect(lines.join('')).not.toContain('hunter2');
    expect(JSON.parse(lines[0]!).url).toBe('/nope?username=ada&password=[redacted]');
    expect(JSON.parse(lines[1]!).request).toEqual({
      username: 'ada',
      password: '[redacted]',
      passwordConfirm: '[redacted]',
    });
  });
});

describe('redactDatabaseValues', () => {
  it('drops the value a database message quotes and keeps which key or column', () => {
    expect(redactDatabaseValues("Duplicate entry 'alice' for key 'members_username'")).toBe(
      "Duplicate entry [redacted] for key 'members_username'",
    );
    expect(
      redactDatabaseValues("Incorrect string value: '\\xF0\\x9F' for column `t`.`goods`.`name` at row 1"),
    ).toBe('Incorrect string value: [redacted] for column `t`.`goods`.`name` at row 1');
    expect(redactDatabaseValues('UNIQUE constraint failed: members.username')).toBe(
      'UNIQUE constraint failed: members.username',
    );
  });

  it("shows no part of a value that itself reads like the message's end", () => {
    const text = "Duplicate entry 'x' for key 'y' and\nmore' for key 'members_username'";
    expect(redactDatabaseValues(text)).toBe("Duplicate entry [redacted] for key 'members_username'");
  });
});

describe("createLogger's err serializer", () => {
  /** The `err` field of the line `log` writes for an error. */
  const errField = (make: (destination: Writable) => Logger, err: unknown): unknown => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _encoding, callback) {
        lines.push(String(chunk));
        callback();
      },
    });
    make(destination).error({ err }, 'failed');
    return JSON.parse(lines[0]!).err;
  };

  it("logs an error's fields as pino does (metadata, dates, buffers), its quoted values redacted", () => {
    const metadata = new Metadata();
    metadata.set('x-request-id', 'r-1');
    const error = Object.assign(new Error("Duplicate entry 'alice' for key 'u'"), {
      code: status.ALREADY_EXISTS,
      metadata,
      at: new Date(0),
      bytes: Buffer.from('hi'),
    });
    const ours = errField((destination) => createLogger({ component: 't', destination }), error);
    const pinos = errField((destination) => pino({}, destination), error) as Record<string, unknown>;
    expect(ours).toEqual({
      ...pinos,
      message: "Duplicate entry [redacted] for key 'u'",
      stack: redactDatabaseValues(String(pinos.stack)),
    });
    expect(pinos.metadata).toEqual({ 'x-request-id': ['r-1'] });
  });

  it('keeps the error itself as err.raw, unwritten, as pino does', () => {
    const error = new Error("Duplicate entry 'alice' for key 'u'");
    const log = createLogger({ component: 't', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
    const serialize = (log as unknown as { [key: symbol]: Record<string, (e: unknown) => unknown> })[
      pino.symbols.serializersSym
    ]!;
    const serialized = serialize.err!(error) as { raw?: unknown };
    expect(serialized.raw).toBe(error);
    expect(Object.keys(serialized)).not.toContain('raw');
  });
});
