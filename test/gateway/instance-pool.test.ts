import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttp2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  connectivityState,
  Metadata,
  Server,
  ServerCredentials,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { asIs, bytesMethod } from '../../src/common/bytes-method.js';
import { ClientCallTelemetry } from '../../src/common/grpc-client-telemetry.js';
import { http2ServersOf, listen } from '../../src/common/grpc-server.js';
import { createMetricsRegistry, GrpcCallMetrics } from '../../src/common/metrics.js';
import {
  channelCredentialsByName,
  secureNamingChannelOptions,
  serverCredentials,
} from '../../src/common/tls.js';
import { InstancePool } from '../../src/gateway/instance-pool.js';
import type { InstancePoolOptions } from '../../src/gateway/instance-pool-options.js';
import { canTakeCalls, type Upstream, upstreamKeyOfNode } from '../../src/gateway/upstream.js';
import { upstreamEventLog } from '../../src/gateway/upstream-event-log.js';
import { withoutCallerStack } from '../../src/gateway/without-caller-stack.js';
import { makeTestPki } from '../helpers/certs.js';
import { captureLog } from '../helpers/log-capture.js';
import { sample } from '../helpers/prometheus.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

// A real server on loopback with one method that always fails, so that a call's error is seen whole.
const METHOD = '/test.v1.Failing/Fail';

describe('upstreamKeyOfNode', () => {
  it("gives an IPv6 node the key of its dialled address, from a distributor's id in brackets or, before 2026-12-06, bare", () => {
    expect(upstreamKeyOfNode('goods@[fd00::2]:9010')).toBe('goods@[fd00::2]:9010');
    expect(upstreamKeyOfNode('goods@fd00::2:9010')).toBe('goods@[fd00::2]:9010');
    expect(upstreamKeyOfNode('goods@10.0.0.2:9010')).toBe('goods@10.0.0.2:9010');
    expect(upstreamKeyOfNode('goods@goods.shop.svc:9010')).toBe('goods@goods.shop.svc:9010');
  });
});

/**
 * The first two connect timeouts a pool tells of an instance at `address`: how its attempts went,
 * and why the pool then says it cannot reach the instance (what /status.json gives of it).
 */
async function firstConnectTimeoutsAt(
  address: string,
  options: Omit<InstancePoolOptions, 'connectTimeoutMs' | 'onConnectTimeout'> = {},
  name = 'test',
): Promise<string[]> {
  const told: string[] = [];
  const pool = new InstancePool({
    ...options,
    connectTimeoutMs: 300,
    onConnectTimeout: (upstream, _timeoutMs, again, attempts) =>
      told.push(`${attempts}${again ? ', again' : ''}: ${pool.unreachableReason(upstream.key)}`),
  });
  try {
    pool.get(name, address);
    await vi.waitFor(() => expect(told.length).toBeGreaterThanOrEqual(2), { timeout: 5_000 });
    return told.slice(0, 2);
  } finally {
    pool.close();
  }
}

describe('InstancePool', () => {
  let server: Server;
  let address: string;
  let port: number;

  const fail = (pool: InstancePool, upstream: Upstream, timeoutMs = 5_000) =>
    new Promise<ServiceError | null>((resolve) =>
      pool.call(upstream, METHOD, asIs, Buffer.alloc(0), new Metadata(), Date.now() + timeoutMs, resolve),
    );

  beforeAll(async () => {
    server = new Server();
    server.addService(
      { Fail: bytesMethod(METHOD) },
      {
        Fail: (_call: unknown, callback: (error: Partial<ServiceError>) => void) =>
          callback({ code: status.NOT_FOUND, details: 'no such thing' }),
      },
    );
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    address = `127.0.0.1:${port}`;
  });

  afterAll(() => server.forceShutdown());

  it('starts calls without capturing the caller stack, and leaves the stack limit as it was', async () => {
    const pool = new InstancePool();
    try {
      const limit = Error.stackTraceLimit;
      const error = await new Promise<ServiceError | null>((resolve) =>
        pool.call(
          pool.get('test', address),
          METHOD,
          asIs,
          Buffer.alloc(0),
          new Metadata(),
          Date.now() + 5_000,
          resolve,
        ),
      );
      expect(Error.stackTraceLimit).toBe(limit);
      // The failure itself is whole: code and details, as the gateway maps them.
      expect(error).toMatchObject({ code: status.NOT_FOUND, details: 'no such thing' });
      // grpc-js appends the stack captured when the call started; none was: no frame of this file.
      const callerStack = error!.stack!.split('for call at')[1];
      expect(callerStack).toBeDefined();
      expect(callerStack).not.toContain('instance-pool.test');
      expect(callerStack).not.toMatch(/\n\s+at /);
    } finally {
      pool.close();
    }
  });

  it('answers a call on a closed channel UNAVAILABLE, counted so, with no call left in flight', async () => {
    // grpc-js throws "Channel has been shut down": counted Internal and answered 500 as a bug of
    // the gateway, for an instance that is only gone.
    const registry = createMetricsRegistry();
    const pool = new InstancePool({
      calls: new ClientCallTelemetry({ metrics: new GrpcCallMetrics(registry, 'client') }),
    });
    try {
      const upstream = pool.get('test', address);
      upstream.client.close();
      const error = await fail(pool, upstream);
      expect(error).toMatchObject({ code: status.UNAVAILABLE });
      expect(error?.details).toContain(`the channel to test@${address} is closed`);
      expect(upstream.inFlight).toBe(0);
      const metrics = await registry.metrics();
      expect(sample(metrics, 'grpc_client_handled_total', { grpc_code: 'Unavailable' })).toBe(1);
      expect(sample(metrics, 'grpc_client_handled_total', { grpc_code: 'Internal' })).toBeUndefined();
    } finally {
      pool.close();
    }
  });

  it('replaces a channel whose connection attempt hangs; calls waiting on it fail, later ones get through', async () => {
    // A host that drops packets: the first connection is accepted and held for ever, as a TCP
    // connect waits on its SYN; connections made after restore() go through.
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    proxy.blackhole();
    const replaced: string[] = [];
    const pool = new InstancePool({
      connectTimeoutMs: 300,
      onConnectTimeout: (upstream, timeoutMs, _again, attempts) =>
        replaced.push(`${upstream.key} after ${timeoutMs} ms, ${attempts}`),
    });
    try {
      const upstream = pool.get('test', `127.0.0.1:${proxy.port}`);
      const hung = upstream.channel;
      await vi.waitFor(() => expect(proxy.connectionsHeld).toBe(1));
      expect(canTakeCalls(upstream)).toBe(false);
      const waiting = fail(pool, upstream, 10_000);
      await proxy.restore({ keepHeld: true });
      await expect(waiting).resolves.toMatchObject({ code: status.UNAVAILABLE });
      await vi.waitFor(() => expect(canTakeCalls(upstream)).toBe(true), { timeout: 5_000 });
      expect(upstream.channel).not.toBe(hung);
      expect(hung.getConnectivityState(false)).toBe(connectivityState.SHUTDOWN);
      expect(replaced).toEqual([`test@127.0.0.1:${proxy.port} after 300 ms, hung`]);
      await expect(fail(pool, upstream)).resolves.toMatchObject({ code: status.NOT_FOUND });
      expect(upstream.inFlight).toBe(0);
    } finally {
      pool.close();
      await proxy.close();
    }
  });

  it('says the attempts failed, not hung, when the address refuses connections', async () => {
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    await proxy.refuse();
    try {
      expect(await firstConnectTimeoutsAt(`127.0.0.1:${proxy.port}`)).toEqual([
        'failed: attempts-fail',
        'failed, again: attempts-fail',
      ]);
    } finally {
      await proxy.close();
    }
  });

  it('says the host name did not resolve, not that attempts failed, for an instance listed at a name unknown here', async () => {
    // Found listing a service at a DNS name the gateway's host did not know: the warning said its
    // attempts failed (refused, no route, ...), though no connection was ever tried. RFC 6761: a
    // name under .invalid never resolves.
    expect(await firstConnectTimeoutsAt('goods.shop.invalid:9010')).toEqual([
      'unresolved: unresolved',
      'unresolved, again: unresolved',
    ]);
    // Said so from the resolution's failure on, not only once a connect timeout has passed.
    const pool = new InstancePool({ connectTimeoutMs: 60_000 });
    try {
      const upstream = pool.get('goods', 'goods.shop.invalid:9010');
      await vi.waitFor(() => expect(pool.unreachableReason(upstream.key)).toBe('unresolved'), {
        timeout: 5_000,
      });
    } finally {
      pool.close();
    }
  });

  it('replaces a failed channel whose next connection attempt hangs (grpc-js reports it failed, not connecting)', async () => {
    // A host that refused, then drops packets: the channel's retry hangs while it stays
    // TRANSIENT_FAILURE (sticky, until an attempt succeeds), then the host can be reached again.
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    await proxy.refuse();
    const pool = new InstancePool({ connectTimeoutMs: 300 });
    try {
      const upstream = pool.get('test', `127.0.0.1:${proxy.port}`);
      await vi.waitFor(() =>
        expect(upstream.channel.getConnectivityState(false)).toBe(connectivityState.TRANSIENT_FAILURE),
      );
      await proxy.restore();
      proxy.blackhole();
      await vi.waitFor(() => expect(proxy.connectionsHeld).toBe(1), { timeout: 5_000 });
      await proxy.restore({ keepHeld: true });
      await vi.waitFor(() => expect(canTakeCalls(upstream)).toBe(true), { timeout: 5_000 });
      await expect(fail(pool, upstream)).resolves.toMatchObject({ code: status.NOT_FOUND });
    } finally {
      pool.close();
      await proxy.close();
    }
  });

  it('connects again at once when a connection is lost, not at the next call, so a lost instance is passed over', async () => {
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    // The connection is lost just after it was made: by default, it would be made again 5 s later.
    const pool = new InstancePool({ idleReconnectIntervalMs: 50 });
    try {
      const upstream = pool.get('test', `127.0.0.1:${proxy.port}`);
      await vi.waitFor(() =>
        expect(upstream.channel.getConnectivityState(false)).toBe(connectivityState.READY),
      );
      await proxy.refuse();
      await vi.waitFor(() =>
        expect(upstream.channel.getConnectivityState(false)).toBe(connectivityState.TRANSIENT_FAILURE),
      );
      expect(canTakeCalls(upstream)).toBe(false);
      await proxy.restore();
      await vi.waitFor(
        () => expect(upstream.channel.getConnectivityState(false)).toBe(connectivityState.READY),
        {
          timeout: 5_000,
        },
      );
    } finally {
      pool.close();
      await proxy.close();
    }
  });

  it('ends the connection attempt of each channel it replaces, not leaving one open per replacement', async () => {
    // A peer that accepts and never speaks HTTP/2: grpc-js waits for its settings without a limit.
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    proxy.blackhole();
    const again: boolean[] = [];
    const pool = new InstancePool({
      connectTimeoutMs: 100,
      onConnectTimeout: (_upstream, _timeoutMs, repeated) => again.push(repeated),
    });
    try {
      pool.get('test', `127.0.0.1:${proxy.port}`);
      await vi.waitFor(() => expect(again.length).toBeGreaterThanOrEqual(5), { timeout: 5_000 });
      // Said once, then quietly: each later replacement replaced one that never connected either.
      expect(again.slice(0, 5)).toEqual([false, true, true, true, true]);
      await vi.waitFor(() => expect(proxy.clientConnectionsOpen()).toBeLessThanOrEqual(2));
    } finally {
      pool.close();
      await proxy.close();
    }
  });

  it('ends the connection attempt of an upstream that leaves while it connects', async () => {
    // Instances that come and go while a peer accepts and never speaks HTTP/2: each would leave
    // its attempt open for ever (grpc-js's close() does not end it).
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    proxy.blackhole();
    const pool = new InstancePool();
    try {
      for (let round = 1; round <= 3; round++) {
        pool.get('test', `127.0.0.1:${proxy.port}`);
        await vi.waitFor(() => expect(proxy.connectionsHeld).toBe(round));
        pool.retainOnly(new Set());
      }
      await vi.waitFor(() => expect(proxy.clientConnectionsOpen()).toBe(0));
    } finally {
      pool.close();
      await proxy.close();
    }
  });

  it('restores the stack limit when starting throws, and passes the result through', () => {
    const limit = Error.stackTraceLimit;
    expect(
      withoutCallerStack(() => {
        expect(Error.stackTraceLimit).toBe(0);
        return 42;
      }),
    ).toBe(42);
    expect(Error.stackTraceLimit).toBe(limit);
    expect(() =>
      withoutCallerStack(() => {
        throw new RangeError('broken');
      }),
    ).toThrow('broken');
    expect(Error.stackTraceLimit).toBe(limit);
  });
});

describe('InstancePool, a peer that closes connections at once', () => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('is not dialled again without pause: one that speaks HTTP/2, then closes', async () => {
    let sessions = 0;
    const peer = createHttp2Server();
    peer.on('session', (session) => {
      sessions++;
      session.once('remoteSettings', () => setImmediate(() => session.close()));
    });
    await new Promise<void>((resolve) => peer.listen(0, '127.0.0.1', resolve));
    const pool = new InstancePool();
    try {
      pool.get('test', `127.0.0.1:${(peer.address() as AddressInfo).port}`);
      await sleep(1_500);
      // Before: about 250 connections in that time, each made as the last was closed.
      expect(sessions).toBeLessThanOrEqual(2);
    } finally {
      pool.close();
      peer.close();
    }
  });

  it('two gateways idle on a service full at one connection do not close each other in turn', async () => {
    const server = new Server();
    const port = await listen(server, '127.0.0.1', 0, undefined, { maxConnections: 1 });
    let connections = 0;
    for (const http2Server of http2ServersOf(server)) http2Server.on('connection', () => connections++);
    const one = new InstancePool();
    const other = new InstancePool();
    try {
      one.get('test', `127.0.0.1:${port}`);
      await sleep(200);
      other.get('test', `127.0.0.1:${port}`);
      await sleep(1_500);
      // Before: about 700 connections in that time, each closing the other gateway's.
      expect(connections).toBeLessThanOrEqual(4);
    } finally {
      one.close();
      other.close();
      server.forceShutdown();
    }
  });
});

describe('InstancePool over TLS, an address that serves another component', () => {
  it("says why the handshake failed when the channel does not connect in time: the server's certificate names another component", async () => {
    // A listing whose address serves members (a wrong --advertise-host or port, say): secure naming
    // refuses every handshake, and the warning must say so, not only that attempts failed.
    const dir = mkdtempSync(join(tmpdir(), 'pool-secure-naming-'));
    const pki = makeTestPki(dir, { names: ['gateway', 'members'] });
    const server = new Server();
    const port = await listen(server, '127.0.0.1', 0, serverCredentials(pki.files('members')));
    const gatewayTls = pki.files('gateway');
    const timeouts: Array<{ attempts: string; handshakeFailure: string | undefined }> = [];
    const pool = new InstancePool({
      connectTimeoutMs: 300,
      credentialsFor: channelCredentialsByName(gatewayTls),
      namingOptionsFor: (name) => secureNamingChannelOptions(gatewayTls, name),
      onConnectTimeout: (_upstream, _timeoutMs, _again, attempts, handshakeFailure) =>
        timeouts.push({ attempts, handshakeFailure }),
    });
    try {
      const upstream = pool.get('goods', `127.0.0.1:${port}`);
      await vi.waitFor(() => expect(timeouts.length).toBeGreaterThan(0), { timeout: 5_000 });
      expect(timeouts[0]).toEqual({
        attempts: 'failed',
        handshakeFailure:
          "the server's certificate is not for spiffe://shop/goods (it names spiffe://shop/members)",
      });
      // The status page names the kind only: the failure's text, naming certificates, stays in the log.
      expect(pool.unreachableReason(upstream.key)).toBe('handshake-fails');
    } finally {
      pool.close();
      server.forceShutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("says the instance dropped each connection after the handshake when it refuses the gateway's certificate (split CAs)", async () => {
    // The gateway's certificate is of a CA the service's CA file lacks: the gateway's own side of
    // each handshake completes, then the service drops the connection. The warning said only that
    // the attempts failed, and asked whether the service was running.
    const dir = mkdtempSync(join(tmpdir(), 'pool-split-ca-'));
    const pki = makeTestPki(dir, { names: ['goods', 'gateway'] });
    const server = new Server();
    const port = await listen(server, '127.0.0.1', 0, serverCredentials(pki.files('goods')));
    const gatewayTls = pki.foreignFiles('gateway');
    const timeouts: Array<{ attempts: string; handshakeFailure: string | undefined }> = [];
    const gatewayLog = captureLog('gateway');
    const { onConnectTimeout: warn } = upstreamEventLog(gatewayLog.log);
    const pool = new InstancePool({
      connectTimeoutMs: 500,
      credentialsFor: channelCredentialsByName(gatewayTls),
      namingOptionsFor: (name) => secureNamingChannelOptions(gatewayTls, name),
      onConnectTimeout: (upstream, timeoutMs, again, attempts, handshakeFailure) => {
        timeouts.push({ attempts, handshakeFailure });
        warn?.(upstream, timeoutMs, again, attempts, handshakeFailure);
      },
    });
    try {
      pool.get('goods', `127.0.0.1:${port}`);
      await vi.waitFor(() => expect(timeouts.length).toBeGreaterThan(0), { timeout: 5_000 });
      expect(timeouts[0]).toEqual({ attempts: 'dropped', handshakeFailure: undefined });
      expect(gatewayLog.lines[0]?.msg).toMatch(
        /^no connection to (goods@127\.0\.0\.1:\d+) within 500 ms: its TLS handshakes completed, but it closed each connection just after — \1 may not accept this component's certificate: .*\1's log names the reason \(untrusted-client-certificate\); trying a new one/,
      );
    } finally {
      pool.close();
      server.forceShutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("says on the status page that the instance drops each connection after the handshake (split CAs), from its first failed attempt on and through the connect timeout's new channels", async () => {
    // The page said its attempts failed, "refused, reset, or no route to its host", while the log
    // said the handshakes completed and the instance dropped them.
    const dir = mkdtempSync(join(tmpdir(), 'pool-split-ca-reason-'));
    const pki = makeTestPki(dir, { names: ['goods', 'gateway'] });
    const server = new Server();
    const port = await listen(server, '127.0.0.1', 0, serverCredentials(pki.files('goods')));
    const gatewayTls = pki.foreignFiles('gateway');
    const tls = {
      credentialsFor: channelCredentialsByName(gatewayTls),
      namingOptionsFor: (name: string) => secureNamingChannelOptions(gatewayTls, name),
    };
    try {
      expect(await firstConnectTimeoutsAt(`127.0.0.1:${port}`, tls, 'goods')).toEqual([
        'dropped: connections-dropped',
        'dropped, again: connections-dropped',
      ]);
      // Said so from the first failed attempt on, not only once a connect timeout has passed.
      const pool = new InstancePool({ ...tls, connectTimeoutMs: 60_000 });
      try {
        const upstream = pool.get('goods', `127.0.0.1:${port}`);
        await vi.waitFor(() => expect(pool.unreachableReason(upstream.key)).toBe('connections-dropped'), {
          timeout: 5_000,
          interval: 10,
        });
      } finally {
        pool.close();
      }
    } finally {
      server.forceShutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says a connection lost and then refused is not dropped after the handshake, but one that completes a new handshake then is', async () => {
    // The handshake of the connection it had counts for nothing: only those completed after.
    const dir = mkdtempSync(join(tmpdir(), 'pool-lost-then-dropped-'));
    const pki = makeTestPki(dir, { names: ['goods', 'gateway'] });
    const trusting = new Server();
    const port = await listen(
      trusting,
      '127.0.0.1',
      0,
      serverCredentials({ ...pki.files('goods'), caFile: pki.bothCasFile }),
    );
    const gatewayTls = pki.foreignFiles('gateway');
    const timeouts: string[] = [];
    const pool = new InstancePool({
      // Past grpc-js's first reconnect backoff (1 s, 20% jitter): the restarted service drops an
      // attempt of the channel that failed before the timeout replaces it.
      connectTimeoutMs: 2_500,
      // Connected again at once once the connection is lost, not 5 s after the first connection.
      idleReconnectIntervalMs: 50,
      credentialsFor: channelCredentialsByName(gatewayTls),
      namingOptionsFor: (name) => secureNamingChannelOptions(gatewayTls, name),
      onConnectTimeout: (upstream, _timeoutMs, _again, attempts) =>
        timeouts.push(`${attempts}: ${pool.unreachableReason(upstream.key)}`),
    });
    // Restarted with a CA file that lacks the gateway's CA: it drops the gateway's connections.
    const refusing = new Server();
    try {
      const upstream = pool.get('goods', `127.0.0.1:${port}`);
      await vi.waitFor(() => expect(pool.connection(upstream.key)).toBe('connected'), { timeout: 5_000 });
      trusting.forceShutdown();
      await vi.waitFor(() => expect(pool.unreachableReason(upstream.key)).toBeDefined(), {
        timeout: 5_000,
        interval: 10,
      });
      expect(pool.unreachableReason(upstream.key)).toBe('attempts-fail');
      await listen(refusing, '127.0.0.1', port, serverCredentials(pki.files('goods')));
      // Its channel, failed since the refusal, tells no later attempt: the connect timeout says
      // what they met, as its warning does, and the new channel carries that on.
      await vi.waitFor(() => expect(timeouts.length).toBeGreaterThan(0), { timeout: 5_000, interval: 10 });
      expect(timeouts[0]).toBe('dropped: connections-dropped');
    } finally {
      pool.close();
      trusting.forceShutdown();
      refusing.forceShutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("says a plaintext gateway's attempts to a TLS service failed, not that handshakes completed and were dropped", async () => {
    // A plaintext connection has no handshake: counted as one, the TLS service closing it read as
    // "its TLS handshakes completed, but it closed each connection just after".
    const dir = mkdtempSync(join(tmpdir(), 'pool-plaintext-to-tls-'));
    const pki = makeTestPki(dir, { names: ['goods'] });
    const server = new Server();
    const port = await listen(server, '127.0.0.1', 0, serverCredentials(pki.files('goods')));
    const attempts: string[] = [];
    const pool = new InstancePool({
      connectTimeoutMs: 500,
      // With the reason the status page gives: not that the instance drops connections either.
      onConnectTimeout: (upstream, _timeoutMs, _again, how) =>
        attempts.push(`${how}: ${pool.unreachableReason(upstream.key)}`),
    });
    try {
      pool.get('goods', `127.0.0.1:${port}`);
      await vi.waitFor(() => expect(attempts.length).toBeGreaterThan(0), { timeout: 5_000 });
      expect(attempts[0]).toBe('failed: attempts-fail');
    } finally {
      pool.close();
      server.forceShutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names an OpenSSL failure by its reason, on one line: a server that answers TLS in plaintext', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pool-plaintext-'));
    const pki = makeTestPki(dir, { names: ['gateway'] });
    const server = new Server();
    const port = await listen(server, '127.0.0.1', 0, ServerCredentials.createInsecure());
    const gatewayTls = pki.files('gateway');
    const failures: Array<string | undefined> = [];
    const pool = new InstancePool({
      connectTimeoutMs: 300,
      credentialsFor: channelCredentialsByName(gatewayTls),
      namingOptionsFor: (name) => secureNamingChannelOptions(gatewayTls, name),
      onConnectTimeout: (_upstream, _timeoutMs, _again, _attempts, handshakeFailure) =>
        failures.push(handshakeFailure),
    });
    try {
      pool.get('goods', `127.0.0.1:${port}`);
      await vi.waitFor(() => expect(failures.length).toBeGreaterThan(0), { timeout: 5_000 });
      // Not OpenSSL's whole error string: an address, a source file and a newline in a warning.
      expect(failures[0]).toBe('wrong version number');
    } finally {
      pool.close();
      server.forceShutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says the attempts fail, no longer the handshake, within a connect timeout of the address refusing connections', async () => {
    // The channel's credentials keep a handshake's failure until one succeeds, and grpc-js keeps a
    // failed channel failed through its later attempts, refused ones too: the reason stays the
    // first failure's until the connect timeout gives the instance a new channel, whose own first
    // attempt says what it met.
    const dir = mkdtempSync(join(tmpdir(), 'pool-handshake-then-refused-'));
    const pki = makeTestPki(dir, { names: ['gateway', 'members'] });
    const server = new Server();
    const port = await listen(server, '127.0.0.1', 0, serverCredentials(pki.files('members')));
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    const gatewayTls = pki.files('gateway');
    const connectTimeoutMs = 400;
    const pool = new InstancePool({
      connectTimeoutMs,
      credentialsFor: channelCredentialsByName(gatewayTls),
      namingOptionsFor: (name) => secureNamingChannelOptions(gatewayTls, name),
    });
    try {
      const upstream = pool.get('goods', `127.0.0.1:${proxy.port}`);
      await vi.waitFor(() => expect(pool.unreachableReason(upstream.key)).toBe('handshake-fails'), {
        timeout: 5_000,
        interval: 10,
      });
      await proxy.refuse();
      const refusedAt = performance.now();
      await vi.waitFor(() => expect(pool.unreachableReason(upstream.key)).toBe('attempts-fail'), {
        timeout: 5_000,
        interval: 10,
      });
      // One connect timeout, and room for a loaded machine; not the channel's whole life.
      expect(performance.now() - refusedAt).toBeLessThan(2 * connectTimeoutMs);
    } finally {
      pool.close();
      await proxy.close();
      server.forceShutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('InstancePool moving its calls to a renewed certificate', () => {
  it('closes the connection before only once the calls started on it end: none fails through 20 moves', async () => {
    // A method that answers after 20 ms, so that calls are always under way, some of
    // them started on the channel before just as a move completes. Before, that channel was closed
    // at once: grpc-js failed the calls it had not yet put on the connection ("Channel closed
    // before call started"), and a service given its GOAWAY could end one it was running
    // ("Connection dropped"; measured under load, a sign-in answered 503 at a renewal).
    const method = '/test.v1.Slow/Answer';
    const server = new Server();
    server.addService(
      { Answer: bytesMethod(method) },
      {
        Answer: (_call: unknown, callback: (error: null, value: Buffer) => void) =>
          setTimeout(() => callback(null, Buffer.alloc(0)), 20),
      },
    );
    const port = await listen(server, '127.0.0.1', 0);
    let moves = 0;
    const pool = new InstancePool({ onMoved: () => moves++ });
    const failures: string[] = [];
    let calls = 0;
    let calling = true;
    try {
      const upstream = pool.get('test', `127.0.0.1:${port}`);
      const call = () =>
        new Promise<void>((resolve) => {
          calls++;
          pool.call(upstream, method, asIs, Buffer.alloc(0), new Metadata(), Date.now() + 5_000, (error) => {
            if (error) failures.push(`${status[error.code]}: ${error.details}`);
            resolve();
          });
        });
      // A call every 2 ms, each answered after 20: about ten under way at any time.
      const answers: Promise<void>[] = [];
      const caller = (async () => {
        while (calling) {
          answers.push(call());
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      })();
      await vi.waitFor(() => expect(calls).toBeGreaterThan(8));
      for (let move = 1; move <= 20; move++) {
        pool.renewConnections();
        await vi.waitFor(() => expect(moves).toBe(move), { interval: 1 });
        const before = calls;
        await vi.waitFor(() => expect(calls).toBeGreaterThan(before + 8), { interval: 1 });
      }
      calling = false;
      await caller;
      await Promise.all(answers);
    } finally {
      calling = false;
      pool.close();
      server.forceShutdown();
    }
    expect(calls).toBeGreaterThan(200);
    expect(failures).toEqual([]);
  }, 30_000);
});
