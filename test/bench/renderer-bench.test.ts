import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/** Runs `npm run bench:render` briefly; its lines by route and rows: hand-written and generic µs. */
function runRenderBench(): Promise<Map<string, { handWritten: number; generic: number }>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/bench/renderer.ts'], {
      env: { ...process.env, BENCH_ROUNDS: '3', BENCH_CASE_MS: '40' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`bench:render exited ${code}: ${stdout}`));
      const lines = new Map<string, { handWritten: number; generic: number }>();
      for (const match of stdout.matchAll(
        /^(GET \/\w+)\s+(\d+) rows: hand-written\s+([\d.]+) µs, fromBinary\+toJson\+stringify\s+([\d.]+) µs/gm,
      )) {
        lines.set(`${match[1]} ${match[2]}`, { handWritten: Number(match[3]), generic: Number(match[4]) });
      }
      resolve(lines);
    });
  });
}

describe('npm run bench:render', () => {
  it('times the renderer itself, not the memo of the last answer in front of it', async () => {
    const lines = await runRenderBench();
    expect(lines.size).toBe(6);
    const one = lines.get('GET /purchases 1')!;
    const thousand = lines.get('GET /purchases 1000')!;
    // The bench renders the same bytes again and again: through the call plan's memo
    // (repeat-answer-memo.ts) an answer under 64 KiB is a copy, about 35 times the 1-row time at 1,000
    // rows and some 170 times faster than the generic way; rendered, 1,000 rows take hundreds of
    // times one row, and the generic way at most a few times longer.
    expect(thousand.handWritten / one.handWritten).toBeGreaterThan(100);
    expect(thousand.generic / thousand.handWritten).toBeLessThan(10);
  }, 60_000);
});
