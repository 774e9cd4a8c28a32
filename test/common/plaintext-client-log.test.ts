import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server, connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Logger } from '../../src/common/logger.js';
import { logPlaintextClients } from '../../src/common/plaintext-client-log.js';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { captureLog } from '../helpers/log-capture.js';

let dir: string;
let pki: TestPki;
let server: Server;
let port: number;
const { log, lines } = captureLog('goods', 'info');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plaintext-client-log-'));
  pki = makeTestPki(dir, { names: ['goods'] });
  const files = pki.files('goods');
  server = createServer({ cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) });
  // Two addresses remembered, the same one told again after 300 ms.
  logPlaintextClients(server, log, { intervalMs: 300, maxAddresses: 2 });
  port = await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(portOf(server))));
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

/** A port of goods' certificate that requires a client certificate of the CA, its clients told of to `log`. */
async function mutualTlsPort(log: Logger): Promise<{ mtlsServer: Server; mtlsPort: number }> {
  const files = pki.files('goods');
  const mtlsServer = createServer({
    ca: readFileSync(files.caFile),
    cert: readFileSync(files.certFile),
    key: readFileSync(files.keyFile),
    requestCert: true,
    rejectUnauthorized: true,
  });
  logPlaintextClients(mtlsServer, log);
  const mtlsPort = await new Promise<number>((resolve) =>
    mtlsServer.listen(0, '127.0.0.1', () => resolve(portOf(mtlsServer))),
  );
  return { mtlsServer, mtlsPort };
}

function portOf(listening: Server): number {
  const address = listening.address();
  return typeof address === 'object' && address ? address.port : 0;
}

/** Sends `bytes` in plaintext from the loopback address `from`; resolves when the server has closed. */
function send(from: string, bytes: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress: from }, () => socket.write(bytes));
    socket.on('error', () => {});
    socket.once('close', () => resolve());
  });
}

const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
const told = () => lines.filter((line) => line.event === 'plaintext-client').map((line) => line.address);

describe('logPlaintextClients', () => {
  it('tells each address once per interval, remembers a bounded number, and ignores TLS clients', async () => {
    await send('127.0.0.2', PREFACE);
    await send('127.0.0.2', 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(told()).toEqual(['127.0.0.2']);
    await send('127.0.0.3', PREFACE);
    // A third address pushes out the one told longest ago (127.0.0.2), which is then news again.
    await send('127.0.0.4', PREFACE);
    await send('127.0.0.2', PREFACE);
    expect(told()).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.2']);
    // Past the interval, the same address is told again.
    await new Promise((resolve) => setTimeout(resolve, 350));
    await send('127.0.0.4', PREFACE);
    await vi.waitFor(() => expect(told()).toHaveLength(5));
    expect(told()[4]).toBe('127.0.0.4');
    // A TLS client whose handshake fails for another reason (it trusts no such CA) spoke TLS.
    await new Promise<void>((resolve) => {
      const socket = tlsConnect({
        host: '127.0.0.1',
        port,
        servername: 'localhost',
      });
      socket.on('error', () => {});
      socket.once('close', () => resolve());
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(told()).toHaveLength(5);
  });
});

describe('logPlaintextClients on a mutual-TLS port', () => {
  it('tells a TLS client that presented no certificate, once per address per interval, and not one that did', async () => {
    const mtls = captureLog('goods', 'info');
    const files = pki.files('goods');
    const { mtlsServer, mtlsPort } = await mutualTlsPort(mtls.log);
    const handshake = (from: string, withCertificate: boolean): Promise<void> =>
      new Promise((resolve) => {
        const socket = tlsConnect({
          socket: connect({ host: '127.0.0.1', port: mtlsPort, localAddress: from }),
          servername: 'localhost',
          ca: readFileSync(files.caFile),
          ...(withCertificate
            ? { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) }
            : {}),
        });
        socket.on('error', () => {});
        socket.on('secureConnect', () => {
          // TLS 1.3: the server refuses after the client's side of the handshake is done.
          socket.on('data', () => {});
          if (withCertificate) socket.end();
        });
        socket.once('close', () => resolve());
      });
    const noCertificate = () =>
      mtls.lines.filter((line) => line.event === 'no-client-certificate').map((line) => line.address);
    try {
      await handshake('127.0.0.5', false);
      await handshake('127.0.0.5', false);
      await handshake('127.0.0.6', true);
      await vi.waitFor(() => expect(noCertificate()).toEqual(['127.0.0.5']));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(noCertificate()).toEqual(['127.0.0.5']);
      expect(mtls.lines.filter((line) => line.event === 'plaintext-client')).toEqual([]);
      expect(mtls.lines[0]!.msg).toBe(
        "a client at 127.0.0.5 presented no certificate to this mutual-TLS port and was refused; a tool needs one issued by this component's CA (the operator certificate of npm run certs)",
      );
    } finally {
      await new Promise((resolve) => mtlsServer.close(resolve));
    }
  });
});

describe('logPlaintextClients, a client certificate of another CA', () => {
  it('is told once per address per interval (Node drops it after the handshake without an event), and a certificate of the CA is not', async () => {
    const capture = captureLog('goods', 'info');
    const files = pki.files('goods');
    const { mtlsServer, mtlsPort } = await mutualTlsPort(capture.log);
    // A host given another npm run certs run's files: it trusts the server, the server not it.
    const handshake = (from: string, client: { certFile: string; keyFile: string; caFile: string }) =>
      new Promise<void>((resolve) => {
        const socket = tlsConnect({
          socket: connect({ host: '127.0.0.1', port: mtlsPort, localAddress: from }),
          servername: 'localhost',
          ca: readFileSync(client.caFile),
          cert: readFileSync(client.certFile),
          key: readFileSync(client.keyFile),
        });
        socket.on('error', () => {});
        socket.on('secureConnect', () => {
          socket.on('data', () => {});
          setTimeout(() => socket.end(), 100);
        });
        socket.once('close', () => resolve());
      });
    const untrusted = () =>
      capture.lines
        .filter((line) => line.event === 'untrusted-client-certificate')
        .map((line) => line.address);
    try {
      await handshake('127.0.0.7', pki.foreignFiles('goods'));
      await handshake('127.0.0.7', pki.foreignFiles('goods'));
      await handshake('127.0.0.8', files);
      await vi.waitFor(() => expect(untrusted()).toEqual(['127.0.0.7']));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(untrusted()).toEqual(['127.0.0.7']);
      expect(capture.lines.map((line) => line.event)).toEqual(['untrusted-client-certificate']);
      expect(capture.lines[0]!.msg).toMatch(
        /^a client at 127\.0\.0\.7 presented a certificate that this component's CA file \(TLS_CA, or ca\.crt in TLS_DIR\) does not issue \([A-Z_]+\): give it one of this CA, or add its CA to this CA file; it was refused$/,
      );
    } finally {
      await new Promise((resolve) => mtlsServer.close(resolve));
    }
  });
});

describe('logPlaintextClients, the handshakes it watches', () => {
  it('watches handshakes (keylog) only on a port that requires a client certificate', () => {
    const files = pki.files('goods');
    const options = { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
    const plain = createServer(options);
    logPlaintextClients(plain, captureLog('goods', 'info').log);
    expect(plain.listenerCount('keylog')).toBe(0);
    const mutual = createServer({
      ...options,
      ca: readFileSync(files.caFile),
      requestCert: true,
      rejectUnauthorized: true,
    });
    logPlaintextClients(mutual, captureLog('goods', 'info').log);
    expect(mutual.listenerCount('keylog')).toBe(1);
  });
});

describe('logPlaintextClients, an IPv6 client', () => {
  it('is told once per /64 per interval: a new address of its /64 for every connection is no new line', () => {
    const capture = captureLog('goods', 'info');
    const fake = new EventEmitter();
    logPlaintextClients(fake as unknown as Server, capture.log);
    const refuse = (code: string, remoteAddress: string) =>
      fake.emit('tlsClientError', Object.assign(new Error(code), { code }), { remoteAddress });
    for (let i = 1; i <= 50; i++) {
      refuse('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', `2001:db8:0:1::${i.toString(16)}`);
      refuse('ERR_SSL_WRONG_VERSION_NUMBER', `2001:db8:0:1:${i.toString(16)}::1`);
    }
    // Another /64, and an IPv4 client on a dual-stack port, are each news.
    refuse('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', '2001:db8:0:2::1');
    refuse('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', '::ffff:192.0.2.7');
    refuse('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', '192.0.2.7');
    expect(capture.lines.map((line) => [line.event, line.address])).toEqual([
      ['no-client-certificate', '2001:db8:0:1::1'],
      ['plaintext-client', '2001:db8:0:1:1::1'],
      ['no-client-certificate', '2001:db8:0:2::1'],
      // Named by its IPv4 address, as everywhere else, not as Node gives it there.
      ['no-client-certificate', '192.0.2.7'],
    ]);
  });
});
