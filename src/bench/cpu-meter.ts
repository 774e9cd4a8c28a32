import { readdirSync, readFileSync } from 'node:fs';
import type { CaseResult } from './case-result.js';
import { median } from './case-result.js';
import { cpuSeconds } from './process-probes.js';
import type { SystemUnderTest } from './system-under-test.js';

/** The bench process's name in the figures: it runs autocannon and the gRPC clients. */
export const LOAD_GENERATOR = 'load generator';
/** The database server's name in the figures, when the shop runs on MySQL. */
export const DATABASE = 'mariadb';

/** CPU time per answered request, in µs, in one run of a case. */
export interface CpuPerRequest {
  /** Every process of the shop (the database and the load generator aside). */
  readonly totalUs: number;
  readonly gatewayUs: number;
  /** Each process: the shop's, the database server's (when on MySQL) and the load generator's. */
  readonly byProcess: ReadonlyMap<string, number>;
}

/** The pid of the MariaDB (or MySQL) server on this machine, if one runs. */
function databaseServerPid(): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const name = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      if (name === 'mariadbd' || name === 'mysqld') return Number(entry);
    } catch {
      // The process ended while we looked.
    }
  }
  return undefined;
}

/**
 * Measures the CPU time each process spends per request in a case, alongside its throughput, from
 * /proc: on a machine shared with other work the rate of requests moves a lot from one run to the
 * next, the CPU time each request costs far less; and the process with the most CPU per request is
 * the one that limits the rate.
 */
export class CpuMeter {
  readonly samples = new Map<string, CpuPerRequest[]>();
  readonly #databasePid: number | undefined;

  constructor(options: { database: boolean }) {
    this.#databasePid = options.database ? databaseServerPid() : undefined;
  }

  /** `run`, measured: the CPU each process used over the run, divided by the requests answered. */
  wrap(system: SystemUnderTest, name: string, run: () => Promise<CaseResult>): () => Promise<CaseResult> {
    return async () => {
      const before = this.#read(system);
      const result = await run();
      const after = this.#read(system);
      const answered = Math.max(1, result.total - result.errors);
      const byProcess = new Map<string, number>();
      let total = 0;
      for (const [process, seconds] of after) {
        const used = seconds - (before.get(process) ?? seconds);
        byProcess.set(process, (used * 1e6) / answered);
        if (process !== LOAD_GENERATOR && process !== DATABASE) total += used;
      }
      const sample = {
        totalUs: (total * 1e6) / answered,
        gatewayUs: byProcess.get('gateway') ?? Number.NaN,
        byProcess,
      };
      this.samples.set(name, [...(this.samples.get(name) ?? []), sample]);
      return result;
    };
  }

  /** The medians over the rounds of a case, per process; undefined if it was not measured. */
  medians(name: string): Map<string, number> | undefined {
    const samples = this.samples.get(name);
    if (!samples?.length) return undefined;
    const processes = [...samples[0]!.byProcess.keys()];
    return new Map(
      processes.map((process) => [process, median(samples.map((s) => s.byProcess.get(process)!))]),
    );
  }

  #read(system: SystemUnderTest): Map<string, number> {
    const seconds = system.cpuSeconds();
    if (this.#databasePid !== undefined) seconds.set(DATABASE, cpuSeconds(this.#databasePid));
    const own = process.cpuUsage();
    seconds.set(LOAD_GENERATOR, (own.user + own.system) / 1e6);
    return seconds;
  }
}
