import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { PERMANENT_EXITS } from '../common/exit-codes.js';
import {
  listeningAnnounced,
  STATUS_QUESTION,
  STOP_LIMIT_MS,
  SUPERVISED_ENV,
  statusAnswered,
} from '../common/process-lifecycle.js';
import {
  componentJsonLine,
  formatLogLine,
  jsonLogLine,
  type LauncherLineLevel,
} from './log-line-formatter.js';

/** One process the supervisor runs. */
export interface ComponentSpec {
  /** The prefix of its output lines, e.g. "goods". */
  name: string;
  /** The Node.js entry point to run. */
  entry: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Node.js flags for this component, before its entry point. */
  nodeFlags?: string[];
  /**
   * Whether the components after it wait until it says it listens (LISTENING_LINE on its stdout,
   * see announceListening), or `readyTimeoutMs`; otherwise the next one starts at once.
   */
  waitUntilListening?: boolean;
}

/** Options of {@link Supervisor}. */
export interface SupervisorOptions {
  /** Where prefixed lines go. */
  write: (line: string) => void;
  /** How long a component may take to stop after SIGTERM before it is killed. */
  stopTimeoutMs?: number;
  /**
   * Whether to turn JSON log lines into readable ones; otherwise every line after its prefix is one
   * JSON object: the components' log lines as the same JSON (componentJsonLine), and the rest made like them (jsonLogLine).
   */
  pretty?: boolean;
  /** How long the components after one with `waitUntilListening` wait for it at most. */
  readyTimeoutMs?: number;
  /** Exit codes after which a component is not started again, with their meaning; PERMANENT_EXITS by default. */
  permanentExits?: ReadonlyMap<number, string>;
  /** Told when a component exited with one of `permanentExits`, e.g. to stop the others. */
  onPermanentExit?: (component: string, code: number, meaning: string) => void;
  /**
   * Told each time a component says it listens (LISTENING_LINE), after a restart too, with the URL
   * it announced ('' for none).
   */
  onListening?: (component: string, url: string) => void;
  /** Told when a component exited by itself and is to be started again. */
  onRestart?: (component: string) => void;
}

/**
 * Runs components as separate Node.js processes with every output line prefixed by the component's
 * name. A component that exits on its own is started again, after a delay that doubles up to 10 s,
 * so a crash heals without a person; one that exits with a permanent code (bad configuration, a
 * refusal) is not, since it would fail the same way forever: `onPermanentExit` hears of it instead.
 * `stop()` sends each SIGTERM in reverse start order and waits.
 */
export class Supervisor {
  readonly #running = new Map<string, ChildProcess>();
  /** Children whose output has not ended yet: 'exit' can come before their last lines are read. */
  readonly #outputOpen = new Set<Promise<void>>();
  readonly #restarts = new Map<string, number>();
  readonly #timers = new Set<NodeJS.Timeout>();
  /** Per running child, those waiting for its next status line (see askStatus). */
  readonly #statusWaiters = new Map<ChildProcess, Array<(answer: string | Error) => void>>();
  readonly #options: Required<SupervisorOptions>;
  readonly #width: number;
  #stopping = false;

  constructor(
    readonly components: readonly ComponentSpec[],
    options: SupervisorOptions,
  ) {
    this.#options = {
      stopTimeoutMs: STOP_LIMIT_MS,
      pretty: true,
      readyTimeoutMs: 10_000,
      permanentExits: PERMANENT_EXITS,
      onPermanentExit: () => {},
      onListening: () => {},
      onRestart: () => {},
      ...options,
    };
    this.#width = Math.max(...components.map((component) => component.name.length));
  }

  /**
   * Starts the components in their order, each after the one before it said it listens when that
   * one has `waitUntilListening` (the distributor: the services and the gateway then find it
   * listening rather than warn that it is not). Resolves once all have been started, or stop() was
   * called.
   */
  async start(): Promise<void> {
    for (const component of this.components) {
      if (this.#stopping) return;
      const ready = this.#spawn(component);
      if (!component.waitUntilListening) continue;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        ready,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.#options.readyTimeoutMs);
        }),
      ]);
      clearTimeout(timer);
    }
  }

  /** The process id of each running component, by name. */
  pids(): Map<string, number> {
    const pids = new Map<string, number>();
    for (const [name, child] of this.#running) if (child.pid !== undefined) pids.set(name, child.pid);
    return pids;
  }

  /**
   * Asks a running component for its status over its stdin (STATUS_QUESTION, see
   * answerStatusQuestions) and resolves with the JSON it answers on its stdout; rejects when it is
   * not running, exits first, or does not answer within `timeoutMs`.
   */
  askStatus(name: string, timeoutMs: number): Promise<string> {
    const child = this.#running.get(name);
    if (!child?.stdin?.writable) return Promise.reject(new Error(`${name} is not running`));
    return new Promise((resolve, reject) => {
      const waiters = this.#statusWaiters.get(child) ?? [];
      this.#statusWaiters.set(child, waiters);
      const answered = (answer: string | Error): void => {
        clearTimeout(timer);
        if (answer instanceof Error) reject(answer);
        else resolve(answer);
      };
      const timer = setTimeout(() => {
        const index = waiters.indexOf(answered);
        if (index >= 0) waiters.splice(index, 1);
        reject(new Error(`no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      waiters.push(answered);
      child.stdin!.write(`${STATUS_QUESTION}\n`);
    });
  }

  /** Kills whatever still runs, at once: for a supervisor that is itself exiting abnormally. */
  killAll(): void {
    for (const child of this.#running.values()) child.kill('SIGKILL');
  }

  /**
   * Stops every component (SIGTERM, then SIGKILL past `stopTimeoutMs`); resolves with the names of
   * those it had to kill, in the order they were killed, so that the caller can tell a clean stop
   * from one that lost what a component had not finished.
   */
  async stop(): Promise<string[]> {
    this.#stopping = true;
    for (const timer of this.#timers) clearTimeout(timer);
    const killed: string[] = [];
    // Reverse start order: the gateway first, the distributor last, so nobody loses it mid-stop.
    for (const component of [...this.components].reverse()) {
      const child = this.#running.get(component.name);
      if (child && (await this.#terminate(component.name, child)) === 'killed') killed.push(component.name);
    }
    await Promise.all(this.#outputOpen);
    return killed;
  }

  /** Starts one component; resolves when it says it listens, or exits first. */
  #spawn(component: ComponentSpec): Promise<void> {
    const startedAt = Date.now();
    let becameReady = (): void => {};
    const ready = new Promise<void>((resolve) => {
      becameReady = resolve;
    });
    // execArgv carries loader flags (e.g. tsx's) so that the components run as the supervisor does.
    const child = spawn(
      process.execPath,
      [...process.execArgv, ...(component.nodeFlags ?? []), component.entry, ...(component.args ?? [])],
      {
        env: { ...process.env, ...component.env, [SUPERVISED_ENV]: '1' },
        // stdin is a pipe that only closes when the supervisor is gone, however it died: the
        // component then stops by itself instead of running on orphaned (see stopOnSignals).
        stdio: ['pipe', 'pipe', 'pipe'],
        // Its own process group: a Ctrl-C at the terminal reaches the supervisor only, which then stops
        // each component once, in order, instead of every process getting two signals.
        detached: true,
      },
    );
    this.#running.set(component.name, child);
    // A question written as it exits (askStatus) fails with EPIPE: its exit answers the question.
    child.stdin?.on('error', () => {});
    const outputEnded = new Promise<void>((resolve) => child.once('close', () => resolve()));
    this.#outputOpen.add(outputEnded);
    void outputEnded.then(() => this.#outputOpen.delete(outputEnded));
    const prefix = this.#prefix(component.name);
    for (const [streamName, stream] of [
      ['stdout', child.stdout],
      ['stderr', child.stderr],
    ] as const) {
      // None when the spawn failed before its pipes were made (EMFILE): 'error' below says so.
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => {
        const status = statusAnswered(line);
        if (status !== undefined) {
          for (const answered of this.#statusWaiters.get(child)?.splice(0) ?? []) answered(status);
          return;
        }
        const announced = listeningAnnounced(line);
        if (announced !== undefined) {
          becameReady();
          this.#options.onListening(component.name, announced);
        } else {
          const shown = this.#options.pretty
            ? formatLogLine(line)
            : componentJsonLine(component.name, line, streamName);
          this.#options.write(`${prefix} ${shown}`);
        }
      });
    }
    const exited = (code: number | null, signal: NodeJS.Signals | null): void => {
      becameReady();
      this.#running.delete(component.name);
      for (const answered of this.#statusWaiters.get(child) ?? []) answered(new Error('it exited'));
      this.#statusWaiters.delete(child);
      if (this.#stopping) return;
      const meaning = code === null ? undefined : this.#options.permanentExits.get(code);
      if (meaning !== undefined) {
        this.#say(
          component.name,
          'error',
          `exited with code ${code} (${meaning}); starting it again would fail the same way, so it stays stopped`,
        );
        this.#options.onPermanentExit(component.name, code!, meaning);
        return;
      }
      // A process that ran for a while before it died starts again quickly; a crash loop backs off.
      const failures = Date.now() - startedAt > 30_000 ? 0 : (this.#restarts.get(component.name) ?? 0) + 1;
      this.#restarts.set(component.name, failures);
      const delay = Math.min(10_000, 500 * 2 ** (failures - 1));
      this.#say(
        component.name,
        'warn',
        `${code === null && signal === null ? 'not started' : `exited (${signal ?? `code ${code}`})`}; starting it again in ${delay} ms`,
      );
      this.#options.onRestart(component.name);
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        if (!this.#stopping) void this.#spawn(component);
      }, delay);
      this.#timers.add(timer);
    };
    child.on('exit', exited);
    child.on('error', (error) => {
      this.#say(component.name, 'error', `could not start: ${error.message}`);
      // A spawn that failed (EAGAIN, EMFILE: out of processes or descriptors, for a while) has no
      // 'exit': it is one, started again with backoff. Before, the component was never started
      // again (and without pipes, the launcher crashed reading them).
      if (child.pid === undefined) exited(null, null);
    });
    return ready;
  }

  /** A line of the supervisor's own about a component, under the component's prefix. */
  #say(name: string, level: LauncherLineLevel, text: string): void {
    const shown = this.#options.pretty ? text : jsonLogLine(name, level, text, 'launcher');
    this.#options.write(`${this.#prefix(name)} ${shown}`);
  }

  #prefix(name: string): string {
    return `[${name.padEnd(this.#width)}]`;
  }

  /** Stops one component: 'stopped' once it exited on SIGTERM, 'killed' when it took SIGKILL. */
  #terminate(name: string, child: ChildProcess): Promise<'stopped' | 'killed'> {
    return new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve('stopped');
      let killSent = false;
      const kill = setTimeout(() => {
        killSent = true;
        // Whatever it had not finished (its traces, a call in flight) is lost: say so.
        this.#say(
          name,
          'warn',
          `still running ${this.#options.stopTimeoutMs} ms after SIGTERM: killed (SIGKILL)`,
        );
        child.kill('SIGKILL');
      }, this.#options.stopTimeoutMs);
      // Killed only if it died of our SIGKILL: one that exited by itself just as it was sent was not.
      child.once('exit', (_code, signal) => {
        clearTimeout(kill);
        resolve(killSent && signal === 'SIGKILL' ? 'killed' : 'stopped');
      });
      child.kill('SIGTERM');
    });
  }
}
