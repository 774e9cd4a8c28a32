import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { type CreateGoodsRequest, GoodsServiceClient } from '../../src/gen/services.js';
import { DATABASE_UNAVAILABLE } from '../../src/services/common/database-errors.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { SqliteGoodsStore } from '../../src/services/goods/sqlite-goods-store.js';
import { checkHealth } from '../helpers/grpc-clients.js';
import { captureLog } from '../helpers/log-capture.js';
import { call, startTestServer, type TestServer, waitForHealth } from './support/test-server.js';

/**
 * A SQLite store whose file system stops taking writes while the service runs: a disk gone full, a
 * file system turned read-only. Every write was answered INTERNAL (500), as if the service were
 * broken, and health said SERVING. A write is UNAVAILABLE "Database unavailable" (503 through the
 * gateway), logged with SQLite's code at most once per interval, and nothing acknowledged is lost.
 *
 * Real file systems, mounted for the test: root only (the suite runs as root here).
 */
const asRoot = process.getuid?.() === 0;
const UNAVAILABLE = { code: status.UNAVAILABLE, details: DATABASE_UNAVAILABLE };
const GOODS: CreateGoodsRequest = {
  name: 'kept',
  category: 'tests',
  price: 1,
  description: 'x'.repeat(4_000),
};

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function mountedDir(prefix: string, ...mountArgs: string[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  execFileSync('mount', [...mountArgs, dir]);
  cleanups.push(() => execFileSync('umount', [dir]));
  return dir;
}

async function serve(file: string) {
  const store = new SqliteGoodsStore(file);
  const captured = captureLog('goods', 'info');
  const service: TestServer<GoodsServiceClient> = await startTestServer(
    createServiceServer(goodsService, { store, log: captured.log, databaseProbeIntervalMs: 50 }),
    GoodsServiceClient,
  );
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await service.close();
    await store.close();
  };
  cleanups.push(close);
  const create = () => call(service.client, service.client.createGoods, GOODS, 5_000);
  const unavailableLines = () => captured.lines.filter((line) => line.msg === DATABASE_UNAVAILABLE);
  return { service, create, unavailableLines, close };
}

describe.runIf(asRoot)(asRoot ? 'goods on SQLite' : 'goods on SQLite (skipped: mounts need root)', () => {
  it('a full disk: writes are UNAVAILABLE, health stays SERVING; once there is room they work, and nothing acknowledged is lost', async () => {
    const dir = await mountedDir('shop-full-', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs');
    const file = join(dir, 'goods.sqlite');
    const { service, create, unavailableLines, close } = await serve(file);
    // Room for a few rows only: SQLite cannot even delete on a full disk (its WAL must grow), so
    // room is made as an operator would, by removing another file.
    const filler = join(dir, 'filler');
    await writeFile(filler, Buffer.alloc(700 * 1024));

    const acknowledged: number[] = [];
    let refused: unknown;
    for (let i = 0; i < 1_000 && refused === undefined; i++) {
      await create().then(
        ({ id }) => acknowledged.push(id),
        (error: unknown) => (refused = error),
      );
    }
    expect(acknowledged.length).toBeGreaterThan(0);
    expect(refused).toMatchObject(UNAVAILABLE);
    for (let i = 0; i < 5; i++) await expect(create()).rejects.toMatchObject(UNAVAILABLE);
    expect(await checkHealth(service.address)).toBe('SERVING');
    // Six refusals, one line, naming SQLite's reason.
    expect(unavailableLines()).toHaveLength(1);
    expect(unavailableLines()[0]!.err).toMatchObject({ code: 'SQLITE_FULL' });

    await unlink(filler);
    const { id } = await create();
    acknowledged.push(id);
    await close();

    // Read as the next start would: the file and its WAL, straight from the disk.
    const reopened = new Database(file, { readonly: true });
    try {
      expect(reopened.prepare('SELECT id FROM goods ORDER BY id').pluck().all()).toEqual(acknowledged);
    } finally {
      reopened.close();
    }
  });

  it('a read-only mount over its folder: health turns NOT_SERVING (the probe writes nothing)', async () => {
    const dir = await mountedDir('shop-ro-', '-t', 'tmpfs', '-o', 'size=4m', 'tmpfs');
    const { service, create } = await serve(join(dir, 'goods.sqlite'));
    await expect(create()).resolves.toEqual({ id: 1 });

    // Linux refuses to remount read-only a file system with files open for writing (EBUSY), as the
    // store's are: the same folder bound read-only over itself is a read-only mount at the path.
    execFileSync('mount', ['--bind', dir, dir]);
    cleanups.push(() => execFileSync('umount', [dir]));
    execFileSync('mount', ['-o', 'remount,bind,ro', dir]);
    await waitForHealth(service.address, 'NOT_SERVING');

    execFileSync('umount', [dir]);
    cleanups.pop();
    await waitForHealth(service.address, 'SERVING');
  });

  const ext4 = asRoot && existsSync('/sys/fs/ext4') && hasCommand('mkfs.ext4');
  it.runIf(ext4)(
    'a file system the kernel turned read-only under it (ext4 errors=remount-ro): writes are UNAVAILABLE, reads go on',
    async () => {
      const image = join(await mkdtemp(join(tmpdir(), 'shop-ext4-image-')), 'fs.img');
      cleanups.push(() => rm(join(image, '..'), { recursive: true, force: true }));
      execFileSync('truncate', ['-s', '4M', image]);
      execFileSync('mkfs.ext4', ['-q', '-F', image]);
      const dir = await mountedDir('shop-ext4-', '-o', 'loop,errors=remount-ro', image);
      const { service, create, unavailableLines } = await serve(join(dir, 'goods.sqlite'));
      await expect(create()).resolves.toEqual({ id: 1 });

      // What an I/O error makes ext4 do: it turns the file system read-only at once.
      const device = execFileSync('findmnt', ['-no', 'SOURCE', dir]).toString().trim().replace('/dev/', '');
      await writeFile(`/sys/fs/ext4/${device}/trigger_fs_error`, 'test: turn read-only');

      await expect(create()).rejects.toMatchObject(UNAVAILABLE);
      expect(unavailableLines()[0]!.err).toMatchObject({
        code: expect.stringMatching(/^SQLITE_(IOERR|READONLY)/),
      });
      const listed = await call(service.client, service.client.listGoods, {}, 5_000);
      expect(listed.results.map(({ id }) => id)).toEqual([1]);
    },
  );
});

function hasCommand(name: string): boolean {
  try {
    execFileSync('which', [name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
