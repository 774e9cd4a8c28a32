import type { MedianInterval } from './case-result.js';

/** A figure of the run against the target an issue set for it. */
export interface TargetCheck {
  readonly name: string;
  readonly value: number;
  readonly target: number;
  /** "min": the value must reach the target; "max": it must not exceed it. */
  readonly kind: 'min' | 'max';
  /** Where the value (a median of pairs) lies at 95 % confidence, when the run can say. */
  readonly interval: MedianInterval | undefined;
  readonly met: boolean;
}

export function checkTarget(
  name: string,
  value: number,
  target: number,
  kind: 'min' | 'max' = 'min',
  interval?: MedianInterval,
): TargetCheck {
  return { name, value, target, kind, interval, met: kind === 'min' ? value >= target : value <= target };
}

/** The resident memory each process of the shop may use (issue 9), in MB of 10⁶ bytes. */
export const PROCESS_LIMIT_MB = 100;

/**
 * RSS is read in MiB, but the issues set memory targets in MB: checked in MB (10^6 bytes), the stricter reading.
 */
export function mibToMegabytes(mib: number): number {
  return (mib * 2 ** 20) / 1e6;
}

/** The report's line for a target: MET or MISSED, the value, the target, and the value's interval. */
export function targetLine(check: TargetCheck): string {
  const { interval } = check;
  // A target within the interval is one this run cannot tell from the spread of its pairs.
  const within = interval && interval.low <= check.target && check.target <= interval.high;
  const spread = interval
    ? `  95 %: ${interval.low.toFixed(3)} to ${interval.high.toFixed(3)}${within ? ', the target within it' : ''}`
    : '';
  return `${check.met ? 'MET   ' : 'MISSED'} ${check.name.padEnd(44)} ${check.value.toFixed(3).padStart(9)}  (target ${check.kind === 'min' ? '≥' : '≤'} ${check.target})${spread}`;
}
