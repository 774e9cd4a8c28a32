import { createServer } from 'node:net';
import { formatHostPort } from '../common/config.js';
import type { PlannedPort } from './port-plan.js';

/**
 * The ports of `ports` that another process holds now, found by listening on each as its
 * component would (and letting go at once). Only a port in use counts: an address this machine
 * lacks or a port below 1024 is the component's to refuse, naming its setting (exit 2).
 */
export async function heldPorts(ports: readonly PlannedPort[]): Promise<PlannedPort[]> {
  const held = await Promise.all(ports.map(async (entry) => ((await inUse(entry)) ? [entry] : [])));
  return held.flat();
}

function inUse({ host, port }: PlannedPort): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'EADDRINUSE'));
    server.listen({ host, port }, () => server.close(() => resolve(false)));
  });
}

/**
 * Why `npm start` does not start, said as what to do. Started anyway, each component whose port
 * is held exited 1 and was started again with backoff for ever, five lines every 10 s, while the
 * shop that held the ports (a second `npm start` in the same folder, most often) ran on.
 */
export function heldPortsMessage(held: readonly PlannedPort[], runningLauncher: number | undefined): string {
  const ports = held.map(
    (entry) => `${formatHostPort(entry)} (${entry.what}${entry.env ? `, ${entry.env}` : ''})`,
  );
  const variables = held.flatMap((entry) => (entry.env ? [entry.env] : []));
  const who =
    runningLauncher === undefined
      ? 'another copy of the shop, or another program: `ss -ltnp` names it'
      : `an npm start runs on this DATA_DIR: its launcher is pid ${runningLauncher}`;
  return `cannot start: ${ports.join(', ')} ${held.length === 1 ? 'is' : 'are'} in use by another process (${who}); stop it, or give this one other ports (${variables.join(', ')}; 0: any free one); nothing was started`;
}
