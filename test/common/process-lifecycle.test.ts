import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it, vi } from 'vitest';

/** The slow-stop fixture in a process of its own: what it printed, and how it exited. */
function startSlowStop(stopMs: number) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/common/fixtures/slow-stop.ts', String(stopMs)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let output = '';
  child.stdout!.on('data', (chunk) => {
    output += chunk;
  });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, output: () => output, exited };
}

describe('stopOnSignals', () => {
  // Ctrl-C on `npm run goods` reaches the component twice: from the terminal and forwarded by npm.
  it('takes a second signal within a second of the first as the same request: the stop runs to its end, exit 0', async () => {
    const stopping = startSlowStop(600);
    await vi.waitFor(() => expect(stopping.output()).toContain('up'), { timeout: 15_000 });
    stopping.child.kill('SIGINT');
    await vi.waitFor(() => expect(stopping.output()).toContain('stop begun'));
    stopping.child.kill('SIGINT');
    expect(await stopping.exited).toBe(0);
    expect(stopping.output()).toContain('stop ended');
  });

  it('exits at once with 1 on a signal more than a second after the first', async () => {
    const stopping = startSlowStop(20_000);
    await vi.waitFor(() => expect(stopping.output()).toContain('up'), { timeout: 15_000 });
    stopping.child.kill('SIGTERM');
    await vi.waitFor(() => expect(stopping.output()).toContain('stop begun'));
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    stopping.child.kill('SIGTERM');
    expect(await stopping.exited).toBe(1);
    expect(stopping.output()).not.toContain('stop ended');
  });
});
