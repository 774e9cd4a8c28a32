import type { Logger } from './logger.js';

/** Options of {@link LogLimiter}. */
export interface LogLimiterOptions {
  /** One line per cause per interval (default 10 s). */
  intervalMs?: number;
  /** Causes followed at once; past it the oldest is reported and forgotten (default 256). */
  maxCauses?: number;
}

type Level = 'error' | 'warn' | 'info' | 'debug';

/**
 * How many request ids of the lines left out a summary names, the first ones; past them it names
 * the last one too. Bounded: a summary may stand for thousands of lines.
 */
export const SUMMARY_REQUEST_IDS = 10;

/** One cause being limited: the line to repeat, and how often it came since it was last written. */
interface Window {
  readonly level: Level;
  readonly fields: Record<string, unknown>;
  readonly message: string;
  repeated: number;
  /** The request ids of the first lines left out (at most SUMMARY_REQUEST_IDS). */
  readonly requestIds: string[];
  /** The request id of the latest line left out past those, if any. */
  lastRequestId: string | undefined;
  timer: NodeJS.Timeout;
}

/**
 * Rate-limits repeated log lines: one line per cause per interval, with a count of the ones left
 * out. What fails per call (a database outage under load, an upstream refusing every request)
 * otherwise writes one line, often with a stack, for every call.
 *
 * The first line of a cause is written at once, whole. Lines of the same cause within `intervalMs`
 * are only counted; when the interval ends with a count, one summary line is written (the first
 * line's fields without `err`, `requestId` and `key`, with `repeated: N`, and `requestIds`: the ids of
 * the first SUMMARY_REQUEST_IDS lines left out that had one, with `lastRequestId` the last one's
 * when more had, so that an operator can follow those requests) and a new interval begins; an
 * interval that ends without any lets the next line through at once. A cause is a short text naming what failed (e.g.
 * method, status and driver code), never anything with per-request values, so causes stay few.
 * Timers are unref'd, so a limiter never keeps a process alive.
 */
export class LogLimiter {
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #maxCauses: number;
  readonly #windows = new Map<string, Window>();

  constructor(log: Logger, options: LogLimiterOptions = {}) {
    this.#log = log;
    this.#intervalMs = options.intervalMs ?? 10_000;
    this.#maxCauses = options.maxCauses ?? 256;
  }

  error(cause: string, fields: Record<string, unknown>, message: string): void {
    this.#write('error', cause, fields, message);
  }

  warn(cause: string, fields: Record<string, unknown>, message: string): void {
    this.#write('warn', cause, fields, message);
  }

  info(cause: string, fields: Record<string, unknown>, message: string): void {
    this.#write('info', cause, fields, message);
  }

  debug(cause: string, fields: Record<string, unknown>, message: string): void {
    this.#write('debug', cause, fields, message);
  }

  /** Writes the summary of every cause with lines left out, and forgets them all. */
  flush(): void {
    for (const cause of [...this.#windows.keys()]) this.#close(cause);
  }

  #write(level: Level, cause: string, fields: Record<string, unknown>, message: string): void {
    if (!this.#log.isLevelEnabled(level)) return;
    const window = this.#windows.get(cause);
    if (window) {
      window.repeated++;
      const { requestId } = fields;
      if (typeof requestId === 'string') {
        if (window.requestIds.length < SUMMARY_REQUEST_IDS) window.requestIds.push(requestId);
        else window.lastRequestId = requestId;
      }
      return;
    }
    if (this.#windows.size >= this.#maxCauses) this.#close(this.#windows.keys().next().value!);
    this.#log[level](fields, message);
    this.#open(cause, level, fields, message);
  }

  #open(cause: string, level: Level, fields: Record<string, unknown>, message: string): void {
    // A summary counts many lines: it names neither one line's error nor one line's request as its
    // own (by `requestId`, or by the gateway's `key`, which an operator would otherwise search and
    // find the wrong one); the requests of the lines it left out are its `requestIds`.
    const { err: _err, requestId: _requestId, key: _key, ...rest } = fields;
    const timer = setTimeout(() => this.#intervalOver(cause), this.#intervalMs);
    timer.unref();
    this.#windows.set(cause, {
      level,
      fields: rest,
      message,
      repeated: 0,
      requestIds: [],
      lastRequestId: undefined,
      timer,
    });
  }

  #intervalOver(cause: string): void {
    const window = this.#windows.get(cause);
    if (!window) return;
    this.#windows.delete(cause);
    if (window.repeated === 0) return;
    this.#summarise(window);
    // Still repeating: the next line of this cause waits for the end of a new interval.
    this.#open(cause, window.level, window.fields, window.message);
  }

  #close(cause: string): void {
    const window = this.#windows.get(cause);
    if (!window) return;
    clearTimeout(window.timer);
    this.#windows.delete(cause);
    if (window.repeated > 0) this.#summarise(window);
  }

  #summarise(window: Window): void {
    const { requestIds, lastRequestId } = window;
    this.#log[window.level](
      {
        ...window.fields,
        repeated: window.repeated,
        intervalMs: this.#intervalMs,
        ...(requestIds.length > 0 ? { requestIds } : {}),
        ...(lastRequestId !== undefined ? { lastRequestId } : {}),
      },
      `${window.message} (repeated ${window.repeated} times in ${Math.round(this.#intervalMs / 1000)} s)`,
    );
  }
}

/**
 * A short name for what an error is, to tell causes apart: its driver or system code (ECONNREFUSED,
 * ER_LOCK_DEADLOCK) when it has one, else its class and the start of its message.
 */
export function errorCause(error: unknown): string {
  const { code, name, message } = (error ?? {}) as { code?: unknown; name?: unknown; message?: unknown };
  if (typeof code === 'string' || typeof code === 'number') return String(code);
  return `${typeof name === 'string' ? name : typeof error}: ${String(message ?? error).slice(0, 80)}`;
}

/**
 * What a gRPC status's details say, without what varies from one call to the next: grpc-js writes
 * the time waited, timestamps and the peer's address into its own (a deadline's "Deadline exceeded
 * after 5.001s,LB pick: 0.001s,remote_addr=..."), so that each failure looked like a new cause.
 * A deadline is one cause whichever side's timer fired first: the server's own ends the call with a
 * bare "Deadline exceeded".
 */
export function detailsCause(details: string | undefined): string {
  return (details ?? '')
    .split(',', 1)[0]!
    .replace(/ after \d+(\.\d+)?s$/, '')
    .replace(/\d+/g, 'N')
    .slice(0, 80);
}

const limiters = new WeakMap<Logger, LogLimiter>();

/**
 * The limiter of a logger: one per logger object, made on first use, so that every call site
 * writing to one logger shares the same intervals without each being handed a limiter.
 */
export function limiterOf(log: Logger): LogLimiter {
  let limiter = limiters.get(log);
  if (!limiter) {
    limiter = new LogLimiter(log);
    limiters.set(log, limiter);
  }
  return limiter;
}
