import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// `npm run bench`, very short, on SQLite, in a scratch directory (its bench-results/ too): the order
// in which a round runs its cases, which the README's ratios depend on.
const workDir = mkdtempSync(join(tmpdir(), 'bench-order-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

function runBench(env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        import.meta.resolve('tsx'),
        fileURLToPath(new URL('../../src/bench/main.ts', import.meta.url)),
      ],
      {
        cwd: workDir,
        env: { ...process.env, MYSQL_URL: '', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('npm run bench, the order of a round', () => {
  it('runs each mTLS case right after its plaintext case, the observability twins after both', async () => {
    const { code, stdout, stderr } = await runBench({
      BENCH_ROUNDS: '1',
      BENCH_DURATION_SEC: '0.2',
      BENCH_GROWTH: '0',
      BENCH_HTTPS: '0',
      BENCH_OBSERVABILITY_SLICES: '1',
    });
    expect(code, stderr).toBe(0);
    const order = [...stdout.matchAll(/^ {2}round 1 (.+?)\s{2,}\d+ req\/s/gm)].map((match) =>
      match[1]!.trim(),
    );
    for (const plaintext of ['GET /goods (gateway)', 'ListGoods (direct gRPC)', 'POST /purchases']) {
      expect(order[order.indexOf(plaintext) + 1], order.join('\n')).toBe(`${plaintext} [mTLS]`);
    }
    for (const plaintext of ['GET /goods (gateway)', 'POST /purchases']) {
      expect(order.indexOf(`${plaintext} [metrics + ids off]`)).toBeGreaterThan(
        order.indexOf(`${plaintext} [mTLS]`),
      );
    }
    // The JSON keeps the per-round ratio of those very cases.
    const file = readdirSync(join(workDir, 'bench-results')).find((name) => /Z\.json$/.test(name))!;
    const written = JSON.parse(readFileSync(join(workDir, 'bench-results', file), 'utf8')) as {
      tlsCost: Array<{ case: string; roundRatios: number[] }>;
      samples: Record<string, Array<{ requestsPerSec: number }>>;
    };
    const goods = written.tlsCost.find((row) => row.case === 'GET /goods (gateway) [mTLS]')!;
    const mtls = written.samples['GET /goods (gateway) [mTLS]']![0]!.requestsPerSec;
    const plain = written.samples['GET /goods (gateway)']![0]!.requestsPerSec;
    // A slice this short may complete nothing on a loaded machine (it did once in a full run):
    // then there is no ratio, and the JSON says so with null.
    expect(goods.roundRatios[0]).toEqual(plain > 0 ? expect.closeTo(mtls / plain, 9) : null);
  }, 240_000);
});
