import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { send } from '../helpers/http.js';
import { descendantPids, freePorts, isRunning, launcherEnv } from './support/processes.js';

// The launcher's output may stop being read: a terminal paused (Ctrl-S, a pager's copy mode) or a
// pipe left unread. Logging must never stop the shop: its requests are answered, a SIGTERM stops it,
// and what could not be written is dropped and counted rather than kept.

describe('npm start with its output not read', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0).reverse()) cleanup();
  });

  /** The launcher's command with its own environment: every request logged, on free ports. */
  async function launcherSetup(): Promise<{ env: NodeJS.ProcessEnv; gatewayUrl: string; command: string[] }> {
    const dataDir = mkdtempSync(join(tmpdir(), 'shop-output-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const [distributorPort, gatewayPort] = await freePorts(2);
    return {
      env: {
        ...process.env,
        ...launcherEnv({ distributorPort, gatewayPort, dataDir }),
        // A few lines per request: the output fills quickly once nobody reads it.
        LOG_LEVEL: 'debug',
      },
      gatewayUrl: `http://127.0.0.1:${gatewayPort}`,
      command: [process.execPath, '--import', 'tsx', 'src/launcher/main.ts'],
    };
  }

  function track(child: ChildProcess): void {
    cleanups.push(() => {
      for (const pid of [...descendantPids(child.pid!), child.pid!]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
    });
  }

  /**
   * Answers `count` GET /goods, 16 at a time; resolves with how many were answered 200, or rejects
   * after 30 s (a shop stuck on its output answers none).
   */
  async function load(gatewayUrl: string, count: number): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the shop stopped answering')), 30_000);
    });
    try {
      return await Promise.race([answered(gatewayUrl, count), stuck]);
    } finally {
      clearTimeout(timer);
    }
  }

  async function answered(gatewayUrl: string, count: number): Promise<number> {
    let ok = 0;
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next++ < count) {
          const answer = await send(`${gatewayUrl}/goods`);
          if (answer.status === 200) ok++;
        }
      }),
    );
    return ok;
  }

  async function served(gatewayUrl: string): Promise<void> {
    await vi.waitFor(
      async () =>
        expect((await send(`${gatewayUrl}/goods`).catch(() => ({ body: '' }))).body).toContain('"no data"'),
      { timeout: 60_000, interval: 250 },
    );
  }

  it('on a terminal that is not read: the shop answers, and SIGTERM stops it', async () => {
    const { env, gatewayUrl, command } = await launcherSetup();
    // `script` gives the launcher a terminal and copies it to a pipe, which the test stops reading:
    // the terminal then fills, as a paused one does.
    const terminal = spawn(
      'script',
      ['-q', '-e', '-c', command.map((word) => `'${word}'`).join(' '), '/dev/null'],
      {
        env,
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    track(terminal);
    terminal.stdout!.resume();
    await served(gatewayUrl);
    terminal.stdout!.pause();
    // Far more lines than the terminal and the pipe behind it hold.
    expect(await load(gatewayUrl, 3_000)).toBe(3_000);
    const launcher = descendantPids(terminal.pid!).find(
      (pid) => isRunning(pid) && commandOf(pid).includes('src/launcher/main.ts'),
    );
    expect(launcher).toBeDefined();
    const tree = descendantPids(launcher!);
    const exited = new Promise((resolve) => terminal.once('exit', resolve));
    process.kill(launcher!, 'SIGTERM');
    // Read again only after the stop has had its time: a launcher stuck writing would not stop.
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    expect(isRunning(launcher!)).toBe(false);
    expect(tree.filter(isRunning)).toEqual([]);
    terminal.stdout!.resume();
    await exited;
  }, 120_000);

  it('through a pipe that is not read: lines are dropped and counted, not kept', async () => {
    const { env, gatewayUrl, command } = await launcherSetup();
    const [program, ...args] = command;
    const launcher = spawn(program!, args, { env, stdio: ['pipe', 'pipe', 'inherit'] });
    track(launcher);
    let output = '';
    const read = (chunk: Buffer): void => {
      output += chunk.toString();
    };
    launcher.stdout!.on('data', read);
    await served(gatewayUrl);
    launcher.stdout!.pause();
    expect(await load(gatewayUrl, 3_000)).toBe(3_000);
    launcher.stdout!.resume();
    await vi.waitFor(
      () => expect(output).toMatch(/\[launcher\] \d+ lines dropped: the output was not read fast enough/),
      {
        timeout: 10_000,
      },
    );
    const exited = new Promise((resolve) => launcher.once('exit', resolve));
    launcher.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 120_000);
});

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}
