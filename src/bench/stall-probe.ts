import { readFileSync } from 'node:fs';

/** The longest stall of an event loop since the last reading. */
export interface StallReading {
  /** The longest time a 10 ms timer fired late (wall clock): what keepalives and timers saw. */
  readonly maxMs: number;
  /** Of that stall, the time the main thread ran on a CPU... */
  readonly runningMs: number;
  /** ...and the time it waited for one (the machine is shared). */
  readonly waitingMs: number;
  /** The most CPU time the main thread used between two ticks: the longest stall its own work made. */
  readonly maxRunningMs: number;
}

const INTERVAL_MS = 10;

/**
 * Measures the event-loop stalls of this process from inside, with a timer every 10 ms, and splits
 * each into the time the main thread ran and the time it waited for a CPU (from
 * /proc/self/task/<pid>/schedstat, in nanoseconds). On a machine shared with other work the wall
 * clock alone would blame the process for the time it was not even scheduled.
 */
export class StallProbe {
  readonly #file = `/proc/self/task/${process.pid}/schedstat`;
  readonly #timer: NodeJS.Timeout;
  #last = this.#sample();
  #reading: { maxMs: number; runningMs: number; waitingMs: number; maxRunningMs: number } =
    StallProbe.#empty();

  constructor() {
    this.#timer = setInterval(() => this.#tick(), INTERVAL_MS);
    this.#timer.unref();
  }

  /** The longest stall since the last call, and a fresh start. */
  take(): StallReading {
    const reading = this.#reading;
    this.#reading = StallProbe.#empty();
    return reading;
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  static #empty() {
    return { maxMs: 0, runningMs: 0, waitingMs: 0, maxRunningMs: 0 };
  }

  #sample(): { at: number; runningNs: number; waitingNs: number } {
    const [running, waiting] = readFileSync(this.#file, 'utf8').split(' ').map(Number);
    return { at: performance.now(), runningNs: running!, waitingNs: waiting! };
  }

  #tick(): void {
    const now = this.#sample();
    const stall = now.at - this.#last.at - INTERVAL_MS;
    const runningMs = (now.runningNs - this.#last.runningNs) / 1e6;
    const waitingMs = (now.waitingNs - this.#last.waitingNs) / 1e6;
    this.#last = now;
    const reading = this.#reading;
    if (stall > reading.maxMs) Object.assign(reading, { maxMs: stall, runningMs, waitingMs });
    if (runningMs > reading.maxRunningMs) reading.maxRunningMs = runningMs;
  }
}
