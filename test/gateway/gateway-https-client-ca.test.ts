import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ConnectionOptions, connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { httpsGet } from '../helpers/http.js';
import { Closer, startDistributor, startGateway, waitForRoute } from './support/cluster.js';
import { type FakeGoods, startFakeGoods } from './support/fake-shop.js';

/** REST clients of a gateway that requires client certificates (--https-client-ca). */
describe('gateway over HTTPS with a client CA', () => {
  const closer = new Closer();
  const dir = mkdtempSync(join(tmpdir(), 'gateway-client-ca-'));
  let pki: TestPki;
  let goods: FakeGoods;
  let url: string;
  let port: number;

  beforeAll(async () => {
    const distributor = (await startDistributor(closer)).address;
    goods = await startFakeGoods(closer, distributor);
    pki = makeTestPki(dir, { names: ['gateway', 'operator'] });
    const { certFile, keyFile } = pki.files('gateway');
    const started = await startGateway(closer, distributor, {
      https: { certFile, keyFile, caFile: pki.caFile },
    });
    await waitForRoute(started.gateway, 'GET /goods', 1);
    port = started.port;
    url = `https://127.0.0.1:${port}/goods`;
  });
  afterAll(async () => {
    await closer.closeAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('tells a client without a certificate, or with one of another CA, why it is refused, and routes neither', async () => {
    // TLS alone refused them in its handshake: a bare alert for the first, a reset for the second.
    expect(await httpsGet(url, pki.caFile)).toEqual({
      status: 403,
      body: '{"key":null,"errorcode":1,"errormessage":"This port requires a client certificate issued by its client CA: none was sent"}',
    });
    expect(await httpsGet(url, pki.caFile, pki.foreignFiles('operator'))).toEqual({
      status: 403,
      body: '{"key":null,"errorcode":1,"errormessage":"This port requires a client certificate issued by its client CA: the one sent was refused (UNABLE_TO_VERIFY_LEAF_SIGNATURE)"}',
    });
    expect(goods.calls).toEqual({});
  });

  it('refuses a client that resumes the TLS session of its refused connection, with no certificate', async () => {
    // node:tls says authorized a TLS 1.3 session resumed with no peer certificate (as PSK).
    // The same servername both times: OpenSSL 3.5 (Node 24, 26) resumes a session only for the name
    // it was made for, and without it the second connection was a full handshake, tested nothing.
    const ca = readFileSync(pki.caFile);
    const refused = await getWithSession({ host: '127.0.0.1', port, servername: 'localhost', ca }, '/goods');
    expect(refused).toMatchObject({ status: '403', reused: false });
    const resumed = await getWithSession(
      { host: '127.0.0.1', port, servername: 'localhost', ca, session: refused.session },
      '/goods',
    );
    expect(resumed).toMatchObject({ status: '403', reused: true });
    expect(goods.calls).toEqual({});
  });

  it('serves a client with a certificate the client CA issued', async () => {
    const answer = await httpsGet(url, pki.caFile, pki.files('operator'));
    expect(answer).toEqual({ status: 200, body: '{"key":0,"errorcode":1,"errormessage":"no data"}' });
  });

  it('serves a client that resumes the TLS session of a certificate the client CA issued', async () => {
    const { certFile, keyFile } = pki.files('operator');
    const own = { host: '127.0.0.1', port, ca: readFileSync(pki.caFile), servername: 'localhost' };
    const served = await getWithSession(
      { ...own, cert: readFileSync(certFile), key: readFileSync(keyFile) },
      '/goods',
    );
    expect(served).toMatchObject({ status: '200', reused: false });
    const resumed = await getWithSession({ ...own, session: served.session }, '/goods');
    expect(resumed).toMatchObject({ status: '200', reused: true });
  });
});

describe('gateway over HTTPS with a client CA and a connection limit', () => {
  const closer = new Closer();
  const dir = mkdtempSync(join(tmpdir(), 'gateway-client-ca-limit-'));
  let pki: TestPki;
  let port: number;

  beforeAll(async () => {
    const distributor = (await startDistributor(closer)).address;
    pki = makeTestPki(dir, { names: ['gateway', 'operator'] });
    const { certFile, keyFile } = pki.files('gateway');
    // 9 served connections, and 1 kept for refusals.
    port = (
      await startGateway(closer, distributor, {
        maxConnections: 10,
        https: { certFile, keyFile, caFile: pki.caFile },
      })
    ).port;
  });
  afterAll(async () => {
    await closer.closeAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lets no client refused for its certificate close an idle connection of an authorized one', async () => {
    const { certFile, keyFile } = pki.files('operator');
    const ca = readFileSync(pki.caFile);
    const keptAlive = await openTls({ port, ca, cert: readFileSync(certFile), key: readFileSync(keyFile) });
    let closed = false;
    keptAlive.on('close', () => {
      closed = true;
    });
    keptAlive.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await new Promise((resolve) => keptAlive.once('data', resolve));
    // Counted as served connections with no request, the ninth of them closed the idlest.
    const refused: TLSSocket[] = [];
    for (let opened = 0; opened < 9; opened++) refused.push(await openTls({ port, ca }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(closed).toBe(false);
    keptAlive.destroy();
    for (const socket of refused) socket.destroy();
  });
});

/** A TLS connection to the gateway, once its handshake is done. */
function openTls(options: ConnectionOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', servername: 'localhost', ...options }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** One GET over its own TLS connection: the status, whether the session was resumed, the session to resume. */
function getWithSession(
  options: ConnectionOptions,
  path: string,
): Promise<{ status: string; reused: boolean; session: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    let reused = false;
    let text = '';
    const socket = connect(options, () => {
      reused = socket.isSessionReused();
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    });
    // TLS 1.3 tickets arrive after the handshake: the last one is the one to resume.
    socket.on('session', (ticket: Buffer) => {
      session = ticket;
    });
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
    });
    socket.on('error', reject);
    socket.on('close', () => resolve({ status: text.split(' ')[1] ?? '', reused, session }));
  });
}
