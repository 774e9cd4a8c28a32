import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { channelCredentials, secureNamingChannelOptions, type TlsFilePaths } from '../../src/common/tls.js';
import { createGateway } from '../../src/gateway/gateway-server.js';
import { NodeState } from '../../src/gen/distributor.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import {
  UNTRUSTED_DISTRIBUTOR,
  UNTRUSTED_MOVE_TIMEOUT_MS,
} from '../../src/registry-client/untrusted-distributor.js';
import { capturingLogger, type LogLine, reloaded } from '../distributor/support/capturing-logger.js';
import { useDistributorHarness } from '../distributor/support/distributor-harness.js';
import { listed, removalsFrom } from '../distributor/support/listing.js';
import { copyIn, installCertificate, replaceFile, runFolder, useTestPki } from '../helpers/certs.js';
import { goodsNode } from '../helpers/nodes.js';
import { startTlsGoods } from '../helpers/tls-goods.js';

// A CA removed from a component's CA file (because it leaked) ends its registration on a connection
// to a distributor whose certificate chains to that CA: TLS checks the server's CA at the handshake
// alone, so without this the component stayed registered with it over that connection for good.
// "old" here is the PKI's other CA (foreignFiles); the CA kept is its first.

const { cleanups, startDistributor } = useDistributorHarness();

const testPki = useTestPki('distributor-ca-removal-', { names: ['distributor', 'goods', 'gateway'] });

/** How often every side here reads its TLS files again. */
const REFRESH_MS = 50;
const WAIT = { timeout: 5_000, interval: 20 };

/** A distributor whose certificate, installed in `dir` (replaceable), is `certificate`'s; trusting both CAs. */
async function distributorWith(dir: string, certificate: Required<TlsFilePaths>) {
  const { log, lines } = capturingLogger();
  const own = installCertificate(certificate, dir, 'distributor');
  const { distributor, address } = await startDistributor({
    tls: { ...own, caFile: testPki.pki.bothCasFile },
    tlsRefreshIntervalMs: REFRESH_MS,
    requireCertificateIdentity: true,
    log,
  });
  return { distributor, address, lines, own };
}

/** The goods service, registered with the distributor at `address`, its CA file `caFile`. */
async function goodsWith(address: string, dir: string, caFile: string) {
  const { log, lines, warnings } = capturingLogger();
  const goods = await startTlsGoods({
    distributor: address,
    tls: { ...testPki.pki.files('goods'), caFile },
    dir,
    log,
    cleanups,
    tlsRefreshIntervalMs: REFRESH_MS,
  });
  return { goods, lines, warnings };
}

/**
 * A registration of goods over mTLS trusting both CAs, whose CA file never changes here: the test
 * tells it the CAs taken (stopUsingUntrusted) itself, at the moment it chooses.
 */
function registration(address: string) {
  const files = { ...testPki.pki.files('goods'), caFile: testPki.pki.bothCasFile };
  const { log, lines, warnings } = capturingLogger();
  const client = new RegistrationClient({
    distributor: address,
    node: { ...goodsNode(), descriptorSet: Buffer.alloc(0), state: NodeState.NODE_STATE_SERVING },
    credentials: channelCredentials(files, { expectedName: 'distributor' }),
    channelOptions: secureNamingChannelOptions(files, 'distributor'),
    backoff: { initialMs: 50, maxMs: 200 },
    log,
  });
  let registrations = 0;
  client.on('registered', () => registrations++);
  client.start();
  cleanups.push(() => client.stop(100));
  return { client, lines, warnings, registrations: () => registrations };
}

/**
 * A proxy to `port` that passes its first connection through and holds every later one, reading
 * nothing: a move's connection whose handshake never ends. Its address.
 */
async function firstConnectionOnly(port: number): Promise<string> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((client) => {
    sockets.add(client);
    client.on('error', () => {});
    if (accepted++ > 0) return;
    const upstream = connect(port, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  const bound = server.address();
  if (bound === null || typeof bound === 'string') throw new Error('the proxy has no port');
  return `127.0.0.1:${bound.port}`;
}

/** The CAs of the file of the CA kept alone, as a component takes them once "old" is removed. */
const keptCaOnly = (): X509Certificate[] => [new X509Certificate(readFileSync(testPki.pki.caFile))];

const events = (lines: LogLine[], event: string): LogLine[] => lines.filter((line) => line.event === event);

describe("a CA removed from a component's CA file", () => {
  it('ends its registration with a distributor whose certificate is of that CA, which it does not make again while the distributor keeps it', async () => {
    const { pki } = testPki;
    const dir = runFolder(testPki.pki);
    const { distributor, address } = await distributorWith(dir, pki.foreignFiles('distributor'));
    const caFile = copyIn(dir, pki.bothCasFile, 'ca.crt');
    const goods = await goodsWith(address, dir, caFile);
    await vi.waitFor(() => expect(listed(distributor)).toEqual(['goods']), WAIT);

    // "old" leaked: the operator removes it from the service's CA file.
    replaceFile(pki.caFile, caFile);

    await vi.waitFor(
      () => expect(events(goods.warnings(), 'untrusted-after-ca-change')).toHaveLength(1),
      WAIT,
    );
    expect(events(goods.warnings(), 'untrusted-after-ca-change')[0]).toMatchObject({ distributor: address });
    expect(JSON.stringify(goods.lines)).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
    await vi.waitFor(() => expect(listed(distributor)).toEqual([]), WAIT);
    // It goes on trying, and its new connections' handshakes refuse the distributor of "old".
    await vi.waitFor(
      () => expect(events(goods.lines, 'disconnected').length).toBeGreaterThanOrEqual(3),
      WAIT,
    );
    expect(events(goods.lines, 'registered')).toHaveLength(1);
    expect(listed(distributor)).toEqual([]);
  });

  it('moves the registration of a gateway whose distributor was renewed by the CA kept, which never leaves the list', async () => {
    const { pki } = testPki;
    const dir = runFolder(testPki.pki);
    const { distributor, address, lines, own } = await distributorWith(dir, pki.foreignFiles('distributor'));
    const removed = removalsFrom(distributor, cleanups);
    const caFile = copyIn(dir, pki.bothCasFile, 'ca.crt');
    const gatewayLog = capturingLogger();
    const gateway = createGateway({
      distributor: address,
      tls: { ...pki.files('gateway'), caFile },
      log: gatewayLog.log,
      tlsRefreshIntervalMs: REFRESH_MS,
    });
    cleanups.push(() => gateway.stop());
    await gateway.listen('127.0.0.1', 0);
    await vi.waitFor(() => expect(listed(distributor)).toEqual(['gateway']), WAIT);

    // The distributor renewed by the CA kept; the gateway's connection keeps the certificate of before.
    installCertificate(pki.files('distributor'), dir, 'distributor');
    await reloaded(lines, own.certFile, 1);
    replaceFile(pki.caFile, caFile);

    await vi.waitFor(() => expect(events(gatewayLog.lines, 'registration-moved')).toHaveLength(1), WAIT);
    expect(removed).toEqual([]);
    expect(listed(distributor)).toEqual(['gateway']);
    expect(gatewayLog.warnings()).toEqual([]);
    expect(events(gatewayLog.lines, 'registered')).toHaveLength(1);
  });

  it('moves once for a renewal and a CA removed taken together, told in the order the files are read', async () => {
    const { pki } = testPki;
    const dir = runFolder(testPki.pki);
    const { distributor, address, lines, own } = await distributorWith(dir, pki.foreignFiles('distributor'));
    const removed = removalsFrom(distributor, cleanups);
    const goods = registration(address);
    await vi.waitFor(() => expect(goods.client.nodeId).toBeDefined(), WAIT);
    installCertificate(pki.files('distributor'), dir, 'distributor');
    await reloaded(lines, own.certFile, 1);

    // One read took both (tls-files.ts tells the renewal first): the CA check finds the renewal's
    // move under way, trusted, and leaves it to hold; it used to start a second move after it.
    goods.client.renewConnection();
    goods.client.stopUsingUntrusted(keptCaOnly());

    await vi.waitFor(() => expect(events(goods.lines, 'registration-moved')).toHaveLength(1), WAIT);
    await new Promise((resolve) => setTimeout(resolve, 20 * REFRESH_MS));
    expect(events(goods.lines, 'registration-moved')).toHaveLength(1);
    expect(events(lines, 'rejoin')).toHaveLength(1);
    expect(goods.warnings()).toEqual([]);
    expect(removed).toEqual([]);
    expect(goods.registrations()).toBe(1);
  });

  it('changes nothing when a CA was only added', async () => {
    const { pki } = testPki;
    const dir = runFolder(testPki.pki);
    const { distributor, address } = await distributorWith(dir, pki.files('distributor'));
    const removed = removalsFrom(distributor, cleanups);
    const caFile = copyIn(dir, pki.caFile, 'ca.crt');
    const goods = await goodsWith(address, dir, caFile);
    await vi.waitFor(() => expect(listed(distributor)).toEqual(['goods']), WAIT);

    replaceFile(pki.bothCasFile, caFile);
    await reloaded(goods.lines, caFile, 1);
    // Nothing to wait for: a few more reads of the files, in which a wrong move or cut would show.
    await new Promise((resolve) => setTimeout(resolve, 10 * REFRESH_MS));
    expect(goods.warnings()).toEqual([]);
    expect(events(goods.lines, 'registration-moved')).toEqual([]);
    expect(removed).toEqual([]);
    expect(events(goods.lines, 'registered')).toHaveLength(1);
  });

  it("refuses the connection of a renewal's move under way, made with the CAs of before: the registration ends", async () => {
    const { pki } = testPki;
    const dir = runFolder(testPki.pki);
    const { distributor, address } = await distributorWith(dir, pki.foreignFiles('distributor'));
    const goods = registration(address);
    await vi.waitFor(() => expect(goods.client.nodeId).toBeDefined(), WAIT);

    // A renewal's move goes out; the CA file changes before its handshake ends, which trusts "old".
    goods.client.renewConnection();
    goods.client.stopUsingUntrusted(keptCaOnly());

    await vi.waitFor(
      () => expect(events(goods.warnings(), 'untrusted-after-ca-change')).toHaveLength(1),
      WAIT,
    );
    expect(events(goods.warnings(), 'untrusted-after-ca-change')[0]?.moveFailure).toContain(
      UNTRUSTED_DISTRIBUTOR,
    );
    expect(events(goods.lines, 'registration-moved')).toEqual([]);
    await vi.waitFor(() => expect(listed(distributor)).toEqual([]), WAIT);
    // Its later attempts are refused at their handshakes' end alike (this CA file still trusts "old").
    await vi.waitFor(
      () => expect(events(goods.lines, 'disconnected').length).toBeGreaterThanOrEqual(2),
      WAIT,
    );
    expect(goods.registrations()).toBe(1);
    expect(listed(distributor)).toEqual([]);
  });

  it('says nothing and tries nothing more once stopped while its move is under way', async () => {
    const { pki } = testPki;
    const dir = runFolder(testPki.pki);
    const { distributor, address } = await distributorWith(dir, pki.foreignFiles('distributor'));
    const removed = removalsFrom(distributor, cleanups);
    const goods = registration(address);
    await vi.waitFor(() => expect(goods.client.nodeId).toBeDefined(), WAIT);

    goods.client.stopUsingUntrusted(keptCaOnly());
    await goods.client.stop(500);

    // It left as a stop leaves: once, said by the distributor, with nothing of the move.
    await vi.waitFor(() => expect(removed).toHaveLength(1), WAIT);
    const logged = goods.lines.length;
    await new Promise((resolve) => setTimeout(resolve, 2 * 1_000));
    expect(goods.lines).toHaveLength(logged);
    expect(goods.warnings()).toEqual([]);
    expect(goods.registrations()).toBe(1);
    expect(listed(distributor)).toEqual([]);
  });

  it('ends the registration when its move has not held within the bound', async () => {
    const { pki } = testPki;
    const dir = runFolder(testPki.pki);
    const { distributor, address } = await distributorWith(dir, pki.foreignFiles('distributor'));
    const port = Number(address.split(':').at(-1));
    const goods = registration(await firstConnectionOnly(port));
    // Acknowledged: a registration not yet is ended at once, with no move.
    await vi.waitFor(() => expect(goods.client.nodeId).toBeDefined(), WAIT);

    const told = performance.now();
    goods.client.stopUsingUntrusted(keptCaOnly());

    await vi.waitFor(
      () => expect(events(goods.warnings(), 'untrusted-after-ca-change')).toHaveLength(1),
      WAIT,
    );
    expect(performance.now() - told).toBeGreaterThanOrEqual(UNTRUSTED_MOVE_TIMEOUT_MS - 50);
    expect(events(goods.warnings(), 'untrusted-after-ca-change')[0]?.moveFailure).toMatch(/within 1000 ms/);
    await vi.waitFor(() => expect(listed(distributor)).toEqual([]), WAIT);
  });
});
