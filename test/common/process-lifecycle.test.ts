import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { STOP_LIMIT_MS, stopStepBudget } from '../../src/common/process-lifecycle.js';

/** A fixture (slow-stop, slow-start) in a process of its own: what it printed, and how it exited. */
function startFixture(fixture: 'slow-stop' | 'slow-start', ms: number) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', `test/common/fixtures/${fixture}.ts`, String(ms)],
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
    const stopping = startFixture('slow-stop', 600);
    await vi.waitFor(() => expect(stopping.output()).toContain('up'), { timeout: 15_000 });
    stopping.child.kill('SIGINT');
    await vi.waitFor(() => expect(stopping.output()).toContain('stop begun'));
    stopping.child.kill('SIGINT');
    expect(await stopping.exited).toBe(0);
    expect(stopping.output()).toContain('stop ended');
  });

  it('exits at once with 1 on a signal more than a second after the first', async () => {
    const stopping = startFixture('slow-stop', 20_000);
    await vi.waitFor(() => expect(stopping.output()).toContain('up'), { timeout: 15_000 });
    stopping.child.kill('SIGTERM');
    await vi.waitFor(() => expect(stopping.output()).toContain('stop begun'));
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    stopping.child.kill('SIGTERM');
    expect(await stopping.exited).toBe(1);
    expect(stopping.output()).not.toContain('stop ended');
  });
});

describe('a signal while the process starts', () => {
  it('is kept: the start runs to its end, then the orderly stop, exit 0', async () => {
    const starting = startFixture('slow-start', 1_500);
    await vi.waitFor(() => expect(starting.output()).toContain('starting'), { timeout: 15_000 });
    starting.child.kill('SIGTERM');
    expect(await starting.exited).toBe(0);
    expect(starting.output()).toBe('starting\nstarted\nstop begun\n');
  });

  it('a second one more than a second later exits at once with 1, the start unfinished', async () => {
    const starting = startFixture('slow-start', 20_000);
    await vi.waitFor(() => expect(starting.output()).toContain('starting'), { timeout: 15_000 });
    starting.child.kill('SIGINT');
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    starting.child.kill('SIGINT');
    expect(await starting.exited).toBe(1);
    expect(starting.output()).toBe('starting\n');
  });
});

describe('the time of one step of a stop', () => {
  it("is the step's own time while the launcher's limit leaves more", () => {
    expect(stopStepBudget(0, 6_000, 1_000)).toBe(6_000);
    expect(stopStepBudget(1_000, 2_000, 8_000)).toBe(2_000);
  });

  it("is what is left of the launcher's limit less half a second for exiting, then none", () => {
    expect(stopStepBudget(0, 2_000, 8_000)).toBe(STOP_LIMIT_MS - 500 - 8_000);
    expect(stopStepBudget(500, 2_000, 9_250.4)).toBe(750);
    expect(stopStepBudget(0, 2_000, STOP_LIMIT_MS - 500)).toBe(0);
    expect(stopStepBudget(0, 2_000, STOP_LIMIT_MS + 3_000)).toBe(0);
  });
});
