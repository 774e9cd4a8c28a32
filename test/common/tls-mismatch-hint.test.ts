import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { tlsMismatchHint } from '../../src/common/tls-mismatch-hint.js';

// The details grpc-js 1.14 gave in the reproductions (test/e2e/tls-mismatch.test.ts), and those of
// failures that are no TLS mismatch: only the first two may bring a hint.
const LAST_ERROR = (error: string) => `No connection established. Last error: ${error}. Resolution note: `;
const SERVER_REQUIRES_TLS = LAST_ERROR('Failed to connect (2026-12-04T16:53:27.218Z)');
const SERVER_PLAINTEXT = LAST_ERROR(
  'Error: 80AC41012D7F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:\n',
);
const NOT_TLS = [
  LAST_ERROR('Error: connect ECONNREFUSED 127.0.0.1:19799'),
  LAST_ERROR('Error: connect EHOSTUNREACH 10.0.0.1:9000'),
  LAST_ERROR('Error: connect ETIMEDOUT 10.0.0.1:9000'),
  'Failed to connect before the deadline',
  'no connection to the distributor within 10000 ms; trying a new one',
  LAST_ERROR(
    'Error: 80AC41012D7F0000:error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed',
  ),
];

// Both sides with TLS, certificates of different CAs (test/e2e/tls-mismatch.test.ts): the server
// drops a client whose certificate it does not trust without a word, and a client that does not
// trust the server's chain names it.
const CLIENT_CERTIFICATE_REFUSED = [
  LAST_ERROR('read ECONNRESET (2026-12-05T05:55:26.087Z)'),
  LAST_ERROR('Failed to connect (2026-12-05T05:55:26.359Z)'),
];
const SERVER_OF_ANOTHER_CA = [
  LAST_ERROR('Error: self-signed certificate in certificate chain'),
  LAST_ERROR('Error: unable to get local issuer certificate'),
];

describe('tlsMismatchHint', () => {
  it.each(CLIENT_CERTIFICATE_REFUSED)(
    'hints to a client with TLS that the server may not accept its certificate, for %j',
    (details) => {
      expect(tlsMismatchHint(details, true, 'the distributor')).toBe(
        " — the distributor may not accept this component's certificate: it must be issued by the CA in the distributor's ca.crt and be valid by the distributor's clock, neither expired nor starting later (keep the hosts' clocks in step) (TLS_CERT, or <name>.crt in TLS_DIR; a certificate of an intermediate CA needs the intermediate after it in its certificate file); the distributor's log names the reason (untrusted-client-certificate)",
      );
    },
  );

  it.each(SERVER_OF_ANOTHER_CA)('hints at a CA of its own to a client with TLS, for %j', (details) => {
    expect(tlsMismatchHint(details, true, 'goods@10.0.0.2:9010')).toBe(
      " — goods@10.0.0.2:9010's certificate is not issued by a CA in this component's CA file (TLS_CA, or ca.crt in TLS_DIR): give every host the same ca.crt, or, with split CAs, add the CA that issued it; a certificate of an intermediate CA needs the intermediate after it in its certificate file",
    );
    expect(tlsMismatchHint(details, false, 'goods@10.0.0.2:9010')).toBe('');
  });

  it("says that the server's certificate is not valid yet by this host's clock, and that the clock may be behind", () => {
    // goods on a host 2 h behind, dialling a distributor whose certificate npm run certs issued just now.
    const details = LAST_ERROR('Error: certificate is not yet valid');
    expect(tlsMismatchHint(details, true, 'the distributor')).toBe(
      " — the distributor's certificate starts later than this host's clock says it is now: if it was issued recently, this host's clock is behind the clock of the machine that issued it (set it right, NTP); else renew it with the right start",
    );
    expect(tlsMismatchHint(LAST_ERROR('Error: certificate has expired'), true, 'goods@10.0.0.2:9010')).toBe(
      " — goods@10.0.0.2:9010's certificate has expired by this host's clock: renew it, or, if this host's clock is ahead, set it right (NTP)",
    );
    expect(tlsMismatchHint(details, false, 'the distributor')).toBe('');
  });

  it('gives no certificate hint for a reset on a connection already made', () => {
    expect(tlsMismatchHint('read ECONNRESET', true, 'goods@10.0.0.2:9010')).toBe('');
  });

  it('hints that the server may require TLS only to a client without TLS', () => {
    expect(tlsMismatchHint(SERVER_REQUIRES_TLS, false, 'the distributor')).toBe(
      ' — the distributor may require TLS: this component has no TLS files (set TLS_DIR (--tls-dir), or TLS_CA, TLS_CERT and TLS_KEY)',
    );
    expect(tlsMismatchHint(SERVER_REQUIRES_TLS, true, 'the distributor')).not.toMatch(/require TLS/);
  });

  it('hints that the server may not speak TLS only to a client with TLS', () => {
    expect(tlsMismatchHint(SERVER_PLAINTEXT, true, 'goods@10.0.0.2:9010')).toMatch(
      /^ — goods@10\.0\.0\.2:9010 may not speak TLS: this component has TLS files/,
    );
    expect(tlsMismatchHint(SERVER_PLAINTEXT, false, 'goods@10.0.0.2:9010')).toBe('');
  });

  // Seen across hosts: `--distributor 10.0.0.1:9100` (the distributor's metrics port, beside its
  // 9000) told a TLS component that the distributor, which had TLS files, needed its own, and a
  // plaintext one only "Protocol error".
  it('tells a client with TLS that the address may be a plain HTTP port, not only a server without TLS', () => {
    expect(tlsMismatchHint(SERVER_PLAINTEXT, true, 'the distributor')).toContain(
      'or this is not its gRPC port: a plain HTTP port, such as a metrics port',
    );
  });

  describe('a plaintext gRPC client that reaches an HTTP/1.1 port', () => {
    let server: Server | undefined;
    afterEach(async () => {
      await new Promise((resolve) => server?.close(resolve));
      server = undefined;
    });

    it('is told the address is not the gRPC port, with the details grpc-js really gives', async () => {
      server = createServer((_request, response) => response.end('# metrics\n'));
      await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
      try {
        const error = await new Promise<ServiceError>((resolve) => {
          client.makeUnaryRequest(
            '/shop.v1.DistributorService/List',
            (value: Buffer) => value,
            (value: Buffer) => value,
            Buffer.alloc(0),
            new Metadata(),
            { deadline: Date.now() + 5_000 },
            (failure) => resolve(failure!),
          );
        });
        expect(tlsMismatchHint(error.details, false, 'the distributor')).toBe(
          " — the address answered, but not in gRPC (HTTP/2): it is not the distributor's gRPC port (a metrics port, --metrics-port, or the gateway's REST port speaks HTTP/1.1)",
        );
      } finally {
        client.close();
      }
    });
  });

  it.each(NOT_TLS)('gives no hint for %j', (details) => {
    expect(tlsMismatchHint(details, false, 'the distributor')).toBe('');
    expect(tlsMismatchHint(details, true, 'the distributor')).toBe('');
  });
});
