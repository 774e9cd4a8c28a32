import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteGoodsStore } from '../../src/services/goods/sqlite-goods-store.js';

/**
 * A SQLite file this user cannot write (chmod 444, a restore made by another user): SQLite opens it
 * read-only without a word, and with its tables there nothing at the start writes. The service said
 * SERVING and answered every write 500. It must be refused at the start, as the other DATA_DIR
 * faults are: exit 2, naming the file.
 */

/** Root may write any file: as root, the service runs as nobody, who owns the file but may not write it. */
const NOBODY = 65_534;
const asRoot = process.getuid?.() === 0;

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('goods on a SQLite file it cannot write', () => {
  it.each([
    ['the database file', 'goods.sqlite'],
    ['its -wal file', 'goods.sqlite-wal'],
  ])(
    'refuses to start with exit code 2 when %s is read-only, naming it',
    async (_label, readOnly) => {
      const dataDir = await mkdtemp(join(tmpdir(), 'shop-read-only-'));
      cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
      const file = join(dataDir, 'goods.sqlite');
      // A store left open keeps its -wal and -shm files, as a killed service does.
      const earlier = new SqliteGoodsStore(file);
      await earlier.createGoods({ name: 'kept', category: 'tests', price: 1, description: '' });
      if (asRoot) {
        for (const path of [dataDir, file, `${file}-wal`, `${file}-shm`]) await chown(path, NOBODY, NOBODY);
      }
      await chmod(join(dataDir, readOnly), 0o444);

      const child = spawn(
        process.execPath,
        ['--import', 'tsx', 'src/services/goods/main.ts', '--port', '0', '--distributor', '127.0.0.1:1'],
        {
          env: { ...process.env, DATA_DIR: dataDir, MYSQL_URL: '', LOG_LEVEL: 'info' },
          stdio: ['ignore', 'pipe', 'pipe'],
          ...(asRoot ? { uid: NOBODY, gid: NOBODY } : {}),
        },
      );
      let output = '';
      for (const stream of [child.stdout, child.stderr]) stream.on('data', (chunk) => (output += chunk));
      const exited = once(child, 'exit').then(([code]) => code as number | null);
      cleanups.push(async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exited;
        await earlier.close();
      });
      // Before, it listened and served: give up on it then, rather than at the test's timeout.
      const listening = new Promise<'listening'>((resolve) => {
        const check = (): void => {
          if (output.includes('"event":"listening"')) resolve('listening');
        };
        child.stdout.on('data', check);
      });
      expect(await Promise.race([exited, listening]), output).toBe(2);
      expect(output).toContain(`cannot open the SQLite file ${file}`);
      expect(output).toMatch(/EACCES: permission denied, access '[^']*goods\.sqlite(-wal)?'/);
      // The reason is the last word: no usage after it, for a setting that was well formed.
      expect(output).not.toContain('usage: goods');
    },
    30_000,
  );
});
