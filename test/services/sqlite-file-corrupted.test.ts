import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GoodsServiceClient } from '../../src/gen/services.js';
import { DATABASE_UNAVAILABLE } from '../../src/services/common/database-errors.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import { startService } from '../../src/services/common/start-service.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import type { NewGoods } from '../../src/services/goods/goods-store.js';
import { SqliteGoodsStore } from '../../src/services/goods/sqlite-goods-store.js';
import { Closer, startDistributor, startGateway, waitForRoute } from '../gateway/support/cluster.js';
import { checkHealth } from '../helpers/grpc-clients.js';
import { captureLog } from '../helpers/log-capture.js';
import { testServiceConfig } from './support/service-config.js';
import { call, startTestServer, waitForHealth } from './support/test-server.js';

/**
 * A SQLite file whose pages are overwritten with garbage while its service runs (a bad disk, a
 * backup copied over the running file): the calls that meet the damage are UNAVAILABLE, not a bare
 * INTERNAL, the log names the file, and health turns NOT_SERVING, so that the gateway (which routes
 * by the listed state) and a load balancer stop sending the instance traffic, until the file is
 * usable again.
 */

const PROBE_MS = 100;
const DEADLINE_MS = 5_000;
const ROWS = 300;
const GOODS = (n: number): NewGoods => ({
  name: `goods ${n}`,
  category: 'tests',
  price: n,
  // Long enough that the table spans many pages, none of them read by the store at its start.
  description: 'x'.repeat(200),
});

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A goods file holding ROWS rows, checkpointed and closed, so that the data is in the file itself. */
async function filledFile(): Promise<{ dir: string; file: string; pageSize: number; goodsRoot: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'shop-corrupt-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'goods.sqlite');
  const filler = new SqliteGoodsStore(file);
  for (let n = 1; n <= ROWS; n++) await filler.createGoods(GOODS(n));
  await filler.close();
  const db = new Database(file, { readonly: true });
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const goodsRoot = db
    .prepare<[], number>("SELECT rootpage FROM sqlite_schema WHERE name = 'goods'")
    .pluck()
    .get()!;
  db.close();
  return { dir, file, pageSize, goodsRoot };
}

/** Overwrites `pages` pages from page `first` (1-based) in place, as a bad disk or `cp` over it would. */
function overwritePages(file: string, pageSize: number, first: number, pages: number, bytes?: Buffer): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, bytes ?? randomBytes(pageSize * pages), 0, pageSize * pages, (first - 1) * pageSize);
  } finally {
    closeSync(fd);
  }
}

describe('a SQLite file damaged in place under a running service', () => {
  it('answers UNAVAILABLE, logs the file, turns NOT_SERVING and stays so until the file is usable again', async () => {
    const { file, pageSize, goodsRoot } = await filledFile();
    const captured = captureLog('goods');
    const store = new SqliteGoodsStore(file);
    const service = await startTestServer(
      createServiceServer(goodsService, { store, log: captured.log, databaseProbeIntervalMs: PROBE_MS }),
      GoodsServiceClient,
    );
    cleanups.push(() => service.close());
    await waitForHealth(service.address, 'SERVING');

    // The table's root page and the leaves after it: every read of the table meets garbage.
    const damaged = 8;
    const original = readFileSync(file).subarray(
      (goodsRoot - 1) * pageSize,
      (goodsRoot - 1 + damaged) * pageSize,
    );
    overwritePages(file, pageSize, goodsRoot, damaged);

    const list = () => call(service.client, service.client.listGoods, {}, DEADLINE_MS);
    const failures = await Promise.all(
      [list(), list(), list()].map((answer) => answer.catch((error) => error)),
    );
    for (const failure of failures) {
      expect(failure).toMatchObject({ code: status.UNAVAILABLE, details: DATABASE_UNAVAILABLE });
      // Nothing of the driver's, nor the file's path, reaches the caller.
      expect(JSON.stringify(failure)).not.toMatch(/malformed|SQLITE|sqlite/);
    }
    await waitForHealth(service.address, 'NOT_SERVING');

    // One line for the three calls (the rest are counted, see LogLimiter), and one for the health
    // change; both name the file and SQLite's code.
    const errors = captured.lines.filter((line) => line.level === 50);
    expect(errors.map(({ grpcMethod, event }) => grpcMethod ?? event)).toEqual([
      'shop.v1.GoodsService/ListGoods',
      'database-down',
    ]);
    for (const line of errors) {
      expect(line.err).toMatchObject({
        code: 'SQLITE_CORRUPT',
        message: expect.stringContaining(`the SQLite file ${file} is damaged`),
      });
    }

    // The probe's plain SELECT 1 still passes; the damage keeps it NOT_SERVING over many probes.
    for (let probes = 0; probes < 5; probes++) {
      await sleep(PROBE_MS);
      expect(await checkHealth(service.address)).toBe('NOT_SERVING');
    }

    // The same bytes back in place: the file is usable again, and the instance serves it.
    overwritePages(file, pageSize, goodsRoot, damaged, original);
    await waitForHealth(service.address, 'SERVING');
    expect((await list()).results[0]).toMatchObject({ id: 1, name: 'goods 1' });
  });

  it('checks the whole file only while it is marked damaged, never on the probe of a whole one', async () => {
    const { file, pageSize, goodsRoot } = await filledFile();
    const pragmas = vi.spyOn(Database.prototype, 'pragma');
    const probes = vi.spyOn(Database.prototype, 'prepare');
    cleanups.push(async () => vi.restoreAllMocks());
    const store = new SqliteGoodsStore(file);
    const service = await startTestServer(
      createServiceServer(goodsService, { store, databaseProbeIntervalMs: 10 }),
      GoodsServiceClient,
    );
    cleanups.push(() => service.close());
    const probesSoFar = () => probes.mock.calls.filter(([source]) => source === 'SELECT 1').length;
    const checks = () =>
      pragmas.mock.calls.filter(([source]) => String(source).includes('quick_check')).length;
    await waitForHealth(service.address, 'SERVING');
    const from = probesSoFar();
    await vi.waitFor(() => expect(probesSoFar()).toBeGreaterThan(from + 5), { timeout: 5_000, interval: 10 });
    expect(checks()).toBe(0);

    overwritePages(file, pageSize, goodsRoot, 8);
    await expect(call(service.client, service.client.listGoods, {}, DEADLINE_MS)).rejects.toMatchObject({
      code: status.UNAVAILABLE,
    });
    await vi.waitFor(() => expect(checks()).toBeGreaterThan(0), { timeout: 5_000, interval: 10 });
  });

  it('is routed around by the gateway once its health says so', async () => {
    const closer = new Closer();
    cleanups.push(() => closer.closeAll());
    const distributor = await startDistributor(closer);
    const { gateway, port } = await startGateway(closer, distributor.address);
    const damagedOne = await filledFile();
    const wholeOne = await filledFile();
    for (const { dir } of [damagedOne, wholeOne]) {
      const running = await startService(
        goodsService,
        testServiceConfig(distributor.address, { kind: 'sqlite', dataDir: dir }),
        { registrationBackoff: { initialMs: 20, maxMs: 200 }, databaseProbeIntervalMs: PROBE_MS },
      );
      closer.add(running, (service) => service.stop());
    }
    await waitForRoute(gateway, 'GET /goods', 2);
    overwritePages(damagedOne.file, damagedOne.pageSize, damagedOne.goodsRoot, 8);

    // Round robin sends the damaged instance one of the first requests: its UNAVAILABLE has the
    // gateway try the GET on the whole one. From its NOT_SERVING on it is listed draining, and gets
    // no request at all.
    for (let n = 0; n < 4; n++) expect((await fetch(`http://127.0.0.1:${port}/goods`)).status).toBe(200);
    await waitForRoute(gateway, 'GET /goods', 1, 1);
    for (let n = 0; n < 6; n++) {
      const answer = await fetch(`http://127.0.0.1:${port}/goods`);
      expect(answer.status).toBe(200);
      expect(await answer.json()).toMatchObject({ errorcode: 0 });
    }
  });
});
