import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** A port on 127.0.0.1 that was free a moment ago, for a component that must be told its port. */
export async function freePort(): Promise<number> {
  // Below the kernel's range of ephemeral ports: a port taken from that range (listen on 0) and
  // handed to a process that binds it a moment later may meanwhile become the local port of any
  // outgoing connection on the machine (a test's client, the database's), and the process then
  // cannot listen. No connection is given a port below the range.
  const [low] = ephemeralPortRange();
  const first = Math.max(1024, low - 12_000);
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = first + Math.floor(Math.random() * (low - first));
    if (await canListen(port)) return port;
  }
  return listenOnAny();
}

/**
 * `count` distinct ports that were free a moment ago: freePort picks at random among some 12,000, so
 * two picks for one start can be the same port (npm start then refused it: "port 32188 would be both
 * goods's port and gateway's port").
 */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/** The kernel's range of ephemeral ports (Linux), or its default where it cannot be read. */
function ephemeralPortRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low !== undefined && high !== undefined && low > 2048 && high >= low) return [low, high];
  } catch {}
  return [32_768, 60_999];
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function listenOnAny(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** A process's resident memory in MiB, from /proc (Linux); NaN where it cannot be read. */
export function residentMiB(pid: number): number {
  try {
    const kib = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    return kib / 1024;
  } catch {
    return Number.NaN;
  }
}

/**
 * CPU time a process has used so far (user + system), in seconds, from /proc (Linux, 100 ticks a
 * second); NaN where it cannot be read. On a shared, busy machine, CPU time per request varies far
 * less than requests per second.
 */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}
