import { writeSync } from 'node:fs';
import type { DestinationStream } from 'pino';

/**
 * How long one line may wait for a pipe that is not read before it is dropped, in ms: long enough
 * that a reader held up for a moment (the launcher, a test harness, on a busy machine) loses none.
 */
const PATIENCE_MS = 1_000;
/** How much longer the rest of a line half written may wait: past it, that line is cut short. */
const HALF_WRITTEN_PATIENCE_MS = 1_000;

/**
 * A component's log lines on stdout, written synchronously (a line logged right before an exit is
 * never lost or reordered) but never at the cost of the component: a pipe nobody reads (`npm run
 * gateway | less` left unread, a stalled log collector) makes each write fail with EAGAIN, where
 * pino's own synchronous destination retried for ever with the event loop blocked: no request was
 * answered and SIGTERM was not handled until the pipe was read. A full disk (ENOSPC) or an I/O
 * error made it throw, and the component crashed at its next line. Here a line that cannot be
 * written within {@link PATIENCE_MS} is dropped; while the output stays blocked, later lines are
 * tried once each, without waiting; the count of dropped lines is written once one goes through.
 */
export class LossyStdout implements DestinationStream {
  readonly #fd: number;
  readonly #component: string;
  #dropped = 0;
  /**
   * Whether the output is blocked, and whether a line was cut short half written there (the next
   * bytes written must start a new line): the output's own, shared by every writer to its fd (the
   * log's, the gateway's status answers), so that no line lands on another's half.
   */
  readonly #output: OutputState;

  constructor(component: string, fd = 1) {
    this.#component = component;
    this.#fd = fd;
    let output = OUTPUTS.get(fd);
    if (output === undefined) {
      output = { blocked: false, midLine: false };
      OUTPUTS.set(fd, output);
    }
    this.#output = output;
    // A pipe a shell made (`| less`, `| tee`) is blocking: a write to it that nobody reads never
    // fails with EAGAIN, it waits in the kernel, and the component hangs there. Node opens stdout
    // non-blocking when process.stdout is first used, which a component alone never did (only tsx,
    // in development, did): it is used here. Its listener also keeps a write of anyone else's
    // through it (console.log) to a pipe whose reader is gone from crashing the component.
    if (fd === 1) process.stdout.on('error', () => {});
  }

  write(line: string): void {
    if (this.#dropped > 0) {
      const note = {
        level: 40,
        time: Date.now(),
        component: this.#component,
        event: 'log-lines-dropped',
        dropped: this.#dropped,
        msg: `${this.#dropped} log lines dropped: stdout could not be written`,
      };
      if (!this.#writeAll(`${JSON.stringify(note)}\n`)) {
        this.#dropped += 1;
        return;
      }
      this.#dropped = 0;
    }
    if (!this.#writeAll(line)) this.#dropped += 1;
  }

  /** Writes the whole line; false when it was dropped (or, half written, cut short). */
  #writeAll(line: string): boolean {
    // After a line cut short, a newline ends it first: the next line stays a line of its own.
    const output = this.#output;
    const bytes = Buffer.from(output.midLine ? `\n${line}` : line);
    const start = Date.now();
    const patience = output.blocked ? 0 : PATIENCE_MS;
    let offset = 0;
    while (offset < bytes.length) {
      try {
        offset += writeSync(this.#fd, bytes, offset);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'EAGAIN' && code !== 'EBUSY') return false;
        const waited = Date.now() - start;
        if (waited >= patience && (offset === 0 || waited >= patience + HALF_WRITTEN_PATIENCE_MS)) {
          output.blocked = true;
          if (offset > 0) output.midLine = true;
          return false;
        }
        Atomics.wait(SLEEPER, 0, 0, 1);
      }
    }
    output.blocked = false;
    output.midLine = false;
    return true;
  }
}

const SLEEPER = new Int32Array(new SharedArrayBuffer(4));

interface OutputState {
  blocked: boolean;
  midLine: boolean;
}

/** Each fd's state, whichever LossyStdout writes to it. */
const OUTPUTS = new Map<number, OutputState>();
