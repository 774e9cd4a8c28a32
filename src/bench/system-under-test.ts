import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ChannelCredentials, type ChannelOptions, Metadata } from '@grpc/grpc-js';
import { createConnection } from 'mysql2/promise';
import { COMPONENTS, makeDevPki } from '../../scripts/certs.mjs';
import { REGISTRY_TOKEN_ENV } from '../common/common-settings.js';
import { channelOptionsFor } from '../common/proxy-choice.js';
import { channelCredentials, secureNamingChannelOptions, type TlsFilePaths } from '../common/tls.js';
import { DistributorServiceClient, type Node } from '../gen/distributor.js';
import { componentEnv as allocatorEnv, COMPONENT_NODE_FLAGS } from '../launcher/node-flags.js';
import { type ComponentSpec, Supervisor } from '../launcher/supervisor.js';
import { parseMysqlUrl } from '../services/common/mysql-url.js';
import type { GoodsTable } from './bulk-goods.js';
import { cpuSeconds, freePort, residentMiB } from './process-probes.js';

/** How the shop is started for a benchmark. */
export interface SystemOptions {
  /** Where every component's output lines go. */
  logFile: string;
  /**
   * Mutual TLS on every internal gRPC hop (registration, Watch/List, gateway → services), from a
   * throwaway CA made for this run; the gateway's REST side stays plain HTTP, so the load
   * generator is the same as without TLS. Off: plaintext, with the registration token only.
   */
  tls: boolean;
  /**
   * With `tls`: a second gateway whose REST side serves HTTPS (the gateway's certificate, no client
   * certificates asked for), at `httpsGatewayUrl`. Idle unless a case calls it.
   */
  httpsGateway?: boolean;
  /** More variables for every component, e.g. METRICS=off, or OTEL_* to trace (see observability-cost.ts). */
  env?: NodeJS.ProcessEnv;
}

/** The credentials and channel options of a gRPC client, which go together. */
export interface DialOptions {
  readonly credentials: ChannelCredentials;
  readonly options: ChannelOptions;
}

/** The whole shop started as separate processes for a benchmark, on free ports and a fresh store. */
export interface SystemUnderTest {
  /** "plaintext" or "mTLS". */
  readonly label: string;
  readonly store: string;
  readonly gatewayUrl: string;
  /** The HTTPS gateway (see SystemOptions.httpsGateway); its certificate is issued by `caFile`. */
  readonly httpsGatewayUrl: string | undefined;
  /** The CA of this run's certificates; undefined in plaintext. */
  readonly caFile: string | undefined;
  readonly goodsAddress: string;
  /** The goods service's table, to fill behind its back (see insertGoods). */
  readonly goodsTable: GoodsTable;
  /**
   * How to dial `component` as the components dial each other: plaintext, or mutual TLS with the
   * benchmark's own certificate (spiffe://shop/bench), secure naming and the TLS server name it expects.
   */
  dialOptions(component: string): DialOptions;
  /** Metadata with this run's registration token, which Register, Watch, List and GetDescriptorSet need. */
  registryMetadata(): Metadata;
  /** Resident memory of each process, in MiB, read from /proc. */
  rssMiB(): Map<string, number>;
  /** CPU time used so far by each process, in seconds, read from /proc. */
  cpuSeconds(): Map<string, number>;
  stop(): Promise<void>;
}

const entry = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

/** The identity of the benchmark's own gRPC clients in a TLS run. */
const BENCH_IDENTITY = 'bench';

/**
 * Variables of the benchmark's own environment that would change how the components trust each
 * other (the supervisor passes the environment through): each run sets its own, or none.
 */
const TRUST_ENV = [
  'TLS_DIR',
  'TLS_CA',
  'TLS_CERT',
  'TLS_KEY',
  'GATEWAY_HTTPS_CERT',
  'GATEWAY_HTTPS_KEY',
  'GATEWAY_HTTPS_CLIENT_CA',
  'SHOP_REGISTRY_OPEN',
];

/**
 * Variables of the benchmark's own environment that would change what the components observe: a
 * shop runs as it ships (metrics and request ids on, no tracing) unless its `env` says otherwise.
 */
const OBSERVABILITY_ENV = () => [
  'METRICS',
  'REQUEST_IDS',
  ...Object.keys(process.env).filter((name) => name.startsWith('OTEL_') || name.endsWith('_METRICS_PORT')),
];

/**
 * The environment of every component of a benchmark's shop, before its store and TLS: this run's
 * token and ports, `extra` (SystemOptions.env) last.
 */
export function systemEnv(
  extra: NodeJS.ProcessEnv | undefined,
  token: string,
  distributorPort: number,
): NodeJS.ProcessEnv {
  const metricsOff = extra?.METRICS?.trim().toLowerCase() === 'off';
  return {
    ...Object.fromEntries([...TRUST_ENV, ...OBSERVABILITY_ENV()].map((name) => [name, undefined])),
    // Admin ports (GET /metrics) on free ports: the distributor's fixed port + 100 may be taken.
    // None with METRICS=off, where the distributor refuses a metrics port given (exit 2).
    ...(metricsOff ? {} : { DISTRIBUTOR_METRICS_PORT: '0' }),
    [REGISTRY_TOKEN_ENV]: token,
    DISTRIBUTOR_PORT: String(distributorPort),
    DISTRIBUTOR_ADDRESS: `127.0.0.1:${distributorPort}`,
    GATEWAY_PORT: '0',
    GOODS_PORT: '0',
    MEMBERS_PORT: '0',
    PURCHASES_PORT: '0',
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

/**
 * Starts the shop with the secure defaults of `npm start`: a registration token made for this run
 * (the distributor refuses to start without credentials) and, with `tls`, a throwaway PKI made by
 * scripts/certs.mjs and handed to every component as TLS_DIR.
 */
export async function startSystem(options: SystemOptions): Promise<SystemUnderTest> {
  const distributorPort = await freePort();
  const cleanups: Array<() => Promise<void> | void> = [];
  const token = randomBytes(32).toString('base64url');
  const env = systemEnv(options.env, token, distributorPort);
  let store: string;
  let goodsTable: GoodsTable;
  try {
    if (process.env.MYSQL_URL) {
      const database = `shop_bench_${randomBytes(4).toString('hex')}`;
      const admin = await createConnection({ uri: process.env.MYSQL_URL });
      await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4`);
      await admin.end();
      const url = new URL(process.env.MYSQL_URL);
      url.pathname = `/${database}`;
      env.MYSQL_URL = url.toString();
      store = `MySQL (${url.host}, scratch database ${database})`;
      goodsTable = { kind: 'mysql', connection: parseMysqlUrl(url.toString(), 'the bench database') };
      cleanups.push(async () => {
        const connection = await createConnection({ uri: process.env.MYSQL_URL });
        await connection.query(`DROP DATABASE IF EXISTS \`${database}\``);
        await connection.end();
      });
    } else {
      const dataDir = mkdtempSync(join(tmpdir(), 'shop-bench-'));
      env.DATA_DIR = dataDir;
      env.MYSQL_URL = '';
      store = `embedded SQLite (${dataDir}); set MYSQL_URL to measure on MySQL`;
      goodsTable = { kind: 'sqlite', file: join(dataDir, 'goods.sqlite') };
      cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    }
  } catch (error) {
    for (const cleanup of cleanups) await cleanup();
    throw error;
  }

  let clientTls: Required<TlsFilePaths> | undefined;
  let gatewayHttps: { port: number; env: NodeJS.ProcessEnv } | undefined;
  if (options.tls) {
    const pkiDir = mkdtempSync(join(tmpdir(), 'shop-bench-pki-'));
    cleanups.push(() => rmSync(pkiDir, { recursive: true, force: true }));
    const { ca, certificates } = makeDevPki(pkiDir, { names: [...COMPONENTS, BENCH_IDENTITY] });
    env.TLS_DIR = pkiDir;
    clientTls = { caFile: ca.certFile, ...certificates[BENCH_IDENTITY]! };
    if (options.httpsGateway) {
      // Its own port, known in advance: two gateways register under the same name.
      const port = await freePort();
      const { certFile, keyFile } = certificates.gateway!;
      gatewayHttps = {
        port,
        env: { ...env, GATEWAY_PORT: String(port), GATEWAY_HTTPS_CERT: certFile, GATEWAY_HTTPS_KEY: keyFile },
      };
    }
  }
  const dialOptions = (component: string): DialOptions => ({
    credentials: channelCredentials(clientTls, { expectedName: component }),
    options: secureNamingChannelOptions(clientTls, component),
  });
  const registryMetadata = (): Metadata => {
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    return metadata;
  };

  const log = createWriteStream(options.logFile);
  const component = (name: string, path: string, componentEnv = env): ComponentSpec => ({
    name,
    entry: entry(path),
    env: { ...allocatorEnv(), ...componentEnv },
    nodeFlags: COMPONENT_NODE_FLAGS,
  });
  const supervisor = new Supervisor(
    [
      component('distributor', '../distributor/main.js'),
      component('goods', '../services/goods/main.js'),
      component('members', '../services/members/main.js'),
      component('purchases', '../services/purchases/main.js'),
      component('gateway', '../gateway/main.js'),
      ...(gatewayHttps ? [component('gateway-https', '../gateway/main.js', gatewayHttps.env)] : []),
    ],
    { write: (line) => log.write(`${line}\n`), pretty: false },
  );
  void supervisor.start();
  cleanups.unshift(async () => {
    await supervisor.stop();
    log.end();
  });

  try {
    const { credentials, options: channelOptions } = dialOptions('distributor');
    const distributorAddress = `127.0.0.1:${distributorPort}`;
    const distributor = new DistributorServiceClient(
      distributorAddress,
      credentials,
      channelOptionsFor(distributorAddress, channelOptions),
    );
    // The plain gateway is the one not on the HTTPS gateway's port: both register as "gateway".
    const isPlainGateway = (node: Node): boolean =>
      node.name === 'gateway' && node.port !== gatewayHttps?.port;
    let nodes: Node[];
    try {
      nodes = await waitForNodes(distributor, registryMetadata, (listed) => {
        const has = (test: (node: Node) => boolean): boolean => listed.some(test);
        return (
          ['goods', 'members', 'purchases'].every((name) => has((node) => node.name === name)) &&
          has(isPlainGateway) &&
          (!gatewayHttps || has((node) => node.name === 'gateway' && node.port === gatewayHttps.port))
        );
      });
    } finally {
      distributor.close();
    }
    const gateway = nodes.find(isPlainGateway)!;
    const goods = nodes.find((node) => node.name === 'goods')!;
    const gatewayUrl = `http://127.0.0.1:${gateway.port}`;
    await waitForRoute(`${gatewayUrl}/goods`);
    const caFile = clientTls?.caFile;
    const httpsGatewayUrl = gatewayHttps ? `https://127.0.0.1:${gatewayHttps.port}` : undefined;
    if (httpsGatewayUrl) await waitForRoute(`${httpsGatewayUrl}/goods`, caFile);
    return {
      label: options.tls ? 'mTLS' : 'plaintext',
      store,
      gatewayUrl,
      httpsGatewayUrl,
      caFile,
      goodsAddress: `127.0.0.1:${goods.port}`,
      goodsTable,
      dialOptions,
      registryMetadata,
      rssMiB: () => {
        const rss = new Map<string, number>();
        for (const [name, pid] of supervisor.pids()) rss.set(name, residentMiB(pid));
        return rss;
      },
      cpuSeconds: () => new Map([...supervisor.pids()].map(([name, pid]) => [name, cpuSeconds(pid)])),
      stop: async () => {
        for (const cleanup of cleanups) await cleanup();
      },
    };
  } catch (error) {
    for (const cleanup of cleanups) await cleanup();
    throw error;
  }
}

/** Lists the registry (with this run's credentials) until `ready` holds for the nodes listed. */
async function waitForNodes(
  client: DistributorServiceClient,
  metadata: () => Metadata,
  ready: (nodes: Node[]) => boolean,
  timeoutMs = 60_000,
): Promise<Node[]> {
  const deadline = Date.now() + timeoutMs;
  let lastError = 'no answer yet';
  while (Date.now() < deadline) {
    const nodes = await new Promise<Node[]>((resolve) =>
      client.list({}, metadata(), { deadline: Date.now() + 1_000 }, (error, response) => {
        if (error) lastError = error.message;
        resolve(error ? [] : (response.snapshot?.nodes ?? []));
      }),
    );
    if (ready(nodes)) return nodes;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`not every component registered within ${timeoutMs} ms (last List: ${lastError})`);
}

/** Polls `url` until the gateway routes it; over HTTPS the server must be issued by `caFile`. */
async function waitForRoute(url: string, caFile?: string, timeoutMs = 30_000): Promise<void> {
  const ca = caFile === undefined ? undefined : readFileSync(caFile);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const status = await statusOf(url, ca);
    if (status !== undefined && status !== 404 && status !== 503) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`the gateway did not route ${url} within ${timeoutMs} ms`);
}

/** The HTTP status of a GET, or undefined when the request fails. */
function statusOf(url: string, ca: Buffer | undefined): Promise<number | undefined> {
  return new Promise((resolve) => {
    const onResponse = (response: IncomingMessage): void => {
      response.resume();
      resolve(response.statusCode);
    };
    const request = url.startsWith('https:')
      ? httpsRequest(url, { ca, agent: false }, onResponse)
      : httpRequest(url, { agent: false }, onResponse);
    request.setTimeout(2_000, () => request.destroy());
    request.once('error', () => resolve(undefined));
    request.end();
  });
}
