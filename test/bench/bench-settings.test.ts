import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  BenchSettingError,
  positiveInteger,
  positiveIntegers,
  positiveNumber,
} from '../../src/bench/bench-settings.js';

describe('the benches’ BENCH_* numbers', () => {
  it('take the default when unset or empty, and the value when it is one', () => {
    expect(positiveNumber({}, 'BENCH_DURATION_SEC', 10)).toBe(10);
    expect(positiveNumber({ BENCH_DURATION_SEC: ' ' }, 'BENCH_DURATION_SEC', 10)).toBe(10);
    expect(positiveNumber({ BENCH_DURATION_SEC: '2.5' }, 'BENCH_DURATION_SEC', 10)).toBe(2.5);
    expect(positiveInteger({ BENCH_ROUNDS: '1' }, 'BENCH_ROUNDS', 3)).toBe(1);
    expect(positiveIntegers({ BENCH_REGISTRY_NODES: '100, 500' }, 'BENCH_REGISTRY_NODES', [1])).toEqual([
      100, 500,
    ]);
    expect(positiveIntegers({}, 'BENCH_REGISTRY_NODES', [100, 1000])).toEqual([100, 1000]);
  });

  it('refuse 0, negatives, letters and fractions where a count is asked, naming the variable', () => {
    for (const value of ['0', '-1', 'abc', 'Infinity', 'NaN']) {
      expect(() => positiveNumber({ BENCH_DURATION_SEC: value }, 'BENCH_DURATION_SEC', 10)).toThrow(
        new BenchSettingError(`BENCH_DURATION_SEC: expected a number greater than 0, got "${value}"`),
      );
    }
    for (const value of ['0', '-2', 'three', '1.5']) {
      expect(() => positiveInteger({ BENCH_ROUNDS: value }, 'BENCH_ROUNDS', 3)).toThrow(/^BENCH_ROUNDS: /);
    }
    for (const value of ['abc', '0', '100,-5', '100,,500', '100,1.5']) {
      expect(() => positiveIntegers({ BENCH_REGISTRY_NODES: value }, 'BENCH_REGISTRY_NODES', [100])).toThrow(
        /^BENCH_REGISTRY_NODES: /,
      );
    }
  });

  /** Runs a bench with `env` added; its exit code, its stderr, and how long it ran. */
  const runBench = (script: string, env: NodeJS.ProcessEnv) =>
    new Promise<{ code: number | null; stderr: string; ms: number }>((resolve) => {
      const started = Date.now();
      const child = spawn(process.execPath, ['--import', 'tsx', script], {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      // A bench that took the value would start its shops: stopped, it fails the test below.
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr, ms: Date.now() - started });
      });
    });

  it('npm run bench says which value it refuses and exits 2 before it starts anything', async () => {
    for (const [name, value] of [
      ['BENCH_ROUNDS', '0'],
      ['BENCH_DURATION_SEC', 'abc'],
      ['BENCH_OBSERVABILITY_SLICES', 'x'],
    ] as const) {
      const { code, stderr, ms } = await runBench('src/bench/main.ts', { [name]: value });
      expect(code, stderr).toBe(2);
      expect(stderr).toContain(`bench: ${name}: expected`);
      expect(stderr).toContain(`got "${value}"`);
      expect(ms).toBeLessThan(15_000);
    }
  }, 60_000);

  it('npm run bench:registry does the same for BENCH_REGISTRY_NODES', async () => {
    const { code, stderr } = await runBench('src/bench/registry.ts', { BENCH_REGISTRY_NODES: 'abc' });
    expect(code, stderr).toBe(2);
    expect(stderr).toContain('bench: BENCH_REGISTRY_NODES: expected whole numbers');
  }, 30_000);
});
