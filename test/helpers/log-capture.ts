import { createLogger, type Logger } from '../../src/common/logger.js';

/** One JSON log line as a component wrote it. */
export type LogLine = Record<string, unknown> & { component: string; msg?: string };

/** A component's real logger (createLogger, so its mixin and redaction too), writing into memory. */
export interface CapturedLog {
  readonly log: Logger;
  /** Every line written so far, parsed. */
  readonly lines: LogLine[];
}

export function captureLog(component: string, level = 'debug'): CapturedLog {
  const lines: LogLine[] = [];
  const log = createLogger({
    component,
    level,
    destination: {
      write(text: string) {
        for (const line of text.split('\n')) if (line) lines.push(JSON.parse(line) as LogLine);
      },
    },
  });
  return { log, lines };
}
