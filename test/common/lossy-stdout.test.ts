import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it, vi } from 'vitest';
import { freePort } from '../e2e/support/processes.js';

const ENV = {
  ...process.env,
  SHOP_REGISTRY_TOKEN: 'lossy-stdout-token-0123456789',
  DISTRIBUTOR_ADDRESS: '127.0.0.1:1',
  LOG_LEVEL: 'debug',
};

describe('a component run alone whose stdout cannot take its log lines', () => {
  it('answers requests while its stdout is a pipe nobody reads', async () => {
    const port = await freePort();
    // The pipe's reader never reads: its 64 KiB fill, then every write fails with EAGAIN.
    const shell = spawn(
      'sh',
      [
        '-c',
        `exec ${process.execPath} --import tsx src/gateway/main.ts --port ${port} --host 127.0.0.1 | sleep 60`,
      ],
      { env: ENV, stdio: 'ignore', detached: true },
    );
    try {
      await vi.waitFor(
        async () => expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200),
        {
          timeout: 20_000,
          interval: 100,
        },
      );
      // Each request is a debug line or two: far more than the pipe holds.
      for (let i = 0; i < 400; i += 1) {
        const answer = await fetch(`http://127.0.0.1:${port}/goods`, { signal: AbortSignal.timeout(3_000) });
        await answer.arrayBuffer();
      }
      const health = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(3_000) });
      expect(health.status).toBe(200);
    } finally {
      process.kill(-shell.pid!, 'SIGKILL');
    }
  }, 60_000);

  it('keeps running on a stdout that is full (/dev/full), and stops with 0', async () => {
    const port = await freePort();
    const full = openSync('/dev/full', 'w');
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/gateway/main.ts', '--port', `${port}`], {
      env: { ...ENV, GATEWAY_HOST: '127.0.0.1' },
      stdio: ['ignore', full, 'ignore'],
    });
    closeSync(full);
    const exited = once(child, 'exit');
    await vi.waitFor(async () => expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200), {
      timeout: 20_000,
      interval: 100,
    });
    expect(child.exitCode).toBeNull();
    child.kill('SIGTERM');
    const [code] = await exited;
    expect(code).toBe(0);
  }, 30_000);

  it('does not hang on a pipe a shell made, blocking, when nothing has opened process.stdout before it', async () => {
    // Under tsx (as every other test runs) stdout is already non-blocking: tsx opens process.stdout.
    // A component built and run with node alone (`node dist/gateway/main.js | less`) has a blocking
    // pipe, where a write nobody reads waits in the kernel. So this runs the destination alone,
    // transpiled to plain JavaScript, in a node with no loader.
    const folder = mkdtempSync(join(tmpdir(), 'lossy-stdout-'));
    try {
      const source = readFileSync('src/common/lossy-stdout.ts', 'utf8');
      const { outputText } = ts.transpileModule(source, {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      });
      writeFileSync(join(folder, 'lossy-stdout.mjs'), outputText);
      writeFileSync(
        join(folder, 'writer.mjs'),
        `import { LossyStdout } from './lossy-stdout.mjs';
const out = new LossyStdout('test');
const started = Date.now();
for (let line = 0; line < 5000; line += 1) out.write(JSON.stringify({ line, text: 'x'.repeat(200) }) + '\\n');
process.stderr.write('wrote 5000 lines in ' + (Date.now() - started) + ' ms\\n');
`,
      );
      const shell = spawn('sh', ['-c', `exec ${process.execPath} ${join(folder, 'writer.mjs')} | sleep 30`], {
        stdio: ['ignore', 'ignore', 'pipe'],
        detached: true,
      });
      let said = '';
      shell.stderr!.on('data', (chunk) => {
        said += chunk;
      });
      try {
        // About 1 MB against a 64 KiB pipe: the first line that does not fit waits 1 s, the rest go.
        await vi.waitFor(() => expect(said).toMatch(/wrote 5000 lines in \d+ ms/), {
          timeout: 8_000,
          interval: 100,
        });
      } finally {
        process.kill(-shell.pid!, 'SIGKILL');
      }
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  }, 20_000);
});
