import { mibToMegabytes, PROCESS_LIMIT_MB } from './target-check.js';

/** Where resident memory is read from: the processes of one shop, by name, in MiB. */
export interface ResidentSource {
  /** Added to each process's name, e.g. " [mTLS]"; empty for the main shop. */
  readonly suffix: string;
  read(): Map<string, number>;
}

/**
 * The highest resident memory each process reached while sampled. A process's RSS read once, after
 * a run, is one point of a sawtooth: it climbs as the heap grows between major collections and
 * drops after each, by 15 to 20 MiB in a loaded component (see docs/performance-log.md), so the
 * peak shows how close a process comes to its limit where the one reading may not.
 */
export class ResidentPeaks {
  readonly #sources: readonly ResidentSource[];
  readonly #peaks = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(sources: readonly ResidentSource[]) {
    this.#sources = sources;
  }

  /** Reads every process once; a process that cannot be read (NaN) leaves its peak as it was. */
  sample(): void {
    for (const { suffix, read } of this.#sources) {
      for (const [name, mib] of read()) {
        if (Number.isNaN(mib)) continue;
        const key = `${name}${suffix}`;
        this.#peaks.set(key, Math.max(this.#peaks.get(key) ?? 0, mib));
      }
    }
  }

  /** Samples now and every `intervalMs` until `stop`. */
  start(intervalMs: number): void {
    this.stop();
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  /** Stops sampling, after a last reading. */
  stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.sample();
  }

  /** The peak of each process so far, by name (with its source's suffix), in MiB. */
  get peaks(): Map<string, number> {
    return new Map(this.#peaks);
  }
}

/**
 * The memory section of the bench's report: each process's RSS after the run beside its peak while
 * the cases ran, in MiB, marking each figure over the 100 MB (95.4 MiB) a process may use.
 */
export function residentReport(
  after: ReadonlyMap<string, number>,
  peaks: ReadonlyMap<string, number>,
  sampleMs: number,
): string[] {
  const names = [...new Set([...after.keys(), ...peaks.keys()])];
  if (names.length === 0) return [];
  const width = Math.max(7, ...names.map((name) => name.length));
  const cell = (mib: number | undefined): string => {
    if (mib === undefined || Number.isNaN(mib)) return '-'.padStart(8);
    return `${mib.toFixed(1).padStart(7)}${mibToMegabytes(mib) > PROCESS_LIMIT_MB ? '!' : ' '}`;
  };
  return [
    `Resident memory (MiB): after the run, and the peak of readings every ${sampleMs} ms while the cases ran`,
    `${'process'.padEnd(width)} ${'after'.padStart(7)}  ${'peak'.padStart(7)}`,
    ...names.map((name) =>
      `${name.padEnd(width)} ${cell(after.get(name))} ${cell(peaks.get(name))}`.trimEnd(),
    ),
    `(! over ${PROCESS_LIMIT_MB} MB, ${((PROCESS_LIMIT_MB * 1e6) / 2 ** 20).toFixed(1)} MiB; the target is read after the run)`,
  ];
}
