import { readFileSync } from 'node:fs';

/**
 * The pid of the running launcher whose token the token file holds, as its pid file (the token
 * file's name + `.pid`) says; undefined when none runs: no pid file, one of this very process (a
 * container's launcher is the same pid at every start), or of a process gone (a launcher killed
 * with SIGKILL leaves both files behind).
 *
 * A second `npm start` on the same DATA_DIR with ports of its own (a second set of instances)
 * wrote its token over the first one's and removed the file at its exit: tools reading it then
 * had the second shop's token, then none, while the first ran on.
 */
export function runningTokenHolder(pidFile: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (error) {
    // EPERM: alive, another user's.
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}
