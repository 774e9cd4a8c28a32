import { type DestinationStream, type Logger, pino } from 'pino';
import { requestIdMixin } from './request-context.js';

export type { Logger };

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** The component the lines belong to, e.g. "distributor" or "goods". */
  component: string;
  /** pino level; "silent" in tests. */
  level?: string;
  /** Where lines go; stdout (written synchronously) by default. Tests pass a stream to read them. */
  destination?: DestinationStream;
}

/**
 * The root logger of one process: JSON lines on stdout, one child per component. Lines are written
 * synchronously: with pino's default asynchronous stdout, a process that exits right after logging
 * why (a refusal, a fatal error) could lose that line or print it after later ones, since the exit
 * flush writes the queued lines while an earlier write is still in flight.
 */
export function createLogger({ component, level = 'info', destination }: LoggerOptions): Logger {
  return pino(
    {
      level,
      base: { component },
      redact: { paths: ['password', '*.password', 'req.headers.authorization'], censor: '[redacted]' },
      // The id of the request being served, on every line written for it (see request-context.ts).
      mixin: requestIdMixin,
    },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/** A logger that writes nothing: the default of every factory, so tests stay quiet. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
