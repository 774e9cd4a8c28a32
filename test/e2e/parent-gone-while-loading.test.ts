import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { descendantPids, freePort, isRunning, launcherEnv } from './support/processes.js';

// The launcher watches its parent (parent-watch.ts) once its modules have loaded, a few hundred
// ms: a parent killed before then (npm start, then npm killed at once) had left it adopted
// already, and the shop ran on for ever with nobody to stop it. A module hook holds the loading of
// grpc-js for 1.5 s and says so (see signal-while-loading.test.ts), for the parent to die then.
const dir = mkdtempSync(join(tmpdir(), 'shop-parent-gone-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const slowLoading = fileURLToPath(new URL('./support/slow-loading.mjs', import.meta.url));

describe('the launcher whose parent dies while it still loads its modules', () => {
  it('stops every component once loaded, and exits', async () => {
    const marker = join(dir, 'loading');
    const log = join(dir, 'launcher.log');
    const parent = spawn(
      'sh',
      [
        '-c',
        '"$0" --import tsx --import "$1" src/launcher/main.ts > "$2" 2>&1 & echo $!; wait',
        process.execPath,
        slowLoading,
        log,
      ],
      {
        env: {
          ...process.env,
          ...launcherEnv({ distributorPort: await freePort(), dataDir: dir }),
          SLOW_LOADING_MARKER: marker,
          LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const launcher = await new Promise<number>((resolve) =>
      parent.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))),
    );
    let tree: number[] = [];
    try {
      await vi.waitFor(() => expect(existsSync(marker)).toBe(true), { timeout: 30_000, interval: 20 });
      parent.kill('SIGKILL');
      // Its components, once it has started them: none must outlive it.
      await vi.waitFor(
        () => {
          tree = [...new Set([...tree, ...descendantPids(launcher)])];
          expect(isRunning(launcher)).toBe(false);
        },
        { timeout: 40_000, interval: 100 },
      );
      expect(readFileSync(log, 'utf8')).toContain('the process that started the launcher');
      await vi.waitFor(() => expect(tree.filter(isRunning)).toEqual([]), { timeout: 15_000 });
    } finally {
      for (const pid of [launcher, ...tree, ...descendantPids(launcher)]) {
        if (isRunning(pid)) process.kill(pid, 'SIGKILL');
      }
    }
  }, 90_000);
});
