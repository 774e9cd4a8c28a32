import { createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { httpEndpointUrl, httpRequestOptions, parseHttpEndpoint } from '../../src/common/http-endpoint.js';

// An endpoint of the shop's HTTP servers written as a URL and read back, a link-local host with its
// zone id included: WHATWG URL takes none (`new URL('http://[fe80::1%25eth0]:8000')` throws), and
// the launcher, reading the gateway's so, exited.

describe('httpEndpointUrl', () => {
  it('brackets an IPv6 host and writes its zone id as RFC 6874 does (%25)', () => {
    expect(httpEndpointUrl({ protocol: 'http', host: 'fe80::1%eth0', port: 8000 })).toBe(
      'http://[fe80::1%25eth0]:8000',
    );
    expect(httpEndpointUrl({ protocol: 'https', host: '::1', port: 8443 }, '/status.json')).toBe(
      'https://[::1]:8443/status.json',
    );
    expect(httpEndpointUrl({ protocol: 'http', host: '127.0.0.1', port: 9100 }, '/metrics')).toBe(
      'http://127.0.0.1:9100/metrics',
    );
    expect(httpEndpointUrl({ protocol: 'http', host: 'shop.example', port: 80 })).toBe(
      'http://shop.example:80',
    );
  });
});

describe('parseHttpEndpoint', () => {
  it('reads back what httpEndpointUrl writes, a zone id included', () => {
    for (const endpoint of [
      { protocol: 'http', host: 'fe80::1%eth0', port: 8000 },
      { protocol: 'http', host: 'fe80::1%2525', port: 8000 },
      { protocol: 'https', host: '::', port: 1 },
      { protocol: 'http', host: '0.0.0.0', port: 65535 },
      { protocol: 'http', host: 'shop.example', port: 8000 },
    ] as const) {
      expect(parseHttpEndpoint(httpEndpointUrl(endpoint))).toEqual(endpoint);
    }
  });

  it('takes a zone id written bare too, and a final slash', () => {
    expect(parseHttpEndpoint('http://[fe80::1%eth0]:8000/')).toEqual({
      protocol: 'http',
      host: 'fe80::1%eth0',
      port: 8000,
    });
  });

  it('refuses what names no endpoint', () => {
    for (const url of [
      '',
      'fe80::1%eth0',
      'http://[fe80::1%eth0]',
      'http://fe80::1:8000',
      'http://[not-an-address]:8000',
      'http://127.0.0.1:65536',
      'http://127.0.0.1:8000/status.json',
      'ftp://127.0.0.1:21',
      'http://user@127.0.0.1:8000',
    ]) {
      expect(parseHttpEndpoint(url), url).toBeUndefined();
    }
  });
});

describe('httpRequestOptions', () => {
  it('gives http.request the host as it is, zone id included, with its family', () => {
    expect(httpRequestOptions({ protocol: 'http', host: 'fe80::1%eth0', port: 8000 }, '/x')).toEqual({
      protocol: 'http:',
      host: 'fe80::1%eth0',
      port: 8000,
      path: '/x',
      family: 6,
    });
    expect(httpRequestOptions({ protocol: 'https', host: 'shop.example', port: 443 }, '/')).toEqual({
      protocol: 'https:',
      host: 'shop.example',
      port: 443,
      path: '/',
    });
  });

  it('reaches a server at the endpoint', async () => {
    const server = createServer((request, response) => response.end(request.url));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const body = await new Promise<string>((resolve, reject) => {
        get(httpRequestOptions({ protocol: 'http', host: '127.0.0.1', port }, '/status.json'), (response) => {
          let text = '';
          response.setEncoding('utf8').on('data', (chunk: string) => {
            text += chunk;
          });
          response.on('end', () => resolve(text));
        }).on('error', reject);
      });
      expect(body).toBe('/status.json');
    } finally {
      server.close();
    }
  });
});
