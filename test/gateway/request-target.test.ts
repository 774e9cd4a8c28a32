import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { HostAllowlist } from '../../src/common/host-allowlist.js';
import {
  asksForUpgrade,
  framingRefusal,
  isHttp10,
  originForm,
  routingPath,
  splitQuery,
} from '../../src/gateway/request-target.js';

const request = (fields: Partial<IncomingMessage>) => fields as IncomingMessage;

describe('reading a request target and its framing headers', () => {
  it('routes the absolute form by its path and query, whatever its scheme and host', () => {
    expect(originForm('/goods?x=1')).toBe('/goods?x=1');
    expect(originForm('http://127.0.0.1:8000/goods?x=1')).toBe('/goods?x=1');
    expect(originForm('HTTPS://shop.example/members')).toBe('/members');
    expect(originForm('http://shop.example?x=1')).toBe('/?x=1');
    expect(originForm('*')).toBe('*');
    expect(originForm('ftp://shop.example/goods')).toBe('ftp://shop.example/goods');
  });

  it('decodes only the escapes of unreserved characters in a path, and refuses a malformed one', () => {
    expect(routingPath('/goods')).toBe('/goods');
    expect(routingPath('/go%6fds/%7E%2d%2E%5F%41%7a%30')).toBe('/goods/~-._Az0');
    // Reserved and other characters stay escaped, as they were sent.
    expect(routingPath('/goods/a%2Fb%20c%25d%C3%A9')).toBe('/goods/a%2Fb%20c%25d%C3%A9');
    for (const malformed of ['/%', '/%4', '/%zz', '/a%2', '/%E0%A4', '/%C0%80', '/%FF']) {
      expect([malformed, routingPath(malformed)]).toEqual([malformed, undefined]);
    }
  });

  it('splits the path from the query', () => {
    expect(splitQuery('/goods?page_size=2')).toEqual({ path: '/goods', queryStart: 6 });
    expect(splitQuery('/goods')).toEqual({ path: '/goods', queryStart: -1 });
  });

  it('sees an Upgrade only with Connection: upgrade, as Node does', () => {
    expect(
      asksForUpgrade(request({ headers: { upgrade: 'websocket', connection: 'keep-alive, Upgrade' } })),
    ).toBe(true);
    expect(asksForUpgrade(request({ headers: { upgrade: 'websocket' } }))).toBe(false);
    expect(asksForUpgrade(request({ headers: { upgrade: 'h2c', connection: 'upgraded' } }))).toBe(false);
  });

  it('tells HTTP/1.0 from 1.1', () => {
    expect(isHttp10(request({ httpVersionMajor: 1, httpVersionMinor: 0 }))).toBe(true);
    expect(isHttp10(request({ httpVersionMajor: 1, httpVersionMinor: 1 }))).toBe(false);
  });

  it('refuses a request by its Host and framing headers before routing it, and takes a sound one', () => {
    const allowed = new HostAllowlist([], ['shop-host']);
    const refusal = (fields: Partial<IncomingMessage>) => {
      const error = framingRefusal(
        request({ httpVersionMajor: 1, httpVersionMinor: 1, rawHeaders: [], headers: {}, ...fields }),
        allowed,
      );
      return error && [error.httpStatus, error.message];
    };
    expect(refusal({ headers: { host: 'localhost:8000' }, rawHeaders: ['Host', 'localhost:8000'] })).toBe(
      undefined,
    );
    // HTTP/1.0 needs no Host.
    expect(refusal({ httpVersionMinor: 0 })).toBe(undefined);
    expect(refusal({})).toEqual([400, 'An HTTP/1.1 request needs a Host header']);
    expect(
      refusal({ headers: { host: 'localhost' }, rawHeaders: ['Host', 'localhost', 'host', 'other'] }),
    ).toEqual([400, 'A request takes one Host header, not several']);
    expect(
      refusal({ headers: { host: 'localhost, other' }, rawHeaders: ['Host', 'localhost, other'] })?.[0],
    ).toBe(400);
    expect(refusal({ headers: { host: 'evil.example' }, rawHeaders: ['Host', 'evil.example'] })?.[0]).toBe(
      421,
    );
    expect(
      refusal({ httpVersionMinor: 0, headers: { 'transfer-encoding': 'chunked' }, rawHeaders: [] })?.[0],
    ).toBe(400);
  });
});
