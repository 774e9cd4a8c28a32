// One setup at a time in a project folder. `npm run goods` and `npm run members` started together
// (two service units, a script that starts all five) each ran scripts/setup.mjs at once: two first
// installs emptied node_modules under each other, two rebuilds of better-sqlite3 wrote one binary
// together, and a component could start from a dist/ file that another build was rewriting. A
// setup that finds the lock held waits, then finds the work done (the install there, the addon
// loading, the build unchanged).
//
// The lock is a Unix socket in Linux's abstract namespace, named after the folder, that the holder
// listens on: the kernel lets one process bind a name at a time, and frees it when the process
// ends however it ends (Ctrl-C, SIGKILL, a container stopped). A lock file would outlive a killed
// setup, and telling a file left over from one held by a live setup needs pids, which mean nothing
// after a restart or in another container (a first version did that, in 200 lines of heuristics).
// Node's sockets are made close-on-exec, so the npm processes setup runs do not hold it. Elsewhere
// than Linux there is no such namespace, and setups are not serialised.
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { createServer } from 'node:net';

/** The lock's name for the project folder `folder`: the same for every path that leads to it. */
export function setupLockName(folder = process.cwd()) {
  const digest = createHash('sha256').update(realpathSync(folder)).digest('hex').slice(0, 32);
  return `\0grpc-shop-setup-${digest}`;
}

/** Binds `name`: the server, or the error (EADDRINUSE while another process holds it). */
function bind(name) {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error) => resolve(error));
    server.listen(name, () => resolve(server));
  });
}

/**
 * Takes the lock of the project folder, waiting while another setup holds it (up to `waitMs`, then
 * it stops, exit 1); held until this process exits. Where it cannot be had for another reason (not
 * Linux), setup goes on without it.
 * @param {{ name?: string, waitMs?: number, pollMs?: number, say?: (line: string) => void }} options
 */
export async function acquireSetupLock({
  name = process.platform === 'linux' ? setupLockName() : undefined,
  waitMs = 15 * 60_000,
  pollMs = 200,
  say = (line) => process.stderr.write(`${line}\n`),
} = {}) {
  if (name === undefined) return;
  const deadline = Date.now() + waitMs;
  let told = false;
  for (;;) {
    const bound = await bind(name);
    if (!(bound instanceof Error)) {
      // Nothing is ever accepted: the socket only holds the name, and must not keep setup running.
      bound.unref();
      return;
    }
    if (bound.code !== 'EADDRINUSE') return;
    if (Date.now() >= deadline) {
      say(
        `setup: another setup has been installing or building in ${process.cwd()} for ${Math.round(waitMs / 60_000)} min; stopping`,
      );
      process.exit(1);
    }
    if (!told) {
      told = true;
      say('setup: another setup is installing or building in this folder; waiting for it');
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
