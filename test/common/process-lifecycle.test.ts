import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { STOP_LIMIT_MS, stopStepBudget } from '../../src/common/process-lifecycle.js';

/** A fixture (slow-stop, slow-start) in a process of its own: what it printed, and how it exited. */
function startFixture(fixture: 'slow-stop' | 'slow-start' | 'slow-loading', ...ms: number[]) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', `test/common/fixtures/${fixture}.ts`, ...ms.map(String)],
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

  it('with a drain: a second signal ends the drain and the stop goes on; a third exits at once with 1, saying third', async () => {
    const stopping = startFixture('slow-stop', 20_000, 60_000);
    await vi.waitFor(() => expect(stopping.output()).toContain('up'), { timeout: 15_000 });
    stopping.child.kill('SIGTERM');
    await vi.waitFor(() => expect(stopping.output()).toContain('drain begun'));
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    stopping.child.kill('SIGTERM');
    await vi.waitFor(() => expect(stopping.output()).toContain('stop begun'));
    expect(stopping.output()).toContain('second signal: the drain ends now');
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    stopping.child.kill('SIGTERM');
    expect(await stopping.exited).toBe(1);
    expect(stopping.output()).toContain('third signal: exiting now');
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

// An entry holds signals while it loads its modules (signal-hold.ts); held, they must mean what
// they mean once it has loaded: a second one more than a second after the first is "exit now".
describe('a signal while the process still loads its modules', () => {
  it('is held: it loads and starts, then the orderly stop, exit 0; two copies of one Ctrl-C are one', async () => {
    const loading = startFixture('slow-loading', 1_000, 0);
    await vi.waitFor(() => expect(loading.output()).toContain('loading'), { timeout: 15_000 });
    loading.child.kill('SIGINT');
    loading.child.kill('SIGINT');
    expect(await loading.exited).toBe(0);
    expect(loading.output()).toBe('loading\nloaded\nstarted\nstop begun\n');
  });

  it('a second one more than a second later exits at once with 1, the loading unfinished', async () => {
    const loading = startFixture('slow-loading', 20_000, 0);
    await vi.waitFor(() => expect(loading.output()).toContain('loading'), { timeout: 15_000 });
    const sentAt = performance.now();
    loading.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    loading.child.kill('SIGTERM');
    expect(await loading.exited).toBe(1);
    expect(performance.now() - sentAt).toBeLessThan(10_000);
    expect(loading.output()).toBe('loading\n');
  });

  it('keeps its time: a signal 1.2 s after a held one, soon after the loading ended, exits at once with 1', async () => {
    const loading = startFixture('slow-loading', 700, 20_000);
    await vi.waitFor(() => expect(loading.output()).toContain('loading'), { timeout: 15_000 });
    loading.child.kill('SIGTERM');
    // The loading ends about 0.5 s before the second signal: taken over then, the held one must
    // still count from when it came, not from its take-over.
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    loading.child.kill('SIGTERM');
    expect(await loading.exited).toBe(1);
    expect(loading.output()).not.toContain('started');
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
