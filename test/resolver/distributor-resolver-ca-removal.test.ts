import { connect, createServer, type Socket } from 'node:net';
import { credentials } from '@grpc/grpc-js';
import { describe, expect, it, vi } from 'vitest';
import type { TlsFilePaths } from '../../src/common/tls.js';
import type { ReloadNotice } from '../../src/common/tls-files.js';
import { NodeState } from '../../src/gen/distributor.js';
import { GoodsServiceClient } from '../../src/gen/services.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { UNTRUSTED_MOVE_TIMEOUT_MS } from '../../src/registry-client/untrusted-distributor.js';
// What a program that installs grpc-shop/resolver has: the package's one entry.
import {
  channelCredentials,
  type DistributorResolverRegistration,
  registerDistributorResolver,
  secureNamingChannelOptions,
} from '../../src/resolver/index.js';
import { capturingLogger, type LogLine, reloaded } from '../distributor/support/capturing-logger.js';
import { useDistributorHarness } from '../distributor/support/distributor-harness.js';
import { copyIn, installCertificate, replaceFile, runFolder, useTestPki } from '../helpers/certs.js';
import { goodsNode } from '../helpers/nodes.js';

// A CA removed from the CA file behind a distributor:/// resolver's credentials (because it leaked)
// ends its Watch on a connection to a distributor whose certificate chains to that CA, as it ends a
// component's registration: TLS checks the server's CA at the handshake alone, so without this the
// resolver went on taking that distributor's list over that connection for good. "old" here is the
// PKI's other CA (foreignFiles); the CA kept is its first.

const { cleanups, startDistributor } = useDistributorHarness();

const testPki = useTestPki('resolver-ca-removal-', { names: ['distributor', 'goods', 'operator'] });

/** How often every side here reads its TLS files again. */
const REFRESH_MS = 50;
const WAIT = { timeout: 5_000, interval: 20 };

/** One connection through a {@link countingProxy}: when it opened and closed (performance.now()). */
interface ProxiedConnection {
  readonly openedAt: number;
  closedAt: number | undefined;
}

/**
 * A TCP proxy to `port` that keeps a record of every connection it passes. `hold.until`, while
 * set: a connection opened meanwhile is passed on once it settles (its handshake held until then).
 */
async function countingProxy(port: number) {
  const connections: ProxiedConnection[] = [];
  const sockets = new Set<Socket>();
  const hold: { until: Promise<void> | undefined } = { until: undefined };
  const server = createServer((client) => {
    const record: ProxiedConnection = { openedAt: performance.now(), closedAt: undefined };
    connections.push(record);
    client.pause();
    const upstream = connect(port, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
    }
    client.on('close', () => {
      record.closedAt ??= performance.now();
      upstream.destroy();
    });
    upstream.on('close', () => client.destroy());
    const pass = () => client.pipe(upstream).pipe(client);
    if (hold.until) void hold.until.then(pass);
    else pass();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  const bound = server.address();
  if (bound === null || typeof bound === 'string') throw new Error('the proxy has no port');
  return { address: `127.0.0.1:${bound.port}`, connections, hold };
}

/**
 * A distributor requiring mTLS, its certificate `certificate`'s installed in `dir` (replaceable),
 * trusting both CAs: `direct`, and `address` through a counting proxy, which the resolver alone dials.
 */
async function distributorWith(dir: string, certificate: Required<TlsFilePaths>) {
  const { log, lines } = capturingLogger();
  const own = installCertificate(certificate, dir, 'distributor');
  const {
    distributor,
    address: direct,
    port,
  } = await startDistributor({
    tls: { ...own, caFile: testPki.pki.bothCasFile },
    tlsRefreshIntervalMs: REFRESH_MS,
    requireCertificateIdentity: true,
    log,
  });
  const proxy = await countingProxy(port);
  return {
    distributor,
    direct,
    address: proxy.address,
    connections: proxy.connections,
    hold: proxy.hold,
    lines,
    own,
  };
}

/** Registers a goods instance at `port` (its certificate of the CA kept, trusting both CAs; never changed). */
async function register(address: string, port: number): Promise<void> {
  const files = { ...testPki.pki.files('goods'), caFile: testPki.pki.bothCasFile };
  const client = new RegistrationClient({
    distributor: address,
    node: { ...goodsNode({ port }), descriptorSet: Buffer.alloc(0), state: NodeState.NODE_STATE_SERVING },
    credentials: channelCredentials(files, { expectedName: 'distributor' }),
    channelOptions: secureNamingChannelOptions(files, 'distributor'),
    backoff: { initialMs: 50, maxMs: 200 },
  });
  client.start();
  cleanups.push(() => client.stop(100));
  await new Promise((resolve) => client.once('registered', resolve));
}

/**
 * The resolver as a program registers it, with channelCredentials of `files` (the CA file `caFile`,
 * read every REFRESH_MS), and a channel that uses it (else its Watch ends a second later). Each
 * CA file taken is kept in `caTaken`, through the program's own onCaTaken: it is still told.
 */
function resolverWith(address: string, files: Required<TlsFilePaths>) {
  const { log, lines, warnings } = capturingLogger();
  const reloads: ReloadNotice[] = [];
  const caTaken: number[] = [];
  const resolver = registerDistributorResolver({
    distributor: address,
    credentials: channelCredentials(files, {
      expectedName: 'distributor',
      refreshIntervalMs: REFRESH_MS,
      onReload: (notice) => reloads.push(notice),
      onCaTaken: (authorities) => caTaken.push(authorities.length),
    }),
    channelOptions: secureNamingChannelOptions(files, 'distributor'),
    backoff: { initialMs: 50, maxMs: 200 },
    log,
  });
  cleanups.push(() => resolver.close());
  // The channel's calls would go to goods' instances: none is asked for here, only the resolution.
  const client = new GoodsServiceClient('distributor:///goods', credentials.createInsecure());
  cleanups.push(() => client.close());
  client.getChannel().getConnectivityState(true);
  /** Waits until the CA file has been taken `count` times. */
  const caReloaded = (count: number) =>
    vi.waitFor(() => expect(reloads.filter((notice) => notice.role === 'caFile')).toHaveLength(count), WAIT);
  return { resolver, lines, warnings, caTaken, caReloaded };
}

/** The ports of the goods instances the resolver resolves to now. */
const goodsPorts = (resolver: DistributorResolverRegistration): number[] =>
  (resolver.snapshot?.nodes ?? []).map((node) => node.port).sort();

const events = (lines: LogLine[], event: string): LogLine[] => lines.filter((line) => line.event === event);

describe("a CA removed from the CA file of a distributor:/// resolver's credentials", () => {
  it('ends its Watch on a distributor whose certificate is of that CA, and no new Watch gets through', async () => {
    const { pki } = testPki;
    const dir = runFolder(pki);
    const { direct, address, connections } = await distributorWith(dir, pki.foreignFiles('distributor'));
    await register(direct, 5001);
    const caFile = copyIn(dir, pki.bothCasFile, 'ca.crt');
    const { resolver, warnings, lines, caReloaded } = resolverWith(address, {
      ...pki.files('operator'),
      caFile,
    });
    await vi.waitFor(() => expect(goodsPorts(resolver)).toEqual([5001]), WAIT);
    const watchConnection = connections.at(-1)!;
    expect(watchConnection.closedAt).toBeUndefined();

    // "old" leaked: the operator removes it from the program's CA file.
    const changedAt = performance.now();
    replaceFile(pki.caFile, caFile);

    await vi.waitFor(() => expect(watchConnection.closedAt).toBeDefined(), WAIT);
    // A read of the file, then a new connection refused by its handshake (about 0.1 s alone), or
    // not answering within the move's second; a second more for a loaded suite.
    expect(watchConnection.closedAt! - changedAt).toBeLessThan(
      REFRESH_MS + UNTRUSTED_MOVE_TIMEOUT_MS + 1_000,
    );
    await caReloaded(1);
    await vi.waitFor(() => expect(events(warnings(), 'untrusted-after-ca-change')).toHaveLength(1), WAIT);
    expect(events(warnings(), 'untrusted-after-ca-change')[0]).toMatchObject({ distributor: address });
    expect(JSON.stringify(lines)).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);

    // It goes on trying; each new connection's handshake refuses the distributor of "old", so a
    // change of the list never reaches the resolver, which keeps the list it had.
    const cutAt = lines.length;
    await register(direct, 5002);
    await vi.waitFor(
      () => expect(events(lines.slice(cutAt), 'watch-disconnected').length).toBeGreaterThanOrEqual(3),
      WAIT,
    );
    expect(goodsPorts(resolver)).toEqual([5001]);
    for (const line of events(lines.slice(cutAt), 'watch-disconnected')) {
      expect(line.code).toBe('UNAVAILABLE');
    }
    expect(events(lines, 'watch-moved')).toEqual([]);
    expect(events(warnings(), 'untrusted-after-ca-change')).toHaveLength(1);
    // No connection made since the cut stays open: their handshakes fail.
    await vi.waitFor(
      () => expect(connections.filter((connection) => connection.closedAt === undefined)).toEqual([]),
      WAIT,
    );
  });

  it('moves its Watch to a new connection when the distributor was renewed by the CA kept, the list never emptied', async () => {
    const { pki } = testPki;
    const dir = runFolder(pki);
    const {
      direct,
      address,
      connections,
      lines: distributorLines,
      own,
    } = await distributorWith(dir, pki.foreignFiles('distributor'));
    await register(direct, 5001);
    const caFile = copyIn(dir, pki.bothCasFile, 'ca.crt');
    const { resolver, warnings, lines, caReloaded } = resolverWith(address, {
      ...pki.files('operator'),
      caFile,
    });
    await vi.waitFor(() => expect(goodsPorts(resolver)).toEqual([5001]), WAIT);
    const watchConnection = connections.at(-1)!;
    const opened = connections.length;

    // The distributor renewed by the CA kept; the resolver's connection keeps the certificate of before.
    installCertificate(pki.files('distributor'), dir, 'distributor');
    await reloaded(distributorLines, own.certFile, 1);
    let emptied = false;
    const sampler = setInterval(() => {
      if (goodsPorts(resolver).length === 0) emptied = true;
    }, 2);
    cleanups.push(() => clearInterval(sampler));
    replaceFile(pki.caFile, caFile);

    await vi.waitFor(() => expect(events(lines, 'watch-moved')).toHaveLength(1), WAIT);
    await caReloaded(1);
    await vi.waitFor(() => expect(watchConnection.closedAt).toBeDefined(), WAIT);
    // The Watch goes on over the new connection: a node that registers now reaches the resolver.
    await register(direct, 5002);
    await vi.waitFor(() => expect(goodsPorts(resolver)).toEqual([5001, 5002]), WAIT);
    clearInterval(sampler);
    expect(emptied).toBe(false);
    expect(warnings()).toEqual([]);
    expect(events(lines, 'watch-disconnected')).toEqual([]);
    const resolverConnections = connections.slice(opened);
    expect(resolverConnections.filter((connection) => connection.closedAt === undefined)).not.toEqual([]);
  });

  it('moves its Watch without a resync when the list changed while the new connection was being made', async () => {
    const { pki } = testPki;
    const dir = runFolder(pki);
    const {
      direct,
      address,
      connections,
      hold,
      lines: distributorLines,
      own,
    } = await distributorWith(dir, pki.foreignFiles('distributor'));
    await register(direct, 5001);
    const caFile = copyIn(dir, pki.bothCasFile, 'ca.crt');
    const { resolver, warnings, lines } = resolverWith(address, { ...pki.files('operator'), caFile });
    await vi.waitFor(() => expect(goodsPorts(resolver)).toEqual([5001]), WAIT);
    const opened = connections.length;

    installCertificate(pki.files('distributor'), dir, 'distributor');
    await reloaded(distributorLines, own.certFile, 1);
    // The move's connection is held (within the move's second) while a node registers, which the
    // Watch still on the old connection tells the resolver of.
    let release = () => {};
    hold.until = new Promise((resolve) => {
      release = resolve;
    });
    cleanups.push(release);
    replaceFile(pki.caFile, caFile);
    await vi.waitFor(() => expect(connections.length).toBeGreaterThan(opened), WAIT);
    await register(direct, 5002);
    await vi.waitFor(() => expect(goodsPorts(resolver)).toEqual([5001, 5002]), WAIT);
    hold.until = undefined;
    release();

    await vi.waitFor(() => expect(events(lines, 'watch-moved')).toHaveLength(1), WAIT);
    // The moved Watch follows the list on: a node registering after reaches the resolver.
    await register(direct, 5003);
    await vi.waitFor(() => expect(goodsPorts(resolver)).toEqual([5001, 5002, 5003]), WAIT);
    expect(warnings()).toEqual([]);
    expect(events(lines, 'watch-disconnected')).toEqual([]);
  });

  it('changes nothing when a CA was only added, and still hears of the removal after', async () => {
    const { pki } = testPki;
    const dir = runFolder(pki);
    // The distributor of the CA kept; the program's certificate of "old", so that the file may come
    // to name "old" alone.
    const { direct, address, connections } = await distributorWith(dir, pki.files('distributor'));
    await register(direct, 5001);
    const caFile = copyIn(dir, pki.caFile, 'ca.crt');
    const { resolver, warnings, lines, caTaken, caReloaded } = resolverWith(address, {
      ...pki.foreignFiles('operator'),
      caFile,
    });
    await vi.waitFor(() => expect(goodsPorts(resolver)).toEqual([5001]), WAIT);
    const watchConnection = connections.at(-1)!;
    const opened = connections.length;

    replaceFile(pki.bothCasFile, caFile);
    await caReloaded(1);
    // Nothing to wait for: a few more reads of the file, in which a wrong move or cut would show.
    await new Promise((resolve) => setTimeout(resolve, 10 * REFRESH_MS));
    expect(warnings()).toEqual([]);
    expect(events(lines, 'watch-moved')).toEqual([]);
    expect(events(lines, 'watch-disconnected')).toEqual([]);
    expect(watchConnection.closedAt).toBeUndefined();
    expect(connections).toHaveLength(opened);
    expect(caTaken).toEqual([2]);

    // The CA of the distributor removed: the same resolver hears of it.
    replaceFile(pki.otherCaFile, caFile);
    await vi.waitFor(() => expect(events(warnings(), 'untrusted-after-ca-change')).toHaveLength(1), WAIT);
    await vi.waitFor(() => expect(watchConnection.closedAt).toBeDefined(), WAIT);
    expect(caTaken).toEqual([2, 1]);
  });
});
