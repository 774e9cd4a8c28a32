// One setup at a time in a project folder. `npm run goods` and `npm run members` started together
// (two service units, a script that starts all five) each ran scripts/setup.mjs at once: two first
// installs emptied node_modules under each other, two rebuilds of better-sqlite3 wrote one binary
// together, and a component could start from a dist/ file that another build was rewriting. The
// lock is a file holding its holder's pid (and where that pid is), made with O_EXCL; a setup that
// finds it waits, then finds the work done (the install there, the addon loading, the build
// unchanged).
import {
  closeSync,
  linkSync,
  openSync,
  readFileSync,
  readlinkSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';

export const LOCK_FILE = '.setup.lock';

/**
 * Whether process `pid` runs a setup (EPERM: it runs, as another user). Where /proc tells, a pid
 * that now runs something else (reused after a restart) is not one: its lock is left over.
 */
function runsSetup(pid) {
  // This setup has not taken the lock, and the shell npm runs it from is waiting for it: a lock
  // naming either was left by a setup before, whose pid came round again (a container started
  // afresh numbers its processes as it did the last time).
  if (pid === process.pid || pid === process.ppid) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if (error?.code !== 'EPERM') return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('setup');
  } catch {
    return true;
  }
}

/**
 * Where this process's pids mean something: this machine (its name) and its pid namespace (a
 * container has its own). Containers sharing the project folder each number their processes from
 * 1: a pid in another's lock names nobody here, or another process, or this very setup.
 */
const HOST = hostname();
const NAMESPACE = (() => {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return '';
  }
})();

/**
 * The lock's holder: its pid, and the machine and pid namespace that pid is in (a lock of the pid
 * alone: here).
 */
function holderOf(path) {
  try {
    const [first, second] = readFileSync(path, 'utf8').split('\n');
    const pid = Number.parseInt(first ?? '', 10);
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
    const place = second?.trim() ?? '';
    if (place === '') return { pid, host: HOST, namespace: NAMESPACE };
    const space = place.indexOf(' ');
    return space < 0
      ? { pid, host: place, namespace: '' }
      : { pid, host: place.slice(0, space), namespace: place.slice(space + 1) };
  } catch {
    return undefined;
  }
}

/**
 * Which file is at `path`: its inode, and its time of writing (a freed inode is soon reused; the
 * change time will not do, a rename changes it).
 */
function identityOf(path) {
  try {
    const { ino, mtimeNs } = statSync(path, { bigint: true });
    return `${ino}:${mtimeNs}`;
  } catch {
    return undefined;
  }
}

/** How long ago the lock was taken; 0 when it cannot be told. */
function ageOf(path) {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Takes the lock at `path`, waiting while a running setup holds it; released when this process
 * exits. A lock whose holder is gone (killed, or the machine restarted) is taken over. Where the
 * folder cannot be written (a read-only install, which setup does not write), there is no lock to
 * take and none is needed.
 * @param {{ path?: string, waitMs?: number, pollMs?: number, say?: (line: string) => void }} options
 */
export function acquireSetupLock({
  path = LOCK_FILE,
  waitMs = 15 * 60_000,
  pollMs = 200,
  say = (line) => process.stderr.write(`${line}\n`),
} = {}) {
  const deadline = Date.now() + waitMs;
  let waitingFor;
  let emptySeen = false;
  for (;;) {
    let fd;
    try {
      fd = openSync(path, 'wx');
    } catch (error) {
      if (error?.code !== 'EEXIST') return;
      // The file judged below, told from one another setup makes in its place meanwhile.
      const seen = identityOf(path);
      const holder = holderOf(path);
      if (holder !== undefined) emptySeen = false;
      if (holder === undefined && !emptySeen) {
        // Caught between another setup's making the file and its writing its pid: look again.
        emptySeen = true;
        sleep(pollMs);
        continue;
      }
      // A setup in another container or on another machine sharing the folder: its pid cannot be
      // looked at from here, so its lock counts as held until it is as old as the wait. One of this
      // machine's name in another pid namespace was this container's before it started again
      // (a container keeps its name, not its namespace): that namespace is gone, and its setup.
      const elsewhere = holder !== undefined && holder.host !== HOST;
      const restarted = holder !== undefined && !elsewhere && holder.namespace !== NAMESPACE;
      const gone =
        holder === undefined || restarted || (elsewhere ? ageOf(path) >= waitMs : !runsSetup(holder.pid));
      if (gone) {
        say(
          `setup: taking over ${path}, left by a setup that is gone${holder ? ` (pid ${holder.pid}${elsewhere ? ` on ${holder.host}` : ''}${restarted ? ` in pid namespace ${holder.namespace || 'unknown'}, gone with the container's last run` : ''})` : ''}`,
        );
        // Setups started together all judge the same lock left over: the one that removes it
        // first takes the lock, and another removing the path then would remove that new lock.
        // The file is moved aside (one move wins), and put back when it is not the one judged.
        // A name of its own: two containers may number their setups alike.
        const aside = `${path}.${process.pid}-${Math.random().toString(36).slice(2)}.gone`;
        try {
          renameSync(path, aside);
        } catch (error) {
          if (error?.code !== 'ENOENT') {
            // A folder this user cannot write (a read-only install, where setup writes nothing):
            // looking again would find the same file for ever.
            say(`setup: ${path} cannot be removed (${error?.code ?? error}): going on without it`);
            return;
          }
          emptySeen = false;
          continue;
        }
        if (seen === undefined || identityOf(aside) !== seen) {
          try {
            linkSync(aside, path);
          } catch {}
        }
        try {
          unlinkSync(aside);
        } catch {}
        emptySeen = false;
        continue;
      }
      const who = `pid ${holder.pid}${elsewhere ? ` on ${holder.host}` : ''}`;
      if (Date.now() >= deadline) {
        say(
          `setup: another setup (${who}) has held ${path} in ${process.cwd()} for ${Math.round(waitMs / 60_000)} min; ` +
            `stopping (remove ${path} if no setup runs there)`,
        );
        process.exit(1);
      }
      if (waitingFor !== who) {
        waitingFor = who;
        say(`setup: another setup (${who}) is installing or building in this folder; waiting for it`);
      }
      sleep(pollMs);
      continue;
    }
    writeSync(fd, `${process.pid}\n${HOST} ${NAMESPACE}\n`);
    closeSync(fd);
    process.once('exit', () => {
      const holder = holderOf(path);
      if (holder?.pid === process.pid && holder.host === HOST && holder.namespace === NAMESPACE) {
        try {
          unlinkSync(path);
        } catch {}
      }
    });
    return;
  }
}
