import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteGoodsStore } from '../../src/services/goods/sqlite-goods-store.js';

/**
 * A reader that holds one snapshot while the service writes (a `sqlite3` shell left in a
 * transaction, a backup tool) keeps SQLite from starting its WAL over, which grows by every write
 * meanwhile: measured, 6,000 keyed CreateGoods made it 137 MB. Once the reader was gone, the WAL was
 * written from its start again but kept its size on the disk for as long as any instance ran. It
 * must shrink back once a checkpoint has moved its pages into the database.
 */
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const MIB = 1024 * 1024;

describe('the WAL of a SQLite store', () => {
  it('shrinks back after a long read let it grow, while the store stays open', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shop-wal-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'goods.sqlite');
    const store = new SqliteGoodsStore(file);
    cleanups.push(() => store.close());
    const create = () =>
      store.createGoods({ name: 'kept', category: 'tests', price: 1, description: 'x'.repeat(3_000) });

    const reader = new Database(file, { readonly: true });
    cleanups.push(() => reader.close());
    reader.exec('BEGIN');
    reader.prepare('SELECT COUNT(*) FROM goods').get();
    for (let i = 0; i < 6_000; i++) await create();
    const grown = statSync(`${file}-wal`).size;
    expect(grown).toBeGreaterThan(40 * MIB);

    reader.exec('COMMIT');
    // The writes after it: the first checkpoints all that is in the WAL (SQLite's autocheckpoint),
    // the next start the WAL over.
    for (let i = 0; i < 20; i++) await create();
    expect(statSync(`${file}-wal`).size).toBeLessThanOrEqual(8 * MIB);
  }, 60_000);
});
