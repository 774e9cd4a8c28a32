import { pino } from 'pino';
import { expect, vi } from 'vitest';

/** A parsed log line. */
export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A logger that keeps its lines, from debug up, for tests to look at. */
export function capturingLogger() {
  const lines: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { log, lines, warnings: () => lines.filter((line) => line.level === 40) };
}

/** Waits for the `count`th `tls-reloaded` line for `file` among `lines`. */
export async function reloaded(lines: LogLine[], file: string, count: number): Promise<void> {
  await vi.waitFor(
    () =>
      expect(lines.filter((line) => line.event === 'tls-reloaded' && line.file === file)).toHaveLength(count),
    { timeout: 5_000, interval: 20 },
  );
}
