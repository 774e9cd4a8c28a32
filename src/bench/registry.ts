import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, getPriority, loadavg, setPriority, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { NodeState, type Snapshot } from '../gen/distributor.js';
import { COMPONENT_NODE_FLAGS } from '../launcher/node-flags.js';
import { RegistryWatcher } from '../registry-client/registry-watcher.js';
import { positiveIntegers, readBenchSettings } from './bench-settings.js';
import type { DistributorProbeMessage, DistributorProbeRequest } from './registry-distributor.js';
import { SimulatedNodes } from './simulated-nodes.js';
import type { StallReading } from './stall-probe.js';
import { mibToMegabytes } from './target-check.js';

// `npm run bench:registry`: the distributor alone, as a process, under N simulated nodes (services
// of the shop, registered over a handful of connections from this host, most sharing a few
// descriptor sets) and 5 watchers that keep the list with its descriptor sets as a gateway does.
// For each N: the time until every watcher lists all N; then single changes (state changes, a join,
// a leave), each timed until every watcher has it and costed in bytes the distributor wrote
// (wchar of /proc/<pid>/io: every write(2), sockets included); the longest event-loop stall inside
// the distributor, in wall-clock time and in the CPU time its main thread ran (StallProbe: on a
// shared machine the wall clock includes time spent waiting for a core); its peak RSS (VmHWM).
// Once per N, no repetition: the machine is shared.

const sizes = readBenchSettings(() =>
  positiveIntegers(process.env, 'BENCH_REGISTRY_NODES', [100, 1000, 5000]),
);
const WATCHERS = 5;
const CONNECTIONS = 4;
const TARGETS = { listAllMs: 10_000, changeBytes: 64 * 1024, changeMs: 1_000, stallMs: 100, rssMB: 250 };

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The distributor process, and what /proc and its own probe say about it. */
class DistributorProcess {
  readonly #child: ChildProcess;
  readonly #replies: Array<(message: DistributorProbeMessage) => void> = [];

  private constructor(child: ChildProcess) {
    this.#child = child;
    child.on('message', (message: DistributorProbeMessage) => this.#replies.shift()?.(message));
  }

  static async start(token: string): Promise<{ process: DistributorProcess; address: string }> {
    const child = fork(fileURLToPath(new URL('./registry-distributor.js', import.meta.url)), [], {
      execArgv: [...COMPONENT_NODE_FLAGS],
      env: { ...process.env, SHOP_REGISTRY_TOKEN: token },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const started = new DistributorProcess(child);
    const listening = await started.#next();
    if (listening.type !== 'listening') throw new Error('the distributor did not start');
    return { process: started, address: `127.0.0.1:${listening.port}` };
  }

  get pid(): number {
    return this.#child.pid!;
  }

  /** Bytes the process has written (write(2) and the like, sockets included). */
  writtenBytes(): number {
    return Number(/^wchar:\s+(\d+)$/m.exec(readFileSync(`/proc/${this.pid}/io`, 'utf8'))?.[1]);
  }

  /** Peak resident memory, in MiB. */
  peakRssMiB(): number {
    return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'))?.[1]) / 1024;
  }

  /** The longest event-loop stall since the last reading. */
  async stalls(): Promise<StallReading> {
    const reply = await this.#ask({ type: 'loop' });
    if (reply.type !== 'loop') throw new Error('unexpected reply');
    return reply;
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.send({ type: 'stop' } satisfies DistributorProbeRequest);
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }

  #ask(request: DistributorProbeRequest): Promise<DistributorProbeMessage> {
    const reply = this.#next();
    this.#child.send(request);
    return reply;
  }

  #next(): Promise<DistributorProbeMessage> {
    return new Promise((resolve) => this.#replies.push(resolve));
  }
}

/** Resolves with the time taken once `done()` holds, checked after every watcher snapshot. */
function until(
  watchers: readonly RegistryWatcher[],
  done: () => boolean,
  timeoutMs: number,
): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!done()) return;
      cleanup();
      resolve(performance.now() - started);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`not reached within ${timeoutMs} ms`));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      for (const watcher of watchers) watcher.off('snapshot', check);
    };
    for (const watcher of watchers) watcher.on('snapshot', check);
    check();
  });
}

const listsAll = (snapshot: Snapshot | undefined, count: number): boolean =>
  snapshot !== undefined && snapshot.nodes.length === count;

interface ChangeFigure {
  change: string;
  bytes: number;
  ms: number;
}

interface RunFigures {
  nodes: number;
  distinctSets: number;
  listAllMs: number;
  registrationRefusals: number;
  changes: ChangeFigure[];
  maxChangeBytes: number;
  maxChangeMs: number;
  stalls: { registering: StallReading; changes: StallReading };
  peakRssMiB: number;
  lostStreams: number;
  watcherDisconnects: number;
}

async function run(
  count: number,
  token: string,
  { process: distributor, address }: { process: DistributorProcess; address: string },
): Promise<RunFigures> {
  const watchers = Array.from(
    { length: WATCHERS },
    () =>
      new RegistryWatcher({
        distributor: address,
        token,
        descriptorSets: true,
        channelOptions: { 'grpc.use_local_subchannel_pool': 1 },
      }),
  );
  let watcherDisconnects = 0;
  for (const watcher of watchers) {
    watcher.on('disconnected', () => watcherDisconnects++);
    watcher.start();
  }
  const nodes = new SimulatedNodes({ distributor: address, token, connections: CONNECTIONS });
  try {
    await until(watchers, () => watchers.every((watcher) => listsAll(watcher.snapshot, 0)), 10_000);
    await distributor.stalls();

    nodes.add(count);
    const listAllMs = await until(
      watchers,
      () => watchers.every((watcher) => listsAll(watcher.snapshot, count)),
      120_000,
    );
    const registering = await distributor.stalls();
    say(
      `  ${count} nodes (${nodes.distinctSets} distinct descriptor sets) listed by all ${WATCHERS} watchers ` +
        `in ${(listAllMs / 1000).toFixed(2)} s; ${nodes.refusals} registrations refused on the way and retried`,
    );
    // Let the last acknowledgements and keepalives settle before counting bytes.
    await sleep(1_000);

    const changes: ChangeFigure[] = [];
    const measure = async (change: string, act: () => void, seen: (snapshot: Snapshot) => boolean) => {
      const before = distributor.writtenBytes();
      act();
      const ms = await until(watchers, () => watchers.every((watcher) => seen(watcher.snapshot!)), 10_000);
      // Whatever the distributor writes for it (the acknowledgement included) is out by now.
      await sleep(200);
      changes.push({ change, bytes: distributor.writtenBytes() - before, ms });
    };
    const stateOf = (snapshot: Snapshot, id: string) => snapshot.nodes.find((node) => node.id === id)?.state;
    for (let change = 0; change < 8; change++) {
      const index = Math.floor((change * count) / 8);
      const id = nodes.idOf(index);
      await measure(
        'drain',
        () => nodes.setState(index, NodeState.NODE_STATE_DRAINING),
        (snapshot) => stateOf(snapshot, id) === NodeState.NODE_STATE_DRAINING,
      );
    }
    await measure(
      'join',
      () => nodes.add(1),
      (snapshot) => snapshot.nodes.length === count + 1,
    );
    await measure(
      'leave',
      () => nodes.leave(count),
      (snapshot) => snapshot.nodes.length === count,
    );
    const changing = await distributor.stalls();
    return {
      nodes: count,
      distinctSets: nodes.distinctSets,
      listAllMs,
      registrationRefusals: nodes.refusals,
      changes,
      maxChangeBytes: Math.max(...changes.map((change) => change.bytes)),
      maxChangeMs: Math.max(...changes.map((change) => change.ms)),
      stalls: { registering, changes: changing },
      peakRssMiB: distributor.peakRssMiB(),
      lostStreams: nodes.lost,
      watcherDisconnects,
    };
  } finally {
    nodes.stop();
    for (const watcher of watchers) watcher.stop();
    await distributor.stop();
  }
}

say(
  `bench:registry: ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
);
say(
  `bench:registry: the distributor alone; N simulated nodes over ${CONNECTIONS} connections, ${WATCHERS} watchers`,
);
// The machine is shared: stalls and times include waiting for a core, so say how busy it was.
say(
  `bench:registry: load average ${loadavg()
    .map((load) => load.toFixed(1))
    .join(' ')} at the start`,
);
const token = randomBytes(24).toString('base64url');
// This process plays every node and watcher, which on the hosts of a real system would not take
// the distributor's cores. So the distributors (one per N) are all started first, at this
// process's priority, and then this process yields the CPU to them (nice +10 on every thread;
// lowering one's own priority needs no privilege): the stall seen in the distributor is then its own, not time it
// waited for a core the load generator held.
const distributors: Array<Awaited<ReturnType<typeof DistributorProcess.start>>> = [];
const results: RunFigures[] = [];
try {
  for (const _ of sizes) distributors.push(await DistributorProcess.start(token));
  say(`bench:registry: ${yieldCpu(10)}`);
  for (const count of sizes) {
    say(`N = ${count} (load average ${loadavg()[0]!.toFixed(1)})`);
    const figures = await run(count, token, distributors.shift()!);
    results.push(figures);
    const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
    say(
      `  per change: ${Math.round(mean(figures.changes.map((change) => change.bytes)))} B written on average ` +
        `(at most ${figures.maxChangeBytes} B), every watcher had it within ${figures.maxChangeMs.toFixed(0)} ms`,
    );
    for (const [phase, stall] of [
      ['while registering', figures.stalls.registering],
      ['during the changes', figures.stalls.changes],
    ] as const) {
      say(
        `  longest event-loop stall ${phase}: ${stall.maxMs.toFixed(0)} ms (running ${stall.runningMs.toFixed(0)} ms, ` +
          `waiting for a CPU ${stall.waitingMs.toFixed(0)} ms); the longest run of its own work: ${stall.maxRunningMs.toFixed(0)} ms`,
      );
    }
    say(
      `  peak RSS ${figures.peakRssMiB.toFixed(0)} MiB; streams lost: ${figures.lostStreams} nodes, ` +
        `${figures.watcherDisconnects} watchers`,
    );
  }
} finally {
  // Those of the sizes not run (a failed start or run) would keep this process alive.
  await Promise.all(distributors.map((started) => started.process.stop()));
}

say('');
say(
  'nodes | distinct sets | all listed (s) | bytes/change (max) | change seen (max ms) | ' +
    'stall, wall (ms) | stall, own work (ms) | peak RSS (MiB)',
);
for (const figures of results) {
  say(
    `${figures.nodes} | ${figures.distinctSets} | ${(figures.listAllMs / 1000).toFixed(2)} | ${figures.maxChangeBytes} | ` +
      `${figures.maxChangeMs.toFixed(0)} | ${wallStall(figures).toFixed(0)} | ${ownStall(figures).toFixed(0)} | ` +
      `${figures.peakRssMiB.toFixed(0)}`,
  );
}
const checks = results.flatMap((figures) => [
  ...(figures.nodes === 1000
    ? [
        check(`N=1000: every watcher lists all (ms)`, figures.listAllMs, TARGETS.listAllMs),
        check(`N=1000: peak RSS (MB)`, mibToMegabytes(figures.peakRssMiB), TARGETS.rssMB),
      ]
    : []),
  check(`N=${figures.nodes}: bytes written per change`, figures.maxChangeBytes, TARGETS.changeBytes),
  check(`N=${figures.nodes}: change reaches every watcher (ms)`, figures.maxChangeMs, TARGETS.changeMs),
  check(`N=${figures.nodes}: longest event-loop stall, own work (ms)`, ownStall(figures), TARGETS.stallMs),
  check(`N=${figures.nodes}: longest event-loop stall, wall clock (ms)`, wallStall(figures), TARGETS.stallMs),
  check(`N=${figures.nodes}: streams lost`, figures.lostStreams + figures.watcherDisconnects, 0),
]);
say('');
for (const target of checks) {
  say(
    `${target.met ? 'MET   ' : 'MISSED'} ${target.name.padEnd(52)} ${target.value.toFixed(0).padStart(9)}  (target ≤ ${target.target})`,
  );
}
mkdirSync('bench-results', { recursive: true });
const file = `bench-results/${new Date().toISOString().replace(/[:.]/g, '-')}-registry.json`;
writeFileSync(
  file,
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      cores: cpus().length,
      node: process.version,
      loadavg: loadavg(),
      results,
      checks,
    },
    null,
    2,
  )}\n`,
);
say(`bench:registry: written ${file}`);

/**
 * Lowers this process's priority by `increment`, every thread of it (on Linux a priority is a
 * thread's: V8's and libuv's threads, started already, would keep theirs); says what it did.
 */
function yieldCpu(increment: number): string {
  const before = getPriority();
  const target = Math.min(19, before + increment);
  try {
    const threads = readdirSync('/proc/self/task').map(Number);
    for (const thread of threads) setPriority(thread, target);
    return `the load generator (this process, ${threads.length} threads) runs at nice ${target}, the distributors at nice ${before}`;
  } catch (error) {
    return `the load generator could not lower its priority (${(error as Error).message}): stalls include waiting for its work`;
  }
}

function wallStall(figures: RunFigures): number {
  return Math.max(figures.stalls.registering.maxMs, figures.stalls.changes.maxMs);
}

function ownStall(figures: RunFigures): number {
  return Math.max(figures.stalls.registering.maxRunningMs, figures.stalls.changes.maxRunningMs);
}

function check(name: string, value: number, target: number) {
  return { name, value, target, met: value <= target };
}
