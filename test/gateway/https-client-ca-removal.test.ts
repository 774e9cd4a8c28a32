import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { type ConnectionOptions, connect, type TLSSocket } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { TlsFilePaths } from '../../src/common/tls.js';
import { replaceFile, useTestPki } from '../helpers/certs.js';
import { heldHandshake } from '../helpers/held-handshake.js';
import { captureLog, type LogLine } from '../helpers/log-capture.js';
import { Closer, startDistributor, startGateway, waitForRoute } from './support/cluster.js';
import { startFakeGoods } from './support/fake-shop.js';

// A CA removed from the gateway's client-CA file (--https-client-ca) closes the HTTPS connections
// made with certificates of that CA, and only those: TLS checks a client's CA at the handshake
// alone, so a client of a leaked CA was served on its keep-alive connection until it left.

/** How often the gateway reads its HTTPS files again here. */
const REFRESH_MS = 50;
const WAIT = { timeout: 5_000, interval: 10 };

// "kept": the CA the shop keeps; "old": the other one, added and then removed (it leaked).
const testPki = useTestPki('gateway-client-ca-removal-', { names: ['gateway', 'client'] });

describe("a CA removed from the gateway's client-CA file", () => {
  const closer = new Closer();
  let distributor: string;
  /** Answers of GET /goods wait for this while set. */
  let held: Promise<void> | undefined;
  let callsSeen = 0;

  beforeAll(async () => {
    distributor = (await startDistributor(closer)).address;
    await startFakeGoods(closer, distributor, {
      onCall: () => {
        callsSeen++;
        return held;
      },
    });
    return () => closer.closeAll();
  });
  const gatewayClosers: Closer[] = [];
  afterEach(async () => {
    for (const each of gatewayClosers.splice(0)) await each.closeAll();
  });

  /** A gateway over HTTPS whose client-CA file is a copy of `initialCas`, which the test rewrites. */
  async function gatewayTrusting(initialCas: string) {
    const { pki } = testPki;
    const dir = mkdtempSync(join(pki.dir, 'run-'));
    const caFile = join(dir, 'client-ca.crt');
    copyFileSync(initialCas, caFile);
    const captured = captureLog('gateway');
    const own = new Closer();
    gatewayClosers.push(own);
    const { gateway, port } = await startGateway(own, distributor, {
      https: { ...pki.files('gateway'), caFile },
      httpsRefreshIntervalMs: REFRESH_MS,
      log: captured.log,
    });
    await waitForRoute(gateway, 'GET /goods', 1);
    /** Waits for the gateway to have taken the client-CA file `count` times since its start. */
    const reloaded = (count: number) =>
      vi.waitFor(
        () =>
          expect(
            captured.lines.filter((line) => line.event === 'tls-reloaded' && line.file === caFile),
          ).toHaveLength(count),
        WAIT,
      );
    return { port, caFile, lines: captured.lines, reloaded };
  }

  it('closes the keep-alive connections of its certificates, and refuses them a new one; those of the CA kept go on, on the same connection', async () => {
    const { pki } = testPki;
    const gateway = await gatewayTrusting(pki.caFile);
    const kept = keepAliveClient(gateway.port, pki.files('client'));
    const first = await kept.get('/goods');
    expect(first).toMatchObject({ status: 200, reused: false });

    // The other CA added: a CA only added closes nothing.
    replaceFile(pki.bothCasFile, gateway.caFile);
    await gateway.reloaded(1);
    const old = keepAliveClient(gateway.port, pki.foreignFiles('client'));
    const oldFirst = await old.get('/goods');
    expect(oldFirst).toMatchObject({ status: 200, reused: false });
    const oldSession = await old.session();
    const oldTls = { port: gateway.port, ...tlsOptions(pki.foreignFiles('client')) };
    // Its session resumes while its CA is trusted: the refusal below is the change's doing.
    expect(await getOnce({ ...oldTls, session: oldSession })).toMatchObject({ status: '200', reused: true });
    const afterAdding = await kept.get('/goods');
    expect(afterAdding).toMatchObject({ status: 200, reused: true });
    expect(afterAdding.socket).toBe(first.socket);

    // The other CA leaked: removed.
    replaceFile(pki.caFile, gateway.caFile);
    await gateway.reloaded(2);
    await vi.waitFor(() => expect(oldFirst.socket.destroyed).toBe(true), {
      ...WAIT,
      timeout: 20 * REFRESH_MS,
    });

    // Its client's next request goes on a new connection, which the new file refuses as the gate
    // refuses any certificate of another CA.
    const refused = await old.get('/goods');
    expect(refused).toMatchObject({ status: 403, reused: false });
    expect(refused.socket).not.toBe(oldFirst.socket);
    expect(refused.body).toContain('requires a client certificate issued by its client CA');
    // A TLS session of before does not resume: a full handshake, refused.
    const resumed = await getOnce({ ...oldTls, session: oldSession });
    expect(resumed).toMatchObject({ status: '403', reused: false });

    // The client of the CA kept: the same connection, served.
    const afterRemoval = await kept.get('/goods');
    expect(afterRemoval).toMatchObject({ status: 200, reused: true });
    expect(afterRemoval.socket).toBe(first.socket);
    expect(first.socket.destroyed).toBe(false);

    // One warning, for the connection closed, naming its client's address: no certificate, no key.
    expect(cut(gateway.lines)).toEqual([
      expect.objectContaining({
        level: 40,
        peer: '127.0.0.1',
        port: oldFirst.localPort,
        requestsInFlight: 0,
      }),
    ]);
    expect(JSON.stringify(gateway.lines)).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
    kept.close();
    old.close();
  });

  it('lets the request in flight on a connection it closes be answered, with Connection: close, then closes it', async () => {
    const { pki } = testPki;
    const gateway = await gatewayTrusting(pki.bothCasFile);
    const old = keepAliveClient(gateway.port, pki.foreignFiles('client'));
    const before = await old.get('/goods');
    expect(before.status).toBe(200);

    let release: () => void = () => {};
    held = new Promise((resolve) => {
      release = resolve;
    });
    const calls = callsSeen;
    const inFlight = old.get('/goods');
    await vi.waitFor(() => expect(callsSeen).toBe(calls + 1), WAIT);
    replaceFile(pki.caFile, gateway.caFile);
    await vi.waitFor(() => expect(cut(gateway.lines)).toHaveLength(1), WAIT);
    expect(cut(gateway.lines)[0]).toMatchObject({ requestsInFlight: 1 });
    // Still open: its answer is on its way.
    expect(before.socket.destroyed).toBe(false);
    held = undefined;
    release();

    const answered = await inFlight;
    expect(answered).toMatchObject({ status: 200, reused: true, connection: 'close' });
    expect(answered.socket).toBe(before.socket);
    await vi.waitFor(() => expect(before.socket.destroyed).toBe(true), WAIT);
    expect(await old.get('/goods')).toMatchObject({ status: 403, reused: false });
    old.close();
  });

  it('closes a connection whose handshake, begun before the change, ends after it', async () => {
    const { pki } = testPki;
    const gateway = await gatewayTrusting(pki.bothCasFile);
    // The client's second flight (its certificate) held back: the gateway's TLS socket was made
    // with the CAs of before, and checks the certificate against them once it comes.
    const late = heldHandshake(gateway.port, tlsOptions(pki.foreignFiles('client')));
    await late.clientDone;
    replaceFile(pki.caFile, gateway.caFile);
    await gateway.reloaded(1);
    late.release();
    late.socket.write('GET /goods HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    expect(await late.answer).toBe('');
    expect(cut(gateway.lines)).toEqual([expect.objectContaining({ peer: '127.0.0.1', requestsInFlight: 0 })]);
  });
});

const cut = (lines: LogLine[]): LogLine[] =>
  lines.filter((line) => line.event === 'untrusted-after-ca-change');

/** What a TLS client of the gateway needs, from a certificate's files. */
function tlsOptions(files: Required<TlsFilePaths>) {
  return {
    ca: readFileSync(testPki.pki.caFile),
    cert: readFileSync(files.certFile),
    key: readFileSync(files.keyFile),
    servername: 'localhost',
  };
}

/** A REST client holding one keep-alive connection to the gateway at a time (node:https's Agent). */
function keepAliveClient(port: number, files: Required<TlsFilePaths>) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ...tlsOptions(files) });
  let lastSession: Buffer | undefined;
  const watched = new WeakSet<TLSSocket>();
  const get = (
    path: string,
  ): Promise<{
    status: number;
    body: string;
    socket: TLSSocket;
    localPort: number | undefined;
    reused: boolean;
    connection: string | undefined;
  }> =>
    new Promise((resolve, reject) => {
      const outgoing = httpsRequest({ host: '127.0.0.1', port, path, agent }, (response) => {
        const socket = outgoing.socket as TLSSocket;
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          body += chunk;
        });
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            body,
            socket,
            localPort: socket.localPort,
            reused: outgoing.reusedSocket,
            connection: response.headers.connection,
          }),
        );
      });
      // Its tickets come once its handshake is done, before any answer.
      outgoing.once('socket', (socket: TLSSocket) => {
        if (watched.has(socket)) return;
        watched.add(socket);
        socket.on('session', (session: Buffer) => {
          lastSession = session;
        });
      });
      outgoing.on('error', reject);
      outgoing.end();
    });
  return {
    get,
    /** The latest TLS session ticket its connection got (TLS 1.3 sends them after the handshake). */
    session: async (): Promise<Buffer> => {
      await vi.waitFor(() => expect(lastSession).toBeDefined(), WAIT);
      return lastSession!;
    },
    close: () => agent.destroy(),
  };
}

/** One GET over its own TLS connection: its status, and whether the session was resumed. */
function getOnce(options: ConnectionOptions): Promise<{ status: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    let reused = false;
    let text = '';
    const socket = connect({ host: '127.0.0.1', ...options }, () => {
      reused = socket.isSessionReused();
      socket.write('GET /goods HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
    });
    socket.on('error', reject);
    socket.on('close', () => resolve({ status: text.split(' ')[1] ?? '', reused }));
  });
}
