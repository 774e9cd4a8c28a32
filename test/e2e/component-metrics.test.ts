import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { connect, createServer, Server, type Socket } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Gauge } from 'prom-client';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import {
  ADMIN_MAX_PIPELINED,
  type AdminServer,
  type AdminServerOptions,
  startAdminServer,
} from '../../src/common/admin-server.js';
import { ConfigError } from '../../src/common/config.js';
import { ADMIN_MAX_CONNECTIONS } from '../../src/common/max-connections.js';
import { createMetricsRegistry, type Registry } from '../../src/common/metrics.js';
import { observabilityConfig } from '../../src/common/observability-settings.js';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { createGateway } from '../../src/gateway/gateway-server.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { parseMysqlUrl } from '../../src/services/common/mysql-url.js';
import {
  type ServiceConfig,
  type StorageConfig,
  serviceSettings,
} from '../../src/services/common/service-config.js';
import { type RunningService, startService } from '../../src/services/common/start-service.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { membersService } from '../../src/services/members/members-service.js';
import { raw, rawBody } from '../helpers/http.js';
import { captureLog } from '../helpers/log-capture.js';
import { createTestDatabase, type TestDatabase } from '../helpers/mysql.js';
import { goodsNode } from '../helpers/nodes.js';
import { sample, scrape } from '../helpers/prometheus.js';
import { freePort, spawnComponent } from './support/processes.js';
import { servingCount } from './support/shop.js';

/** The settings goods's admin port is named by when it cannot listen. */
const GOODS_ADMIN_SETTINGS = {
  port: serviceSettings(goodsService).metricsPort,
  host: serviceSettings(goodsService).host,
};
/** goods's admin port on a registry of its own, as a goods process starts it. */
const startGoodsAdmin = (
  options: Omit<AdminServerOptions, 'settings' | 'registry'>,
): Promise<AdminServer | undefined> =>
  startAdminServer({ settings: GOODS_ADMIN_SETTINGS, registry: createMetricsRegistry(), ...options });

const WITH_ADMIN_PORT = observabilityConfig({ metrics: 'on', requestIds: 'on', metricsPort: 0 });

/** The goods and members services with their admin ports, behind a gateway, on one store. */
async function startServices(storage: StorageConfig) {
  const distributor = createDistributorServer();
  const address = `127.0.0.1:${await distributor.listen('127.0.0.1', 0)}`;
  const config: ServiceConfig = {
    host: '127.0.0.1',
    port: 0,
    distributor: address,
    advertiseHost: '127.0.0.1',
    storage,
    logLevel: 'silent',
    observability: WITH_ADMIN_PORT,
  };
  const options = { graceMs: 500, drainNoticeMs: 100, registrationBackoff: { initialMs: 20, maxMs: 200 } };
  const goods = await startService(goodsService, config, options);
  const members = await startService(membersService, config, options);
  const gateway = createGateway({ distributor: address, registrationBackoff: { initialMs: 20, maxMs: 200 } });
  const url = `http://127.0.0.1:${await gateway.listen('127.0.0.1', 0)}`;
  await vi.waitFor(
    () => {
      expect(servingCount(gateway, 'GET', '/goods')).toBe(1);
      expect(servingCount(gateway, 'GET', '/members')).toBe(1);
    },
    { timeout: 10_000 },
  );
  // Each service answers once its first database probe succeeded.
  await vi.waitFor(async () => expect((await fetch(`${url}/goods`)).status).toBe(200), { timeout: 10_000 });
  return {
    url,
    goods,
    members,
    async stop() {
      await gateway.stop();
      await goods.stop();
      await members.stop();
      await distributor.stop(100);
    },
  };
}

const metricsOf = (service: RunningService): Promise<string> =>
  scrape(`http://127.0.0.1:${service.metricsPort}/metrics`);

describe('each service serves /metrics on its admin port', () => {
  let dataDir: string;
  let shop: Awaited<ReturnType<typeof startServices>>;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'shop-metrics-'));
    shop = await startServices({ kind: 'sqlite', dataDir });
  });
  afterAll(async () => {
    await shop?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('counts and times calls by method and code, and the database time of each operation', async () => {
    const post = (body: object) =>
      fetch(`${shop.url}/goods`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    await post({ name: 'pen', category: 'office', price: 3, description: 'blue' });
    await post({ name: 'no price' });
    await fetch(`${shop.url}/goods`);
    const text = await metricsOf(shop.goods);
    const create = { grpc_service: 'shop.v1.GoodsService', grpc_method: 'CreateGoods', grpc_type: 'unary' };
    expect(sample(text, 'grpc_server_handled_total', { ...create, grpc_code: 'OK' })).toBe(1);
    expect(sample(text, 'grpc_server_handled_total', { ...create, grpc_code: 'InvalidArgument' })).toBe(1);
    expect(sample(text, 'grpc_server_started_total', create)).toBe(2);
    expect(sample(text, 'grpc_server_handling_seconds_count', create)).toBe(2);
    expect(sample(text, 'grpc_server_handling_seconds_bucket', { ...create, le: '+Inf' })).toBe(2);
    // An empty list is the book's "no data": NOT_FOUND on gRPC, counted apart from the list that had a row.
    const list = { grpc_method: 'ListGoods' };
    expect(sample(text, 'grpc_server_handled_total', { ...list, grpc_code: 'OK' })).toBe(1);
    expect(
      sample(text, 'grpc_server_handled_total', { ...list, grpc_code: 'NotFound' }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      sample(text, 'db_client_operation_duration_seconds_count', {
        db_system_name: 'sqlite',
        db_operation_name: 'INSERT',
        db_collection_name: 'goods',
      }),
    ).toBe(1);
    expect(
      sample(text, 'db_client_operation_duration_seconds_count', {
        db_system_name: 'sqlite',
        db_operation_name: 'SELECT',
        db_collection_name: 'goods',
      }),
    ).toBeGreaterThanOrEqual(1);
    // The health probe (SELECT 1, every few seconds) is nobody's wait: it is not timed.
    expect(text).not.toMatch(/db_client_operation_duration_seconds_count\{[^}]*db_collection_name=""/);
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(sample(text, 'nodejs_eventloop_lag_p99_seconds')).toBeDefined();
  });

  it('reports the password-hash queue of the members service', async () => {
    const text = await metricsOf(shop.members);
    expect(sample(text, 'shop_password_hash_queue_depth')).toBe(0);
    // The bound on calls in flight: the scrape's own calls are over.
    expect(sample(text, 'shop_calls_in_flight')).toBe(0);
    expect(sample(text, 'shop_calls_waiting')).toBe(0);
    expect(sample(text, 'shop_password_hash_running')).toBe(0);
    // The members service counts only its own calls: a registry per instance, none shared.
    expect(text).not.toContain('CreateGoods');
  });

  it("reports the members service's throttle of failed sign-ins", async () => {
    const before = await metricsOf(shop.members);
    expect(sample(before, 'shop_sign_in_throttled_total')).toBe(0);
    expect(sample(before, 'shop_sign_in_failing_accounts')).toBe(0);
    const checked = (text: string, outcome: string): number => {
      const value = sample(text, 'shop_sign_in_checks_total', { outcome });
      expect(value, outcome).toBeTypeOf('number');
      return value!;
    };
    const [failedBefore, succeededBefore] = [checked(before, 'failed'), checked(before, 'succeeded')];
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 7; attempt++) {
      const answer = await fetch(`${shop.url}/members?username=metrics-guessed&password=guess${attempt}`);
      await answer.text();
      statuses.push(answer.status);
    }
    // Six checked, then refused for the first wait (1 s).
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429]);
    const text = await metricsOf(shop.members);
    expect(sample(text, 'shop_sign_in_throttled_total')).toBe(1);
    expect(sample(text, 'shop_sign_in_failing_accounts')).toBe(1);
    const refused = { grpc_method: 'SignIn', grpc_code: 'ResourceExhausted' };
    expect(sample(text, 'grpc_server_handled_total', refused)).toBe(1);
    // Six passwords checked and failed; the refused one was not checked.
    expect(checked(text, 'failed') - failedBefore).toBe(6);
    expect(checked(text, 'succeeded')).toBe(succeededBefore);
    const created = await fetch(`${shop.url}/members`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: 'metrics-owner', password: 'owner-password-1' }),
    });
    expect(created.status).toBe(200);
    const signedIn = await fetch(`${shop.url}/members?username=metrics-owner&password=owner-password-1`);
    expect(JSON.parse(await signedIn.text()).errorcode).toBe(0);
    const after = await metricsOf(shop.members);
    expect(checked(after, 'succeeded') - succeededBefore).toBe(1);
    expect(checked(after, 'failed') - failedBefore).toBe(6);
  });

  it('answers 404 for any other path, and 405 with Allow for another method on /metrics', async () => {
    const base = `http://127.0.0.1:${shop.goods.metricsPort}`;
    const elsewhere = await fetch(`${base}/`);
    expect(elsewhere.status).toBe(404);
    await elsewhere.text();
    const posted = await fetch(`${base}/metrics`, { method: 'POST' });
    expect([posted.status, posted.headers.get('allow')]).toEqual([405, 'GET, HEAD, OPTIONS']);
    await posted.text();
    const options = await fetch(`${base}/metrics`, { method: 'OPTIONS' });
    expect([options.status, options.headers.get('allow')]).toEqual([204, 'GET, HEAD, OPTIONS']);
  });
});

const mysqlUrl = inject('mysqlUrl');

describe.runIf(mysqlUrl !== '')('a service on MySQL reports its connection pool', () => {
  let database: TestDatabase;
  let shop: Awaited<ReturnType<typeof startServices>>;

  beforeAll(async () => {
    database = await createTestDatabase(mysqlUrl);
    shop = await startServices({ kind: 'mysql', connection: parseMysqlUrl(database.url, 'test database') });
  });
  afterAll(async () => {
    await shop?.stop();
    await database?.drop();
  });

  it('shows connections used and idle, callers waiting, the pool size, and query time', async () => {
    await fetch(`${shop.url}/goods`);
    const text = await metricsOf(shop.goods);
    const mysql = { db_system_name: 'mysql' };
    expect(sample(text, 'db_client_connection_count', { ...mysql, state: 'used' })).toBe(0);
    expect(sample(text, 'db_client_connection_count', { ...mysql, state: 'idle' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'db_client_connection_pending_requests', mysql)).toBe(0);
    // The calls' 10 and the health probe's own one.
    expect(sample(text, 'db_client_connection_max', mysql)).toBe(11);
    expect(
      sample(text, 'db_client_operation_duration_seconds_count', {
        ...mysql,
        db_operation_name: 'SELECT',
        db_collection_name: 'goods',
      }),
    ).toBeGreaterThanOrEqual(1);
  });
});

describe('the distributor process serves its registry on --metrics-port', () => {
  let distributor: ReturnType<typeof spawnComponent>;
  let metricsUrl: string;
  let address: string;

  beforeAll(async () => {
    distributor = spawnComponent('src/distributor/main.ts', ['--port', '0', '--insecure-open-registry'], {
      DISTRIBUTOR_METRICS_PORT: '',
    });
    const listening = await distributor.waitForLine(/"msg":"listening on/);
    address = `127.0.0.1:${JSON.parse(listening).port}`;
    // With --port 0 the metrics port is any free one too; the line says which.
    const metrics = JSON.parse(await distributor.waitForLine(/"event":"metrics"/));
    metricsUrl = `http://127.0.0.1:${metrics.port}/metrics`;
  });
  afterAll(async () => {
    distributor.child.kill('SIGTERM');
    await distributor.exited();
  });

  it('counts nodes by name and state, the revision and the open streams', async () => {
    const registration = new RegistrationClient({ distributor: address, node: goodsNode({ port: 4242 }) });
    const registered = new Promise((resolve) => registration.once('registered', resolve));
    registration.start();
    try {
      await registered;
      const text = await scrape(metricsUrl);
      expect(sample(text, 'shop_registry_nodes', { name: 'goods', state: 'serving' })).toBe(1);
      expect(sample(text, 'shop_registry_revision')).toBe(1);
      expect(sample(text, 'shop_registry_open_streams')).toBe(1);
      expect(sample(text, 'shop_registry_list_bytes')).toBeGreaterThan(0);
      expect(sample(text, 'shop_registry_streams_waiting')).toBe(0);
      expect(sample(text, 'shop_registry_flooding_connections_closed_total')).toBe(0);
      expect(
        sample(text, 'grpc_server_started_total', { grpc_method: 'Register', grpc_type: 'bidi_stream' }),
      ).toBe(1);
      expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    } finally {
      await registration.stop();
    }
    await vi.waitFor(async () => {
      const text = await scrape(metricsUrl);
      // Gone, its name stays at 0 (an alert on no serving goods sees 0, not a series that vanished).
      expect(sample(text, 'shop_registry_nodes', { name: 'goods', state: 'serving' })).toBe(0);
      expect(sample(text, 'shop_registry_nodes', { name: 'goods', state: 'draining' })).toBe(0);
      expect(sample(text, 'shop_registry_open_streams')).toBe(0);
      expect(sample(text, 'grpc_server_handled_total', { grpc_method: 'Register', grpc_code: 'OK' })).toBe(1);
    });
  });
});

describe('the admin port', () => {
  let taken: Server;
  let takenPort: number;

  beforeAll(async () => {
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    takenPort = (taken.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => taken.close(() => resolve())));

  it('stops the start when a port asked for is taken', async () => {
    const { log } = captureLog('goods');
    await expect(
      startGoodsAdmin({
        host: '127.0.0.1',
        port: takenPort,
        log,
        required: true,
      }),
    ).rejects.toThrow(
      /^cannot listen on 127\.0\.0\.1:\d+: the port is in use .*; stop it, or choose another port with --metrics-port \(GOODS_METRICS_PORT\)$/,
    );
  });

  it('stops a service whose metrics port asked for is taken, and lets its gRPC port and its store go', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'shop-metrics-taken-'));
    // A free port of its own, to bind again once the start has failed.
    const grpcPort = await freePort();
    try {
      const start = startService(goodsService, {
        host: '127.0.0.1',
        port: grpcPort,
        // Never reached: the start stops before it registers.
        distributor: '127.0.0.1:1',
        advertiseHost: '127.0.0.1',
        storage: { kind: 'sqlite', dataDir },
        logLevel: 'silent',
        observability: observabilityConfig({ metrics: 'on', requestIds: 'on', metricsPort: takenPort }),
      });
      await expect(start).rejects.toThrow(/--metrics-port \(GOODS_METRICS_PORT\)/);
      const openUnderDataDir = readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(join('/proc/self/fd', fd)).startsWith(dataDir);
        } catch {
          return false; // closed since it was listed
        }
      });
      expect(openUnderDataDir).toEqual([]);
      const again = createServer();
      await new Promise<void>((resolve, reject) => {
        again.once('error', reject);
        again.listen(grpcPort, '127.0.0.1', resolve);
      });
      await new Promise<void>((resolve) => again.close(() => resolve()));
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('is refused as bad configuration (exit 2) when a port asked for needs privileges, as --port is', async () => {
    const { log } = captureLog('goods');
    const denied = Object.assign(new Error('listen EACCES: permission denied 127.0.0.1:80'), {
      code: 'EACCES',
    });
    const listen = vi.spyOn(Server.prototype, 'listen').mockImplementationOnce(function (this: Server) {
      process.nextTick(() => this.emit('error', denied));
      return this;
    });
    try {
      const start = startGoodsAdmin({
        host: '127.0.0.1',
        port: 80,
        log,
        required: true,
      });
      await expect(start).rejects.toThrow(ConfigError);
      await expect(start).rejects.toThrow(/--metrics-port \(GOODS_METRICS_PORT\)/);
    } finally {
      listen.mockRestore();
    }
  });

  // Seen across hosts: a distributor restarted in place started while the old one still stopped,
  // which had closed its gRPC port but not yet its metrics port; the new one served no metrics for
  // the rest of its life, with one warning.
  it('takes a derived port that was taken once it is free, and says so', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as { port: number }).port;
    const { log, lines } = captureLog('goods');
    const admin = await startGoodsAdmin({
      host: '127.0.0.1',
      port,
      log,
      required: false,
      portRetryMs: 50,
    });
    try {
      expect(admin?.port).toBe(port);
      expect(lines.find((entry) => entry.event === 'metrics-port')?.msg).toMatch(
        new RegExp(
          `^metrics port ${port} is not free: serving no metrics until it is, trying again every 50 ms`,
        ),
      );
      await new Promise((resolve) => holder.close(resolve));
      await vi.waitFor(
        async () => {
          // Answered 200 (scrape throws on anything else) by this server, the holder being gone.
          await scrape(`http://127.0.0.1:${port}/metrics`);
        },
        { timeout: 5_000, interval: 50 },
      );
      expect(lines.find((entry) => entry.event === 'metrics')?.msg).toBe(
        `metrics on http://127.0.0.1:${port}/metrics`,
      );
    } finally {
      await admin?.stop();
      if (holder.listening) await new Promise((resolve) => holder.close(resolve));
    }
  });

  it('leaves the port free when it stops while a try to bind it is under way', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as { port: number }).port;
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const admin = await startGoodsAdmin({
        host: '127.0.0.1',
        port,
        log: captureLog('goods').log,
        required: false,
        portRetryMs: 1_000,
      });
      await new Promise((resolve) => holder.close(resolve));
      // The try begins (its listen binds after a look-up, a turn later) and the stop comes at once.
      vi.advanceTimersByTime(1_000);
      await admin?.stop();
    } finally {
      vi.useRealTimers();
      if (holder.listening) await new Promise((resolve) => holder.close(resolve));
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Free: nothing of the stopped server holds it.
    const probe = createServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(port, '127.0.0.1', resolve);
    });
    await new Promise((resolve) => probe.close(resolve));
  });

  it('names where it serves as a URL one can open, an IPv6 host in brackets', async () => {
    const { log, lines } = captureLog('goods');
    const admin = await startGoodsAdmin({
      host: '::1',
      port: 0,
      log,
      required: true,
    });
    try {
      const line = lines.find((entry) => entry.event === 'metrics');
      expect(line?.msg).toBe(`metrics on http://[::1]:${admin!.port}/metrics`);
    } finally {
      await admin?.stop();
    }
  });

  /** Whether a TCP connection to host:port is refused. */
  const refused = (host: string, port: number): Promise<boolean> =>
    new Promise((resolve) => {
      const socket = connect(port, host);
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => resolve(true));
    });

  // A --host name resolving to two addresses of this machine (localhost where it names 127.0.0.1
  // and ::1, a machine's name on two interfaces): the gRPC port was bound on both, the admin port
  // on the first alone, and a Prometheus scraping the other failed.
  it('listens on every address a host name resolves to, on one port, warns of those it cannot bind, and closes them all', async () => {
    const { log, lines } = captureLog('goods');
    const admin = await startGoodsAdmin({
      host: 'metrics.shop.test',
      port: 0,
      log,
      required: true,
      // The last is no address of this machine (TEST-NET-1).
      lookup: async () => ['127.0.0.1', '127.0.0.2', '127.0.0.1', '192.0.2.1'],
    });
    try {
      const port = admin!.port;
      await scrape(`http://127.0.0.1:${port}/metrics`);
      await scrape(`http://127.0.0.2:${port}/metrics`);
      expect(lines.find((entry) => entry.event === 'metrics')).toMatchObject({
        host: 'metrics.shop.test',
        port,
        addresses: ['127.0.0.1', '127.0.0.2'],
        msg: `metrics on http://metrics.shop.test:${port}/metrics`,
      });
      expect(lines.find((entry) => entry.event === 'metrics-unbound-address')).toMatchObject({
        level: 40,
        host: 'metrics.shop.test',
        port,
        bound: ['127.0.0.1', '127.0.0.2'],
        unbound: ['192.0.2.1'],
      });
    } finally {
      await admin?.stop();
    }
    expect(await refused('127.0.0.1', admin!.port)).toBe(true);
    expect(await refused('127.0.0.2', admin!.port)).toBe(true);
  });

  it('listens on the addresses its gRPC port is bound on, without looking the name up a second time', async () => {
    const { log, lines } = captureLog('goods');
    const lookup = vi.fn(async (): Promise<string[]> => {
      throw Object.assign(new Error('getaddrinfo EAI_AGAIN metrics.shop.test'), { code: 'EAI_AGAIN' });
    });
    const admin = await startGoodsAdmin({
      host: 'metrics.shop.test',
      addresses: ['127.0.0.2', '127.0.0.1', '127.0.0.2'],
      port: 0,
      log,
      required: true,
      lookup,
    });
    try {
      await scrape(`http://127.0.0.1:${admin!.port}/metrics`);
      await scrape(`http://127.0.0.2:${admin!.port}/metrics`);
      expect(lines.find((entry) => entry.event === 'metrics')).toMatchObject({
        addresses: ['127.0.0.2', '127.0.0.1'],
      });
      expect(lookup).not.toHaveBeenCalled();
    } finally {
      await admin?.stop();
    }
  });

  it("says of an address of its gRPC port's that it could not bind that the port is taken there, not that the name resolves to it", async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.2', resolve));
    const port = (holder.address() as { port: number }).port;
    const { log, lines } = captureLog('goods');
    const admin = await startGoodsAdmin({
      host: 'metrics.shop.test',
      addresses: ['127.0.0.1', '127.0.0.2'],
      port,
      log,
      required: false,
      portRetryMs: 60_000,
      // The name also names another machine's address, which the gRPC port did not bind.
      lookup: async () => ['127.0.0.1', '127.0.0.2', '192.0.2.7'],
    });
    try {
      expect(lines.find((entry) => entry.event === 'metrics-unbound-address')?.msg).toBe(
        `metrics port: the gRPC port of metrics.shop.test is bound on 127.0.0.1, 127.0.0.2: listening on 127.0.0.1:${port} only, ` +
          `not on 127.0.0.2 (port ${port} taken there); trying 127.0.0.2 again every 60000 ms`,
      );
    } finally {
      await admin?.stop();
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  // The name failing to resolve (a DNS server that does not answer) was told as a port that
  // cannot be bound, with the advice to choose another port, which would fail the same way.
  it('says that its host name did not resolve, naming neither the port as the cause nor another port as the cure', async () => {
    const { log, lines } = captureLog('goods');
    const admin = await startGoodsAdmin({
      host: 'metrics.shop.test',
      port: 9_100,
      log,
      required: false,
      lookup: async () => {
        throw new Error('getaddrinfo EAI_AGAIN metrics.shop.test');
      },
    });
    expect(admin).toBeUndefined();
    const warning = lines.find((entry) => entry.event === 'metrics-port');
    expect(warning).toMatchObject({
      level: 40,
      host: 'metrics.shop.test',
      msg: 'metrics port 9100: metrics.shop.test did not resolve (getaddrinfo EAI_AGAIN metrics.shop.test): serving no metrics',
    });
  });

  it('with port 0 on a host name of several addresses, picks again when the port is taken on one', async () => {
    const { log, lines } = captureLog('goods');
    const listen = Server.prototype.listen;
    let takenOnce = false;
    // The port the first address got is taken on the second, once.
    const spy = vi.spyOn(Server.prototype, 'listen').mockImplementation(function (this: Server, ...args) {
      const [options] = args as [{ host?: string; port?: number }];
      if (!takenOnce && options?.host === '127.0.0.2' && options.port !== 0) {
        takenOnce = true;
        const taken = Object.assign(
          new Error(`listen EADDRINUSE: address already in use 127.0.0.2:${options.port}`),
          {
            code: 'EADDRINUSE',
          },
        );
        process.nextTick(() => this.emit('error', taken));
        return this;
      }
      return listen.apply(this, args as Parameters<Server['listen']>);
    });
    let admin: AdminServer | undefined;
    try {
      admin = await startGoodsAdmin({
        host: 'metrics.shop.test',
        port: 0,
        log,
        required: true,
        lookup: async () => ['127.0.0.1', '127.0.0.2'],
      });
    } finally {
      spy.mockRestore();
    }
    try {
      expect(takenOnce).toBe(true);
      await scrape(`http://127.0.0.1:${admin!.port}/metrics`);
      await scrape(`http://127.0.0.2:${admin!.port}/metrics`);
      expect(lines.filter((entry) => entry.level === 40)).toEqual([]);
    } finally {
      await admin?.stop();
    }
  });

  it('takes a derived port taken on one address of a host name there once it is free', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.2', resolve));
    const port = (holder.address() as { port: number }).port;
    const { log, lines } = captureLog('goods');
    const admin = await startGoodsAdmin({
      host: 'metrics.shop.test',
      port,
      log,
      required: false,
      portRetryMs: 50,
      lookup: async () => ['127.0.0.1', '127.0.0.2'],
    });
    try {
      expect(admin?.port).toBe(port);
      await scrape(`http://127.0.0.1:${port}/metrics`);
      expect(lines.find((entry) => entry.event === 'metrics-unbound-address')).toMatchObject({
        bound: ['127.0.0.1'],
        unbound: ['127.0.0.2'],
        retryInMs: 50,
      });
      await new Promise((resolve) => holder.close(resolve));
      await vi.waitFor(() => scrape(`http://127.0.0.2:${port}/metrics`), { timeout: 5_000, interval: 50 });
      expect(lines.find((entry) => entry.event === 'metrics' && entry.address === '127.0.0.2')?.msg).toBe(
        `metrics on http://127.0.0.2:${port}/metrics too`,
      );
    } finally {
      await admin?.stop();
      if (holder.listening) await new Promise((resolve) => holder.close(resolve));
    }
  });

  it('only warns when the port derived from --port is taken', async () => {
    const { log, lines } = captureLog('goods');
    const admin = await startGoodsAdmin({
      host: '127.0.0.1',
      port: takenPort,
      log,
      required: false,
    });
    try {
      expect(admin?.port).toBe(takenPort);
      expect(lines).toEqual([expect.objectContaining({ level: 40, event: 'metrics-port', port: takenPort })]);
    } finally {
      await admin?.stop();
    }
  });

  /** An admin server on a free port whose connections may stay silent `idleTimeoutMs`, and its log. */
  async function boundedAdmin(
    idleTimeoutMs: number | undefined,
    {
      registry = createMetricsRegistry(),
      maxConnections,
    }: { registry?: Registry; maxConnections?: number } = {},
  ): Promise<AdminServer & { lines: Array<Record<string, unknown>> }> {
    const { log, lines } = captureLog('goods');
    const admin = await startAdminServer({
      settings: GOODS_ADMIN_SETTINGS,
      registry,
      host: '127.0.0.1',
      port: 0,
      log,
      required: true,
      ...(idleTimeoutMs === undefined ? {} : { idleTimeoutMs }),
      ...(maxConnections === undefined ? {} : { maxConnections }),
    });
    return Object.assign(admin!, { lines });
  }

  /** A connection to `port`, and whether the server has closed it yet. */
  async function openSocket(port: number): Promise<{ socket: Socket; closed: () => boolean }> {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    let closed = false;
    socket.on('close', () => {
      closed = true;
    });
    socket.resume();
    await new Promise((resolve) => socket.once('connect', resolve));
    return { socket, closed: () => closed };
  }

  it('closes a connection that sends nothing, and one whose request trickles in, after its idle timeout', async () => {
    const admin = await boundedAdmin(400);
    try {
      const silent = await openSocket(admin.port);
      const trickling = await openSocket(admin.port);
      trickling.socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
      // A byte every 100 ms: never idle for long, but the request never ends.
      const drip = setInterval(() => trickling.socket.write('X'), 100);
      try {
        await vi.waitFor(() => expect([silent.closed(), trickling.closed()]).toEqual([true, true]), {
          timeout: 3_000,
          interval: 50,
        });
      } finally {
        clearInterval(drip);
      }
      const metrics = await fetch(`http://127.0.0.1:${admin.port}/metrics`);
      expect(metrics.status).toBe(200);
    } finally {
      await admin.stop();
    }
  });

  it('closes a connection whose client stops reading an answer too large for the sockets, after its idle timeout', async () => {
    const registry = createMetricsRegistry();
    // About 8 MB of text: more than the kernel buffers of a loopback connection hold.
    const wide = new Gauge({
      name: 'test_wide',
      help: 'a page of megabytes',
      labelNames: ['long'],
      registers: [registry],
    });
    for (let index = 0; index < 8_000; index++) wide.set({ long: `${index}-${'x'.repeat(1_000)}` }, index);
    const admin = await boundedAdmin(400, { registry, maxConnections: 1 });
    const stalled = connect(admin.port, '127.0.0.1');
    stalled.on('error', () => {});
    try {
      await new Promise((resolve) => stalled.once('connect', resolve));
      stalled.pause();
      stalled.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
      // The one connection the port takes is the stalled one, until its idle timeout frees it.
      await vi.waitFor(
        async () => {
          const metrics = await fetch(`http://127.0.0.1:${admin.port}/metrics`, {
            signal: AbortSignal.timeout(2_000),
          });
          expect(metrics.status).toBe(200);
          await metrics.arrayBuffer();
        },
        { timeout: 5_000, interval: 200 },
      );
    } finally {
      stalled.destroy();
      await admin.stop();
    }
  });

  it(`holds at most ${ADMIN_MAX_CONNECTIONS} connections: past them a new one is closed at once, so silent sockets cannot take the process's open files`, async () => {
    const admin = await boundedAdmin(1_500);
    const sockets: Array<{ socket: Socket; closed: () => boolean }> = [];
    try {
      for (let index = 0; index < ADMIN_MAX_CONNECTIONS + 8; index++)
        sockets.push(await openSocket(admin.port));
      await vi.waitFor(() => expect(sockets.filter((entry) => entry.closed())).toHaveLength(8), {
        timeout: 1_000,
        interval: 20,
      });
      // The first ones are held until their idle timeout, then the port serves again.
      expect(sockets.slice(0, ADMIN_MAX_CONNECTIONS).some((entry) => entry.closed())).toBe(false);
      // Said once, not once per connection closed.
      expect(admin.lines.filter((line) => line.event === 'metrics-connection-refused')).toEqual([
        expect.objectContaining({ level: 40, maxConnections: ADMIN_MAX_CONNECTIONS }),
      ]);
      await vi.waitFor(() => expect(sockets.every((entry) => entry.closed())).toBe(true), {
        timeout: 5_000,
        interval: 50,
      });
      const metrics = await fetch(`http://127.0.0.1:${admin.port}/metrics`);
      expect(metrics.status).toBe(200);
    } finally {
      for (const { socket } of sockets) socket.destroy();
      await admin.stop();
    }
  });

  // A --host name that also names an address of no interface here (or ::1 where IPv6 is off): that
  // address's share of the connections was kept for it, and the address listened on had half.
  it('shares the connections out between the addresses it listens on, not those it cannot bind', async () => {
    const { log, lines } = captureLog('goods');
    const admin = await startGoodsAdmin({
      host: 'metrics.shop.test',
      port: 0,
      log,
      required: true,
      maxConnections: 4,
      lookup: async () => ['127.0.0.1', '192.0.2.1'],
    });
    const sockets: Array<{ socket: Socket; closed: () => boolean }> = [];
    try {
      for (let index = 0; index < 3; index++) sockets.push(await openSocket(admin!.port));
      const metrics = await fetch(`http://127.0.0.1:${admin!.port}/metrics`, {
        signal: AbortSignal.timeout(2_000),
      });
      expect(metrics.status).toBe(200);
      expect(sockets.filter((entry) => entry.closed())).toHaveLength(0);
      expect(lines.filter((line) => line.event === 'metrics-connection-refused')).toEqual([]);
    } finally {
      for (const { socket } of sockets) socket.destroy();
      await admin?.stop();
    }
  });

  it(`answers at most ${ADMIN_MAX_PIPELINED} pipelined requests of a connection, then 503 and closes it, and stays responsive`, async () => {
    const registry = createMetricsRegistry();
    let renders = 0;
    new Gauge({
      name: 'test_renders',
      help: 'renders of the registry',
      registers: [registry],
      collect() {
        renders++;
        this.set(renders);
      },
    });
    const admin = await boundedAdmin(undefined, { registry });
    const socket = connect(admin.port, '127.0.0.1');
    socket.on('error', () => {});
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    try {
      await new Promise((resolve) => socket.once('connect', resolve));
      // One client, one connection, 2,000 scrapes written at once.
      socket.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.repeat(2_000));
      await closed;
      const statuses = received.match(/^HTTP\/1\.1 \d+/gm) ?? [];
      expect(statuses).toEqual([...Array(ADMIN_MAX_PIPELINED).fill('HTTP/1.1 200'), 'HTTP/1.1 503']);
      // Rendered at most once per answer, not once per request written.
      expect(renders).toBeLessThanOrEqual(ADMIN_MAX_PIPELINED);
      expect(admin.lines.filter((line) => line.event === 'metrics-pipelining-refused')).toEqual([
        expect.objectContaining({ level: 40, maxPipelined: ADMIN_MAX_PIPELINED }),
      ]);
      const metrics = await fetch(`http://127.0.0.1:${admin.port}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain('test_renders');
    } finally {
      socket.destroy();
      await admin.stop();
    }
  });

  it('warns at start when --metrics-allowed-hosts is given to a component that serves no metrics', async () => {
    const distributor = spawnComponent(
      'src/distributor/main.ts',
      ['--port', '0', '--insecure-open-registry'],
      {
        METRICS: 'off',
        DISTRIBUTOR_METRICS_ALLOWED_HOSTS: 'prometheus.internal',
      },
    );
    try {
      const line = JSON.parse(await distributor.waitForLine(/"event":"metrics-allowed-hosts-unused"/));
      expect(line).toMatchObject({
        level: 40,
        msg: '--metrics-allowed-hosts (DISTRIBUTOR_METRICS_ALLOWED_HOSTS) lists prometheus.internal but this component serves no metrics (METRICS=off turns metrics off): the list has no effect',
      });
      const address = `127.0.0.1:${JSON.parse(await distributor.waitForLine(/"msg":"listening on/)).port}`;
      const dataDir = mkdtempSync(join(tmpdir(), 'shop-metrics-hosts-'));
      const { log, lines } = captureLog('goods');
      const goods = await startService(
        goodsService,
        {
          host: '127.0.0.1',
          port: 0,
          distributor: address,
          advertiseHost: '127.0.0.1',
          storage: { kind: 'sqlite', dataDir },
          logLevel: 'info',
          observability: observabilityConfig({
            metrics: 'on',
            requestIds: 'on',
            metricsPort: 'off',
            metricsAllowedHosts: ['prometheus.internal'],
          }),
        },
        { log, graceMs: 100, drainNoticeMs: 0 },
      );
      try {
        expect(lines.filter((entry) => entry.event === 'metrics-allowed-hosts-unused')).toEqual([
          expect.objectContaining({
            level: 40,
            msg: expect.stringContaining('but this component serves no metrics (--metrics-port is off)'),
          }),
        ]);
        expect(goods.metricsPort).toBeUndefined();
      } finally {
        await goods.stop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    } finally {
      distributor.child.kill('SIGTERM');
      await distributor.exited();
    }
  });

  it('answers 421 a Host it is not known by (DNS rebinding), logged once, and IP addresses, localhost, its host name and --metrics-allowed-hosts', async () => {
    const admin = await boundedAdmin(undefined);
    const { log } = captureLog('goods');
    const allowing = (await startGoodsAdmin({
      host: '127.0.0.1',
      port: 0,
      log,
      required: true,
      allowedHosts: ['goods.internal'],
      allowedHostsSetting: serviceSettings(goodsService).metricsAllowedHosts,
    }))!;
    try {
      const get = (port: number, host: string, headers = '') =>
        raw(port, `GET /metrics HTTP/1.1\r\nHost: ${host}\r\n${headers}Connection: close\r\n\r\n`);
      // A scraper's request, and a rebinding page's (over plain HTTP a same-origin GET carries neither
      // Sec-Fetch-Site nor Origin: Host alone tells them apart), on every path.
      for (const [host, headers] of [
        ['rebound.test', ''],
        [`rebound.test:${admin.port}`, 'Sec-Fetch-Site: same-origin\r\n'],
        ['goods.internal:9110', ''],
      ]) {
        const answer = await get(admin.port, host!, headers);
        expect(answer, host).toMatch(/^HTTP\/1\.1 421 /);
        expect(rawBody(answer), host).toMatch(/misdirected request: .*DNS rebinding/);
      }
      expect(
        await raw(admin.port, 'GET /nope HTTP/1.1\r\nHost: rebound.test\r\nConnection: close\r\n\r\n'),
      ).toMatch(/^HTTP\/1\.1 421 /);
      // Two hosts, one of them allowed: which one a proxy in front judged cannot be known.
      for (const hosts of [
        'Host: 127.0.0.1\r\nHost: rebound.test\r\n',
        'Host: 127.0.0.1, rebound.test\r\n',
      ]) {
        const answer = await raw(admin.port, `GET /metrics HTTP/1.1\r\n${hosts}Connection: close\r\n\r\n`);
        expect(answer, hosts).toMatch(/^HTTP\/1\.1 400 /);
        expect(rawBody(answer)).toContain('bad request: more than one Host\n');
      }
      for (const host of [
        `127.0.0.1:${admin.port}`,
        `localhost:${admin.port}`,
        `[::1]:${admin.port}`,
        hostname(),
      ]) {
        expect(await get(admin.port, host, 'Sec-Fetch-Site: same-origin\r\n'), host).toMatch(
          /^HTTP\/1\.1 200 /,
        );
      }
      expect(admin.lines.filter((line) => line.event === 'metrics-host-refused')).toEqual([
        expect.objectContaining({
          level: 40,
          host: 'rebound.test',
          msg: expect.stringContaining('--metrics-allowed-hosts'),
        }),
      ]);
      // The names given, and the setting named by its variable.
      expect(await get(allowing.port, 'goods.internal:9110')).toMatch(/^HTTP\/1\.1 200 /);
      // The --host name it listens on.
      const named = (await startGoodsAdmin({
        host: 'metrics.goods.test',
        port: 0,
        log,
        required: true,
        lookup: async () => ['127.0.0.1'],
      }))!;
      try {
        expect(await get(named.port, `metrics.goods.test:${named.port}`)).toMatch(/^HTTP\/1\.1 200 /);
        expect(await get(named.port, 'rebound.test')).toMatch(/^HTTP\/1\.1 421 /);
      } finally {
        await named.stop();
      }
      expect(rawBody(await get(allowing.port, 'rebound.test'))).toContain(
        'add the name to --metrics-allowed-hosts (GOODS_METRICS_ALLOWED_HOSTS)',
      );
    } finally {
      await admin.stop();
      await allowing.stop();
    }
  });
});
