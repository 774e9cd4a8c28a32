import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';

export { freePort, freePorts, residentMiB as rssMiB } from '../../../src/bench/process-probes.js';

/** A component started as its own OS process from src/, through tsx. */
export interface ComponentProcess {
  readonly child: ChildProcess;
  /** Every line it printed so far. */
  readonly lines: string[];
  /** Resolves with the first printed line that matches. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code (or signal) once it has exited. */
  exited(): Promise<number | string>;
}

/**
 * The environment of a launcher (`npm start`) under test: the distributor and the gateway on the
 * ports given (the gateway on any free one by default), the services on any free port, the
 * embedded store in `dataDir`.
 */
export function launcherEnv(options: {
  distributorPort: number | string;
  gatewayPort?: number | string;
  dataDir: string;
}): NodeJS.ProcessEnv {
  return {
    DISTRIBUTOR_PORT: String(options.distributorPort),
    GATEWAY_PORT: String(options.gatewayPort ?? 0),
    GOODS_PORT: '0',
    MEMBERS_PORT: '0',
    PURCHASES_PORT: '0',
    DATA_DIR: options.dataDir,
    MYSQL_URL: '',
  };
}

/** Options of {@link spawnComponent}. */
export interface SpawnOptions {
  /**
   * A command that runs node, e.g. `['ip', 'netns', 'exec', 'shop-1-goods']`; it must exec node in
   * place (not fork), so that the child's pid and signals are node's.
   */
  readonly prefix?: readonly string[];
  /** Node.js flags before the entry point, e.g. COMPONENT_NODE_FLAGS (V8 flags NODE_OPTIONS refuses). */
  readonly nodeFlags?: readonly string[];
  /**
   * Gives the child a stdin pipe held open, as the launcher does (a component run with
   * SHOP_SUPERVISED=1 stops when its stdin ends); else its stdin is closed.
   */
  readonly stdinOpen?: boolean;
}

export function spawnComponent(
  entry: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  { prefix = [], nodeFlags = [], stdinOpen = false }: SpawnOptions = {},
): ComponentProcess {
  const [command, ...commandArgs] = [
    ...prefix,
    process.execPath,
    ...nodeFlags,
    '--import',
    'tsx',
    entry,
    ...args,
  ];
  return spawnLogged(command!, commandArgs, {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdinOpen,
  });
}

/**
 * Runs a component that is expected to stop by itself (a start refused): its exit code and all it
 * printed, read to the end of its output.
 */
export async function runComponentToExit(
  entry: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; output: string }> {
  const component = spawnComponent(entry, args, env);
  const [code] = (await once(component.child, 'close')) as [number | null];
  return { code, output: component.lines.join('\n') };
}

/** Runs any command with its stdout and stderr collected line by line (e.g. `npm start`). */
export function spawnLogged(
  command: string,
  args: readonly string[],
  { stdinOpen = false, ...options }: { env: NodeJS.ProcessEnv; cwd?: string; stdinOpen?: boolean },
): ComponentProcess {
  const child = spawn(command, args, { ...options, stdio: [stdinOpen ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (line) => {
      lines.push(line);
      for (const wake of waiters) wake();
    });
  }
  const exit = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  return {
    child,
    lines,
    exited: () => exit,
    waitForLine: (pattern, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const found = lines.find((line) => pattern.test(line));
          if (!found) return;
          cleanup();
          resolve(found);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; got:\n${lines.join('\n')}`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      }),
  };
}

/** The children of a process whose command line contains `needle`. */
export function childPids(parentPid: number, needle = ''): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === parentPid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) {
        found.push(Number(entry));
      }
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Every process under `rootPid` (children, their children, ...), the root excluded. */
export function descendantPids(rootPid: number): number[] {
  const found: number[] = [];
  const queue = [rootPid];
  while (queue.length > 0) {
    for (const child of childPids(queue.shift()!)) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** Whether a process still runs: a zombie waiting for its parent to reap it has stopped. */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Whether a TCP port on 127.0.0.1 can be bound now, i.e. nobody holds it. */
export function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}
