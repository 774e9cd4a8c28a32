import { readFileSync } from 'node:fs';

/**
 * How long the calling thread has waited for a CPU while ready to run, in ms, from the kernel's
 * scheduler statistics (Linux): what a loaded machine adds to the wall time of its work.
 */
export function runQueueWaitMs(): number {
  const waitedNs = readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[1];
  return Number(waitedNs) / 1e6;
}

/**
 * A stopwatch of the wall time less the calling thread's wait for a CPU: its own work and its own
 * waits (a timer, a grace, a peer) count, the delays of other processes on a busy machine do not.
 * For a bound that tells "waited out a timer" from "did its work, slowly", where CPU time alone
 * would not see the wait.
 */
export function unloadedStopwatch(): () => number {
  const [wallStart, waitStart] = [performance.now(), runQueueWaitMs()];
  return () => performance.now() - wallStart - (runQueueWaitMs() - waitStart);
}
