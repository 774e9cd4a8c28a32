import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { createDistributorServer, type DistributorServer } from '../../src/distributor/distributor-server.js';
import { NodeState } from '../../src/gen/distributor.js';
import { checkHealth } from '../helpers/grpc-clients.js';
import { createTestDatabase } from '../helpers/mysql.js';

/** A component started the way a user starts it: its own process, running its main.ts. */
interface Started {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

function startMain(service: string, args: string[], env: Record<string, string>): Started {
  const { MYSQL_URL: _ignored, ...inherited } = process.env;
  const child = spawn(process.execPath, ['--import', 'tsx', `src/services/${service}/main.ts`, ...args], {
    env: { ...inherited, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    output += chunk;
  });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, output: () => output, exited };
}

describe('each service run as its own process', () => {
  let distributor: DistributorServer;
  let distributorPort: number;
  let dataDir: string;
  let running: Started | undefined;

  beforeAll(async () => {
    distributor = createDistributorServer();
    distributorPort = await distributor.listen('127.0.0.1', 0);
    dataDir = await mkdtemp(join(tmpdir(), 'shop-main-'));
  });
  afterEach(async () => {
    if (running && running.child.exitCode === null) {
      running.child.kill('SIGKILL');
      await running.exited;
    }
    running = undefined;
  });
  afterAll(async () => {
    await distributor.stop(100);
    await rm(dataDir, { recursive: true, force: true });
  });

  async function runAndStop(
    name: string,
    env: Record<string, string>,
    signal: NodeJS.Signals = 'SIGTERM',
  ): Promise<void> {
    running = startMain(name, ['--port', '0', '--distributor', `127.0.0.1:${distributorPort}`], env);
    const node = await vi.waitFor(
      () => {
        const found = distributor.registry.snapshot().nodes.find((candidate) => candidate.name === name);
        expect(found, running!.output()).toBeDefined();
        // Listed as draining until its database has answered once, serving from then on.
        expect(found!.state).toBe(NodeState.NODE_STATE_SERVING);
        return found!;
      },
      { timeout: 20_000, interval: 50 },
    );
    expect(node.port).toBeGreaterThan(0);
    await vi.waitFor(async () => expect(await checkHealth(`127.0.0.1:${node.port}`)).toBe('SERVING'));

    running.child.kill(signal);
    expect(await running.exited).toBe(0);
    expect(
      distributor.registry.snapshot().nodes.find((candidate) => candidate.name === name),
    ).toBeUndefined();
    const events = running
      .output()
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { event?: string; msg: string });
    expect(events.map((line) => line.event ?? line.msg)).toEqual(
      expect.arrayContaining(['listening', 'registered', 'stopping', 'draining', 'stopped']),
    );
    expect(events).toContainEqual(expect.objectContaining({ msg: 'stopping', signal }));
  }

  it.each([
    ['goods', 'SIGTERM'],
    ['members', 'SIGTERM'],
    ['purchases', 'SIGINT'],
    ['goods', 'SIGHUP'],
  ] as const)(
    '%s: starts on SQLite with --port 0, registers its real port, stops on %s with 0',
    async (name, signal) => {
      await runAndStop(name, { DATA_DIR: dataDir }, signal);
    },
  );

  // Killed by the signal mid-start, a service left its SQLite file open (-wal and -shm behind).
  it('a signal during its start: the start runs to its end, then the stop in order, exit 0, the SQLite files closed', async () => {
    const ownDir = await mkdtemp(join(tmpdir(), 'shop-main-start-'));
    try {
      running = startMain('goods', ['--port', '0', '--distributor', `127.0.0.1:${distributorPort}`], {
        DATA_DIR: ownDir,
        NODE_OPTIONS: `--import=${join(import.meta.dirname, 'fixtures', 'slow-listen.mjs')}`,
      });
      await vi.waitFor(() => expect(running!.output()).toContain('slow-listen: listen delayed'), {
        timeout: 20_000,
        interval: 10,
      });
      expect(running.output()).not.toContain('"event":"listening"');
      running.child.kill('SIGTERM');
      expect(await running.exited, running.output()).toBe(0);
      const events = running
        .output()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { event?: string; msg: string; during?: string });
      expect(events.map((line) => line.event ?? line.msg)).toEqual(
        expect.arrayContaining(['listening', 'stopping', 'draining', 'stopped']),
      );
      expect(events).toContainEqual(
        expect.objectContaining({ msg: 'stopping', signal: 'SIGTERM', during: 'start' }),
      );
      expect((await readdir(ownDir)).sort()).toEqual(['goods.sqlite']);
    } finally {
      await rm(ownDir, { recursive: true, force: true });
    }
  });

  const mysqlUrl = inject('mysqlUrl');
  it.runIf(mysqlUrl)(
    mysqlUrl ? 'members: the same on MySQL' : 'members: the same on MySQL (skipped: MySQL unreachable here)',
    async () => {
      const database = await createTestDatabase(mysqlUrl);
      try {
        await runAndStop('members', { MYSQL_URL: database.url });
      } finally {
        await database.drop();
      }
    },
  );

  it('a DATA_DIR that is a file stops it at once with exit code 2, naming the file: a restart would not help', async () => {
    const notAFolder = join(dataDir, 'a-file');
    await writeFile(notAFolder, '');
    running = startMain('goods', ['--port', '0', '--distributor', `127.0.0.1:${distributorPort}`], {
      DATA_DIR: notAFolder,
    });
    expect(await running.exited).toBe(2);
    expect(running.output()).toContain(`cannot open the SQLite file ${join(notAFolder, 'goods.sqlite')}`);
  });

  it('a folder in place of its SQLite file stops it with exit code 2, not 1: the launcher would start it again for ever', async () => {
    const ownDir = await mkdtemp(join(tmpdir(), 'shop-main-folder-'));
    try {
      await mkdir(join(ownDir, 'goods.sqlite'));
      running = startMain('goods', ['--port', '0', '--distributor', `127.0.0.1:${distributorPort}`], {
        DATA_DIR: ownDir,
      });
      expect(await running.exited).toBe(2);
      expect(running.output()).toContain(`cannot open the SQLite file ${join(ownDir, 'goods.sqlite')}`);
    } finally {
      await rm(ownDir, { recursive: true, force: true });
    }
  });

  it('a DATA_DIR where no folder can be made (under /proc) stops it with exit code 2 instead of hanging it', async () => {
    // Node's recursive mkdir retried this for ever, in a synchronous call: deaf even to SIGTERM.
    const underProc = `/proc/shop-data-${process.pid}`;
    running = startMain('goods', ['--port', '0', '--distributor', `127.0.0.1:${distributorPort}`], {
      DATA_DIR: underProc,
    });
    expect(await running.exited).toBe(2);
    expect(running.output()).toContain(`cannot open the SQLite file ${join(underProc, 'goods.sqlite')}`);
  }, 20_000);

  it('a bad flag stops it at once with the reason, the usage and exit code 2', async () => {
    running = startMain('goods', ['--port', 'ninety'], {});
    expect(await running.exited).toBe(2);
    expect(running.output()).toContain('--port: expected a whole number of at least 0, got "ninety"');
    expect(running.output()).toContain('usage: goods [options]');
  });
});
