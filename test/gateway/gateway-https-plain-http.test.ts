import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { makeTestPki } from '../helpers/certs.js';
import { httpsGet, raw, rawBody } from '../helpers/http.js';
import { Closer, startDistributor, startGateway, waitForRoute } from './support/cluster.js';
import { startFakeGoods } from './support/fake-shop.js';

const ROW = { id: 1, name: 'test Goods', category: 'tests', price: 1000, description: 'test' };

/** Writes `bytes` on a new connection, keeps it open, and says when the gateway closed it and what it answered. */
function sendAndHold(port: number, bytes: Buffer): { closed: () => boolean; answer: () => string } {
  const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
  let closed = false;
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
  });
  return { closed: () => closed, answer: () => Buffer.concat(chunks).toString('latin1') };
}

/** A client that speaks plain HTTP to the gateway's HTTPS port (`curl http://...`). */
describe('gateway over HTTPS, spoken to in plain HTTP', () => {
  const closer = new Closer();
  const dir = mkdtempSync(join(tmpdir(), 'gateway-plain-http-'));
  let port: number;
  let caFile: string;

  beforeAll(async () => {
    const distributor = (await startDistributor(closer)).address;
    await startFakeGoods(closer, distributor, {}, [ROW]);
    const pki = makeTestPki(dir, { names: ['gateway'] });
    caFile = pki.caFile;
    const { certFile, keyFile } = pki.files('gateway');
    const started = await startGateway(closer, distributor, {
      https: { certFile, keyFile },
      headersTimeoutMs: 500,
    });
    await waitForRoute(started.gateway, 'GET /goods', 1);
    port = started.port;
  });
  afterAll(async () => {
    await closer.closeAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers a plain HTTP request 400 in plain HTTP, saying to use https, and closes', async () => {
    const answer = await raw(port, 'GET /goods HTTP/1.1\r\nHost: localhost\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(answer).toMatch(/\r\nConnection: close\r\n/);
    expect(rawBody(answer)).toBe(
      '{"key":null,"errorcode":1,"errormessage":"This port speaks HTTPS: use https://"}',
    );
    // A request line sent one byte at a time is told too: one byte is enough to know.
    const byOneLetter = sendAndHold(port, Buffer.from('G'));
    await vi.waitFor(() => expect(byOneLetter.closed()).toBe(true), { timeout: 5_000, interval: 20 });
    expect(byOneLetter.answer()).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
  });

  it('still serves HTTPS on the same port, before and after plain HTTP', async () => {
    expect((await httpsGet(`https://127.0.0.1:${port}/goods`, caFile)).status).toBe(200);
    await raw(port, 'GET /goods HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const answer = await httpsGet(`https://127.0.0.1:${port}/goods`, caFile);
    expect(answer.status).toBe(200);
    expect(answer.body).toContain('"name":"test Goods"');
  });

  it('closes a client that sends the first byte of a TLS record and no more, after the handshake timeout', async () => {
    const stalled = sendAndHold(port, Buffer.from([0x16]));
    await vi.waitFor(() => expect(stalled.closed()).toBe(true), { timeout: 5_000, interval: 20 });
    expect(stalled.answer()).toBe('');
    // Nor does one that sends a byte and leaves, or sends nothing, harm the gateway.
    for (const bytes of [Buffer.from('G'), Buffer.from([0x16]), Buffer.alloc(0)]) {
      const socket = connect(port, '127.0.0.1', () => socket.end(bytes));
      socket.on('error', () => {});
    }
    expect((await httpsGet(`https://127.0.0.1:${port}/goods`, caFile)).status).toBe(200);
  });
});

describe('gateway over HTTPS, stopping', () => {
  const closer = new Closer();
  const dir = mkdtempSync(join(tmpdir(), 'gateway-plain-http-stop-'));
  const pki = makeTestPki(dir, { names: ['gateway'] });
  afterAll(async () => {
    await closer.closeAll();
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Holds a connection that sent `bytes` to a gateway whose headers (and so its first byte and its
   * TLS handshake) may take far longer than a test, stops the gateway, and expects the stop to
   * close the connection.
   */
  async function expectStopCloses(bytes: Buffer, stopGraceMs?: number): Promise<void> {
    const distributor = (await startDistributor(closer)).address;
    const started = await startGateway(closer, distributor, {
      https: { certFile: pki.files('gateway').certFile, keyFile: pki.files('gateway').keyFile },
      headersTimeoutMs: 600_000,
      ...(stopGraceMs === undefined ? {} : { stopGraceMs }),
    });
    const held = sendAndHold(started.port, bytes);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(held.closed()).toBe(false);
    await started.gateway.stop();
    await vi.waitFor(() => expect(held.closed()).toBe(true), { timeout: 5_000, interval: 20 });
  }

  it('closes a connection that has sent nothing yet at once, rather than wait for its first byte', async () => {
    await expectStopCloses(Buffer.alloc(0));
  }, 30_000);

  it('closes a connection still in its TLS handshake when the grace runs out, rather than wait for its timeout', async () => {
    // The start of a TLS record, and no more: handed to TLS, which waits for the rest.
    await expectStopCloses(Buffer.from([0x16, 0x03, 0x01]), 300);
  }, 30_000);
});
