import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * Makes `folder` and the folders above it that are missing, as `mkdir -p` does, each with `mode`.
 *
 * Not `mkdirSync(folder, { recursive: true })`: where a folder cannot be made although the one
 * above it exists and says ENOENT (under /proc, say: DATA_DIR=/proc/shop), Node 20's recursive
 * mkdir makes the parent again and retries for ever, in a synchronous call, so the process hangs
 * and not even SIGTERM stops it. Here every folder is made once, from the top: such a one fails
 * with its error.
 */
export function makeFolder(folder: string, mode: number): void {
  const target = resolve(folder);
  // The folder itself always: if something is there, mkdir's EEXIST tells a folder from a file.
  const missing = [target];
  for (let current = dirname(target); current !== dirname(current); current = dirname(current)) {
    const found = statSync(current, { throwIfNoEntry: false });
    if (found !== undefined) {
      if (!found.isDirectory()) throw notAFolder(current, 'ENOTDIR');
      break;
    }
    missing.push(current);
  }
  for (const path of missing.reverse()) {
    try {
      mkdirSync(path, { mode });
    } catch (error) {
      // There already, or made meanwhile by another process (instances share DATA_DIR): as good.
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw error;
      if (!statSync(path, { throwIfNoEntry: false })?.isDirectory()) throw notAFolder(path, code);
    }
  }
}

/**
 * mkdir's own words for a file in a folder's place, "EEXIST: file already exists, mkdir '…'", read as
 * if the folder were there and something else went wrong (DATA_DIR naming a file, say).
 */
function notAFolder(path: string, code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${path} is a file, not a folder`), { code, path });
}
