import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, Metadata } from '@grpc/grpc-js';
import { createConnection } from 'mysql2/promise';
import { DistributorServiceClient, type Node } from '../gen/distributor.js';
import { COMPONENT_NODE_FLAGS } from '../launcher/node-flags.js';
import { Supervisor } from '../launcher/supervisor.js';
import { freePort, residentMiB } from './process-probes.js';

/** The whole shop started as separate processes for a benchmark, on free ports and a fresh store. */
export interface SystemUnderTest {
  readonly store: string;
  readonly gatewayUrl: string;
  readonly goodsAddress: string;
  /** Resident memory of each process, in MiB, read from /proc. */
  rssMiB(): Map<string, number>;
  stop(): Promise<void>;
}

const entry = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

export async function startSystem(logFile: string): Promise<SystemUnderTest> {
  const distributorPort = await freePort();
  const cleanups: Array<() => Promise<void> | void> = [];
  const env: NodeJS.ProcessEnv = {
    DISTRIBUTOR_PORT: String(distributorPort),
    DISTRIBUTOR_ADDRESS: `127.0.0.1:${distributorPort}`,
    GATEWAY_PORT: '0',
    GOODS_PORT: '0',
    MEMBERS_PORT: '0',
    PURCHASES_PORT: '0',
    LOG_LEVEL: 'warn',
  };
  let store: string;
  if (process.env.MYSQL_URL) {
    const database = `shop_bench_${randomBytes(4).toString('hex')}`;
    const admin = await createConnection({ uri: process.env.MYSQL_URL });
    await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4`);
    await admin.end();
    const url = new URL(process.env.MYSQL_URL);
    url.pathname = `/${database}`;
    env.MYSQL_URL = url.toString();
    store = `MySQL (${url.host}, scratch database ${database})`;
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
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  }

  const log = createWriteStream(logFile);
  const supervisor = new Supervisor(
    [
      { name: 'distributor', entry: entry('../distributor/main.js'), env, nodeFlags: COMPONENT_NODE_FLAGS },
      { name: 'goods', entry: entry('../services/goods/main.js'), env, nodeFlags: COMPONENT_NODE_FLAGS },
      { name: 'members', entry: entry('../services/members/main.js'), env, nodeFlags: COMPONENT_NODE_FLAGS },
      {
        name: 'purchases',
        entry: entry('../services/purchases/main.js'),
        env,
        nodeFlags: COMPONENT_NODE_FLAGS,
      },
      { name: 'gateway', entry: entry('../gateway/main.js'), env, nodeFlags: COMPONENT_NODE_FLAGS },
    ],
    { write: (line) => log.write(`${line}\n`), pretty: false },
  );
  supervisor.start();
  cleanups.unshift(async () => {
    await supervisor.stop();
    log.end();
  });

  try {
    const nodes = await waitForNodes(`127.0.0.1:${distributorPort}`, [
      'goods',
      'members',
      'purchases',
      'gateway',
    ]);
    const gateway = nodes.find((node) => node.name === 'gateway')!;
    const goods = nodes.find((node) => node.name === 'goods')!;
    const gatewayUrl = `http://127.0.0.1:${gateway.port}`;
    await waitForRoute(`${gatewayUrl}/goods`);
    return {
      store,
      gatewayUrl,
      goodsAddress: `127.0.0.1:${goods.port}`,
      rssMiB: () => {
        const rss = new Map<string, number>();
        for (const [name, pid] of supervisor.pids()) rss.set(name, residentMiB(pid));
        return rss;
      },
      stop: async () => {
        for (const cleanup of cleanups) await cleanup();
      },
    };
  } catch (error) {
    for (const cleanup of cleanups) await cleanup();
    throw error;
  }
}

async function waitForNodes(address: string, names: string[], timeoutMs = 60_000): Promise<Node[]> {
  const client = new DistributorServiceClient(address, credentials.createInsecure());
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      const nodes = await new Promise<Node[]>((resolve) =>
        client.list({}, new Metadata(), { deadline: Date.now() + 1_000 }, (error, response) =>
          resolve(error ? [] : (response.snapshot?.nodes ?? [])),
        ),
      );
      if (names.every((name) => nodes.some((node) => node.name === name))) return nodes;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`not every component registered within ${timeoutMs} ms: ${names.join(', ')}`);
  } finally {
    client.close();
  }
}

async function waitForRoute(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const response = await fetch(url).catch(() => undefined);
    if (response && response.status !== 404 && response.status !== 503) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`the gateway did not route ${url} within ${timeoutMs} ms`);
}
