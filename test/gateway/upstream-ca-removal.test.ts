import type { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  Metadata,
  Server,
  type ServiceError,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createCa } from '../../scripts/certs.mjs';
import { registrationDescriptorSet } from '../../src/common/descriptors.js';
import { http2ServersOf, http2SessionsOf } from '../../src/common/grpc-server.js';
import { authoritiesOf } from '../../src/common/pem-certificates.js';
import {
  channelCredentials,
  channelCredentialsByName,
  secureNamingChannelOptions,
  serverCredentials,
  type TlsFilePaths,
} from '../../src/common/tls.js';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { createGateway } from '../../src/gateway/gateway-server.js';
import { InstancePool } from '../../src/gateway/instance-pool.js';
import { UNTRUSTED_CONNECTION_GRACE_MS, UNTRUSTED_SERVER } from '../../src/gateway/untrusted-connection.js';
import type { Upstream } from '../../src/gateway/upstream.js';
import { NodeState } from '../../src/gen/distributor.js';
import { type GoodsServiceServer, GoodsServiceService } from '../../src/gen/services.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { capturingLogger, type LogLine } from '../distributor/support/capturing-logger.js';
import { replaceFile, useTestPki } from '../helpers/certs.js';
import { httpJson } from '../helpers/http.js';
import { Closer, waitForRoute } from './support/cluster.js';

// A CA removed from the gateway's CA file (because it leaked) stops the gateway sending requests
// over the connections it made before to services whose certificates that CA issued: TLS checks a
// server's CA at the handshake alone, so without this such a service went on getting requests until
// the gateway restarted, while the distributor still listed it (its own CA file unchanged).

const testPki = useTestPki('upstream-ca-removal-', { names: ['distributor', 'goods', 'gateway'] });

/** How often the gateway reads its TLS files again. */
const REFRESH_MS = 50;
const WAIT = { timeout: 5_000, interval: 10 };

const closer = new Closer();
afterEach(() => closer.closeAll());

/** A ListGoods call on `upstream` through `pool`, within `deadlineMs`: its error, or null. */
function listGoodsOn(
  pool: InstancePool,
  upstream: Upstream,
  deadlineMs: number,
): Promise<ServiceError | null> {
  return new Promise((resolve) =>
    pool.call(
      upstream,
      '/shop.v1.GoodsService/ListGoods',
      (bytes) => bytes,
      Buffer.alloc(0),
      new Metadata(),
      Date.now() + deadlineMs,
      resolve,
    ),
  );
}

/**
 * An instance pool with the gateway's certificate over `files` and one upstream, a goods server of
 * the other CA (the one a test removes): the keys of the upstreams it stopped using for an
 * untrusted server, and a ListGoods call on that upstream within `deadlineMs`. With
 * `refreshIntervalMs`, its credentials read the files again, and tell `onCaTaken` of a changed CA file.
 */
async function poolOnLeakedGoods(
  files: Required<TlsFilePaths>,
  {
    refreshIntervalMs,
    onCaTaken,
    deadlineMs = 10_000,
  }: {
    refreshIntervalMs?: number;
    onCaTaken?: (pool: InstancePool, authorities: readonly X509Certificate[]) => void;
    deadlineMs?: number;
  } = {},
) {
  const credentialsFor = channelCredentialsByName(files, {
    ...(refreshIntervalMs === undefined ? {} : { refreshIntervalMs }),
    onCaTaken: (authorities) => onCaTaken?.(pool, authorities),
  });
  if (!credentialsFor) throw new Error('no credentials');
  const cut: string[] = [];
  const pool: InstancePool = closer.add(
    new InstancePool({
      credentialsFor,
      namingOptionsFor: (name) => secureNamingChannelOptions(files, name),
      onUntrustedServer: (upstream) => cut.push(upstream.key),
    }),
    (made) => made.close(),
  );
  const leaked = await goodsServer(testPki.pki.foreignFiles('goods'));
  const upstream = pool.get('goods', `127.0.0.1:${leaked.port}`);
  const call = () => listGoodsOn(pool, upstream, deadlineMs);
  return { pool, cut, leaked, call };
}

/**
 * A goods service over mTLS with `files`: the calls it got, the TLS connections it accepted
 * (counted from its bind on), and a switch that has its next ListGoods wait until released.
 */
async function goodsServer(files: Required<TlsFilePaths>) {
  let calls = 0;
  let handshakes = 0;
  let holding: { release: () => void; arrived: () => void } | undefined;
  const listGoods: GoodsServiceServer['listGoods'] = (_call, callback) => {
    calls++;
    const answer = () => callback(null, { results: [], nextPageToken: '' });
    const held = holding;
    holding = undefined;
    if (!held) return answer();
    held.arrived();
    held.release = answer;
  };
  const server = new Server();
  server.addService(GoodsServiceService, { listGoods } as UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', serverCredentials(files), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  closer.add(server, (bound) => bound.forceShutdown());
  // Nobody knows of it yet: every connection it accepts is counted.
  for (const http2Server of http2ServersOf(server)) http2Server.on('secureConnection', () => handshakes++);
  return {
    port,
    key: `goods@127.0.0.1:${port}`,
    calls: () => calls,
    handshakes: () => handshakes,
    /** Connections still open on its port. */
    sessions: () => http2SessionsOf(server).flatMap(({ sessions }) => sessions).length,
    /** Has its next ListGoods wait: resolves once it arrived, with the function that answers it. */
    holdNext(): Promise<() => void> {
      return new Promise((resolve) => {
        const hold = {
          release: () => {},
          arrived: () => queueMicrotask(() => resolve(() => hold.release())),
        };
        holding = hold;
      });
    },
  };
}

/** A goodsServer registered with the distributor over TLS, as a service registers. */
async function goodsWith(distributor: string, files: Required<TlsFilePaths>) {
  const goods = await goodsServer(files);
  const registration = new RegistrationClient({
    distributor,
    node: {
      name: 'goods',
      host: '127.0.0.1',
      port: goods.port,
      routes: [],
      descriptorSet: registrationDescriptorSet(['shop.v1.GoodsService']),
      state: NodeState.NODE_STATE_SERVING,
    },
    credentials: channelCredentials(files, { expectedName: 'distributor' }),
    channelOptions: secureNamingChannelOptions(files, 'distributor'),
    backoff: { initialMs: 20, maxMs: 200 },
  });
  registration.start();
  closer.add(registration, (started) => started.stop(100));
  return goods;
}

/**
 * A TCP proxy to 127.0.0.1:`port` that holds what the server sends on the first connection until
 * `release()`: a TLS handshake through it stays under way meanwhile. `serverSpoke` resolves once
 * the server sent something on it; later connections pass freely.
 */
async function handshakeHoldingProxy(port: number) {
  let release: () => void = () => {};
  let spoke: () => void = () => {};
  const serverSpoke = new Promise<void>((resolve) => {
    spoke = resolve;
  });
  let first = true;
  const sockets = new Set<Socket>();
  const proxy = createServer((incoming) => {
    const outgoing = connect(port, '127.0.0.1');
    for (const socket of [incoming, outgoing]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        incoming.destroy();
        outgoing.destroy();
      });
    }
    incoming.pipe(outgoing);
    if (!first) {
      outgoing.pipe(incoming);
      return;
    }
    first = false;
    const held: Buffer[] = [];
    const hold = (chunk: Buffer): void => {
      held.push(chunk);
      spoke();
    };
    outgoing.on('data', hold);
    release = () => {
      outgoing.off('data', hold);
      for (const chunk of held) incoming.write(chunk);
      outgoing.pipe(incoming);
    };
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  closer.add(proxy, (listening) => {
    listening.close();
    for (const socket of sockets) socket.destroy();
  });
  return { port: (proxy.address() as AddressInfo).port, serverSpoke, release: () => release() };
}

const untrusted = (lines: LogLine[]): LogLine[] =>
  lines.filter((line) => line.event === 'untrusted-after-ca-change');

describe("a CA removed from the gateway's CA file", () => {
  it('stops the requests over its connection to a service of that CA, lets the call on it finish, and leaves the connection to a service of the CA kept alone', async () => {
    const { pki } = testPki;
    const dir = mkdtempSync(join(pki.dir, 'run-'));
    const caFile = join(dir, 'ca.crt');
    copyFileSync(pki.bothCasFile, caFile);
    const distributor = closer.add(
      createDistributorServer({ tls: { ...pki.files('distributor'), caFile: pki.bothCasFile } }),
      (started) => started.stop(100),
    );
    const address = `127.0.0.1:${await distributor.listen('127.0.0.1', 0)}`;
    // Both registered: the distributor trusts both CAs, and keeps doing so.
    const kept = await goodsWith(address, { ...pki.files('goods'), caFile: pki.bothCasFile });
    const leaked = await goodsWith(address, pki.foreignFiles('goods'));
    const { log, lines, warnings } = capturingLogger();
    const { certFile, keyFile } = pki.files('gateway');
    const gateway = closer.add(
      createGateway({
        distributor: address,
        tls: { caFile, certFile, keyFile },
        tlsRefreshIntervalMs: REFRESH_MS,
        upstreamConnectTimeoutMs: 500,
        registrationBackoff: { initialMs: 20, maxMs: 200 },
        log,
      }),
      (started) => started.stop(),
    );
    const port = await gateway.listen('127.0.0.1', 0);
    await waitForRoute(gateway, 'GET /goods', 2);
    const get = () => httpJson(port, 'GET', '/goods');
    await vi.waitFor(async () => {
      expect((await get()).status).toBe(200);
      expect([kept.calls(), leaked.calls()]).not.toContain(0);
    }, WAIT);
    expect([kept.handshakes(), leaked.handshakes()]).toEqual([1, 1]);

    // A CA added (a rotation's step 1, a file rewritten in another order): nothing is cut.
    const added = createCa(dir, { name: 'added-ca', commonName: 'added test CA' });
    writeFileSync(
      caFile,
      Buffer.concat([readFileSync(pki.otherCaFile), readFileSync(pki.caFile), readFileSync(added.certFile)]),
    );
    await vi.waitFor(
      () =>
        expect(lines.filter((line) => line.event === 'tls-reloaded' && line.certificates === 3)).toHaveLength(
          1,
        ),
      WAIT,
    );
    await new Promise((resolve) => setTimeout(resolve, 10 * REFRESH_MS));
    expect(untrusted(lines)).toEqual([]);

    // A call held by the service of the leaked CA, on the connection made before its removal.
    const arrived = leaked.holdNext();
    const inFlight: Promise<{ status: number }>[] = [];
    let release: (() => void) | undefined;
    for (let attempt = 0; attempt < 10 && release === undefined; attempt++) {
      const request = get();
      inFlight.push(request);
      release = await Promise.race([arrived, request.then(() => undefined)]);
    }
    if (!release) throw new Error('no request reached the service of the leaked CA');
    const leakedCalls = leaked.calls();

    // The other CA leaked: the operator removes it from the gateway's CA file only.
    replaceFile(pki.caFile, caFile);
    await vi.waitFor(() => expect(untrusted(warnings())).toHaveLength(1), WAIT);
    expect(untrusted(warnings())[0]).toMatchObject({
      upstream: leaked.key,
      peer: leaked.key.slice('goods@'.length),
      issuer: 'CN=other test CA',
    });
    // The call in flight on it still ends, within the grace.
    release();
    expect((await Promise.all(inFlight)).map((answer) => answer.status)).toEqual(inFlight.map(() => 200));

    // No request goes to it any more, none fails; the service of the CA kept was not connected again.
    for (let request = 0; request < 10; request++) expect((await get()).status).toBe(200);
    expect(leaked.calls()).toBe(leakedCalls);
    // Its connection closed; a new one is refused by the gateway's handshake (not counted: the
    // service never completes it), and said so as for any instance the gateway cannot reach.
    await vi.waitFor(() => expect(leaked.sessions()).toBe(0), WAIT);
    await vi.waitFor(
      () =>
        expect(
          warnings().filter(
            (line) =>
              line.event === 'upstream-connect-timeout' &&
              line.upstream === leaked.key &&
              line.handshakeFailure !== undefined,
          ),
        ).toHaveLength(1),
      WAIT,
    );
    expect([kept.handshakes(), leaked.handshakes()]).toEqual([1, 1]);
    expect(kept.sessions()).toBe(1);
    // The status page names why, past that connect timeout and the new channel's failed handshakes.
    const nodes: Array<{ address: string; unreachableReason?: string }> = JSON.parse(
      (await httpJson(port, 'GET', '/status.json')).body,
    ).nodes;
    expect(nodes.find((node) => node.address === `127.0.0.1:${leaked.port}`)?.unreachableReason).toBe(
      'untrusted',
    );
    expect(nodes.find((node) => node.address === `127.0.0.1:${kept.port}`)).not.toHaveProperty(
      'unreachableReason',
    );
    expect(untrusted(lines)).toHaveLength(1);
    expect(JSON.stringify(lines)).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
  });

  it('closes the connection with a call that outlasts the grace', async () => {
    const { pki } = testPki;
    const { certFile, keyFile } = pki.files('gateway');
    const caFile = join(mkdtempSync(join(pki.dir, 'run-')), 'ca.crt');
    copyFileSync(pki.bothCasFile, caFile);
    const files = { caFile, certFile, keyFile };
    let cutAt = 0;
    const { pool, cut, leaked, call } = await poolOnLeakedGoods(files, {
      refreshIntervalMs: REFRESH_MS,
      onCaTaken: (pool, authorities) => {
        cutAt = performance.now();
        pool.stopUsingUntrusted(authorities);
      },
    });
    const arrived = leaked.holdNext();
    const held = call();
    await arrived;
    replaceFile(pki.caFile, caFile);
    // A new connection to it, tried first (it may have been renewed by a CA kept), is refused.
    await vi.waitFor(() => expect(cut).toEqual([leaked.key]), WAIT);
    expect(pool.unreachableReason(leaked.key)).toBe('untrusted');

    expect(await held).toMatchObject({ code: status.UNAVAILABLE });
    // Its new channel's handshakes fail since, for that reason: the status page still names it.
    expect(pool.unreachableReason(leaked.key)).toBe('untrusted');
    expect(performance.now() - cutAt).toBeGreaterThanOrEqual(UNTRUSTED_CONNECTION_GRACE_MS - 50);
    await vi.waitFor(() => expect(leaked.sessions()).toBe(0), WAIT);
    expect(leaked.calls()).toBe(1);
  });

  it('takes a renewal while the move of the one before is under way', async () => {
    const { pki } = testPki;
    const files = pki.files('gateway');
    const credentialsFor = channelCredentialsByName(files);
    if (!credentialsFor) throw new Error('no credentials');
    let moved = 0;
    const pool = closer.add(
      new InstancePool({
        credentialsFor,
        namingOptionsFor: (name) => secureNamingChannelOptions(files, name),
        onMoved: () => moved++,
      }),
      (made) => made.close(),
    );
    const goods = await goodsServer(pki.files('goods'));
    const upstream = pool.get('goods', `127.0.0.1:${goods.port}`);
    const call = () => listGoodsOn(pool, upstream, 2_000);
    expect(await call()).toBeNull();

    // Two reads of a certificate renewed twice within a connect timeout: the first move's channel,
    // closed before it had a socket, leaves no connection behind either.
    pool.renewConnections();
    pool.renewConnections();

    await vi.waitFor(() => expect(moved).toBe(1), WAIT);
    expect(await call()).toBeNull();
    await vi.waitFor(() => expect(goods.sessions()).toBe(1), WAIT);
  });

  it.each([
    ['the renewal first, as one read of the files tells them', true],
    ['the CA file first, as a renewal read just after it tells them', false],
  ])(
    'still stops using the connection when a renewed certificate is taken with the CA file: %s',
    async (_, renewalFirst) => {
      // A CA removed and the gateway's own certificate renewed at once (an emergency rotation): both
      // moves are under way together, whichever was told first (tls-files.ts tells the renewal first).
      const { pki } = testPki;
      const { certFile, keyFile } = pki.files('gateway');
      const files = { caFile: pki.bothCasFile, certFile, keyFile };
      const { pool, cut, leaked, call } = await poolOnLeakedGoods(files, { deadlineMs: 2_000 });
      expect(await call()).toBeNull();

      if (renewalFirst) pool.renewConnections();
      pool.stopUsingUntrusted(authoritiesOf(readFileSync(pki.caFile)));
      if (!renewalFirst) pool.renewConnections();

      await vi.waitFor(() => expect(cut).toEqual([leaked.key]), WAIT);
      expect(await call()).toMatchObject({ code: status.UNAVAILABLE });
      expect(leaked.calls()).toBe(1);
      await vi.waitFor(() => expect(leaked.sessions()).toBe(0), WAIT);
    },
  );

  it('refuses a connection whose handshake was under way when the CA file changed, if its server chains to the removed CA', async () => {
    const { pki } = testPki;
    const { certFile, keyFile } = pki.files('gateway');
    const files = { caFile: pki.bothCasFile, certFile, keyFile };
    const credentialsFor = channelCredentialsByName(files);
    if (!credentialsFor) throw new Error('no credentials');
    const pool = closer.add(
      new InstancePool({
        credentialsFor,
        namingOptionsFor: (name) => secureNamingChannelOptions(files, name),
        connectTimeoutMs: 60_000,
      }),
      (made) => made.close(),
    );
    const leaked = await goodsServer(pki.foreignFiles('goods'));
    const proxy = await handshakeHoldingProxy(leaked.port);
    // The pool dials at once: the server's first answer is held, the handshake under way.
    const upstream = pool.get('goods', `127.0.0.1:${proxy.port}`);
    await proxy.serverSpoke;
    pool.stopUsingUntrusted(authoritiesOf(readFileSync(pki.caFile)));
    proxy.release();

    const answer = await listGoodsOn(pool, upstream, 2_000);
    expect(answer).toMatchObject({
      code: status.UNAVAILABLE,
      details: expect.stringContaining(UNTRUSTED_SERVER),
    });
    expect(leaked.calls()).toBe(0);
  });
});
