/**
 * Node.js flags every component runs with, measured with `scripts/measure-memory.mjs` (see the
 * README, "Memory"):
 *
 * - `--max-semi-space-size=2`: under steady load V8 grows each young-generation semi-space to
 *   16 MiB, which keeps a busy process well above 100 MB resident; 2 MiB semi-spaces hold them under
 *   it. The cost is more scavenges: with 8 MiB, GET /goods ran about 5 % faster, and goods and the
 *   gateway ended at 96 to 105 MiB.
 * - `--heap-growing-percent=25`: a major GC runs once the old generation has grown by a quarter
 *   since the last one, instead of V8's own factor (up to 4× under load), which let purchases reach
 *   148 MB and the gateway 110 MB after a minute at 64 connections. It cost the gateway about 7 %
 *   more CPU per request, within the machine's noise.
 * - `--v8-pool-size=1`: one V8 worker thread instead of Node's four, for the parallel and concurrent
 *   parts of garbage collection and for optimizing compilation. With four workers in each of five
 *   processes beside the database on a two-core machine, the workers contend with the main threads,
 *   and the gateway's optimized code kept being thrown away and compiled again (1,656 TurboFan
 *   compilations in a run of GET /goods against 685 with one worker). Side by side with one worker:
 *   the rate of GET /goods 6 to 14 % higher and the gateway's CPU per request 9 to 16 % lower
 *   (POST /purchases: +6 to +8 %, the gateway −10 %), resident memory the same.
 */
export const COMPONENT_NODE_FLAGS = [
  '--max-semi-space-size=2',
  '--heap-growing-percent=25',
  '--v8-pool-size=1',
];

/**
 * Environment every component runs with, unless the environment sets it already. glibc keeps
 * freed memory when its threshold for returning it moves up, which it does by itself after large
 * blocks are freed: each 8 MiB scrypt working set of members then stayed resident (32 MiB more
 * after a few sign-ins, never given back). A fixed threshold of 128 KiB returns such blocks at once;
 * what it costs (one mmap and munmap per hash, against about 100 ms of hashing) was not measurable.
 */
const COMPONENT_ENV: Readonly<Record<string, string>> = { MALLOC_TRIM_THRESHOLD_: '131072' };

/** The entries of the components' environment (see COMPONENT_ENV) that `env` does not set itself. */
export function componentEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(COMPONENT_ENV).filter(([name]) => env[name] === undefined));
}
