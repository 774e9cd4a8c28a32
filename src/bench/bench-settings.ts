import { parseWholeNumber } from '../common/config.js';

/**
 * The benches' BENCH_* numbers, read from the environment and checked before anything starts: a
 * round count of 0, a duration of "abc" or a negative size would otherwise start every shop, run
 * nothing (or nonsense) and write a report of NaN, or wait minutes for a list that cannot come.
 */
export class BenchSettingError extends Error {
  override readonly name = 'BenchSettingError';
}

type Env = Readonly<Record<string, string | undefined>>;

/** A number > 0 (fractions allowed, e.g. seconds), or `fallback` when the variable is unset or empty. */
export function positiveNumber(env: Env, name: string, fallback: number): number {
  const text = env[name]?.trim();
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    throw new BenchSettingError(`${name}: expected a number greater than 0, got "${env[name]}"`);
  }
  return value;
}

/** A whole number ≥ 1 (as the components' settings read one), or `fallback` when the variable is unset or empty. */
export function positiveInteger(env: Env, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text.trim() === '') return fallback;
  try {
    return parseWholeNumber(text, name, 1);
  } catch (error) {
    throw new BenchSettingError(error instanceof Error ? error.message : String(error));
  }
}

/** A comma-separated list of whole numbers ≥ 1, or `fallback` when the variable is unset or empty. */
export function positiveIntegers(env: Env, name: string, fallback: readonly number[]): number[] {
  const text = env[name]?.trim();
  if (text === undefined || text === '') return [...fallback];
  return text.split(',').map((part) => {
    const value = Number(part.trim());
    if (part.trim() === '' || !Number.isSafeInteger(value) || value < 1) {
      throw new BenchSettingError(
        `${name}: expected whole numbers of at least 1 separated by commas, got "${env[name]}"`,
      );
    }
    return value;
  });
}

/**
 * Runs `read` and, when a setting is refused, says why on stderr and exits with 2 (as a component
 * does on a bad setting), before any process is started.
 */
export function readBenchSettings<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof BenchSettingError)) throw error;
    process.stderr.write(`bench: ${error.message}\n`);
    process.exit(2);
  }
}
