import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_KEEPALIVE } from '../../src/common/grpc-server.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { spawnComponent } from '../e2e/support/processes.js';
import { goodsNode } from '../helpers/nodes.js';
import { sample, scrape } from '../helpers/prometheus.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const TOKEN = 'test-registry-token-0123456789';

/**
 * A client with no token, run as its own process: `connections` HTTP/2 connections, each opening
 * `perConnection` health checks at once (a gRPC call needs no proof there), held for `holdMs`,
 * then every connection destroyed and the process gone. It prints "sent" once its streams are
 * written.
 */
const FLOOD = `
import http2 from 'node:http2';
const [port, connections, perConnection, holdMs] = process.argv.slice(1).map(Number);
const sessions = [];
for (let c = 0; c < connections; c++) {
  const session = http2.connect('http://127.0.0.1:' + port, { peerMaxConcurrentStreams: 100000 });
  session.on('error', () => {});
  sessions.push(session);
  for (let i = 0; i < perConnection; i++) {
    const stream = session.request(
      { ':method': 'POST', ':path': '/grpc.health.v1.Health/Check', 'content-type': 'application/grpc', te: 'trailers' },
      { endStream: false },
    );
    stream.on('error', () => {});
    stream.end(Buffer.alloc(5));
  }
}
setImmediate(() => console.log('sent'));
setTimeout(() => { for (const session of sessions) session.destroy(); process.exit(0); }, holdMs);
`;

/**
 * Starts the flood against `port` (bounded: it stops by itself after `holdMs`): resolves `sent` once
 * its streams are written, `ended` once it is gone.
 */
function flood(port: number, connections: number, perConnection: number, holdMs: number) {
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      FLOOD,
      String(port),
      String(connections),
      String(perConnection),
      String(holdMs),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'));
  const sent = new Promise<void>((resolve) => child.stdout!.on('data', () => resolve()));
  return { sent, ended: once(child, 'exit') };
}

/**
 * A flood bounded by count: `connections` HTTP/2 connections opening `perConnection` health checks
 * each, the process gone once every one of them has closed (answered, refused or its connection
 * closed), so that it lasts as long as the distributor takes to get through it, however busy the
 * machine. It prints "sent" once its streams are written.
 */
const COUNTED_FLOOD = `
import http2 from 'node:http2';
const [port, connections, perConnection] = process.argv.slice(1).map(Number);
let open = connections * perConnection;
let answered = 0;
const closed = () => { if (--open === 0) { console.log('answered ' + answered); process.exit(0); } };
for (let c = 0; c < connections; c++) {
  const session = http2.connect('http://127.0.0.1:' + port, { peerMaxConcurrentStreams: 100000 });
  session.on('error', () => {});
  for (let i = 0; i < perConnection; i++) {
    const stream = session.request(
      { ':method': 'POST', ':path': '/grpc.health.v1.Health/Check', 'content-type': 'application/grpc', te: 'trailers' },
      { endStream: false },
    );
    stream.on('error', () => {});
    stream.on('close', closed);
    stream.on('trailers', (trailers) => { if (trailers['grpc-status'] === '0') answered++; });
    stream.resume();
    stream.end(Buffer.alloc(5));
  }
}
setImmediate(() => console.log('sent'));
`;

/**
 * Starts the counted flood against `port`: resolves `sent` once its streams are written, `answered`
 * once it is gone, with how many of its health checks were answered.
 */
function countedFlood(port: number, connections: number, perConnection: number) {
  const child = spawn(
    process.execPath,
    ['--input-type=module', '-e', COUNTED_FLOOD, String(port), String(connections), String(perConnection)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'));
  let output = '';
  child.stdout!.on('data', (chunk) => {
    output += chunk;
  });
  const sent = new Promise<void>((resolve) => child.stdout!.on('data', () => resolve()));
  const answered = once(child, 'close').then(() => Number(/answered (\d+)/.exec(output)?.[1] ?? 0));
  return { sent, answered };
}

/**
 * CPU time a process has had (user and system, all its threads), from /proc: utime and stime, the
 * 14th and 15th fields, in USER_HZ ticks, which Linux fixes at 100 a second on every architecture
 * Node runs on (`getconf CLK_TCK`). Fields are counted after the last ')', as the name before it
 * may hold spaces and parentheses.
 */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * Pings the distributor on a connection of its own, one ping after another: a ping is answered at
 * the distributor's next read, so its longest wait is the loop's longest stall, told both in wall
 * clock and in the CPU the distributor spent meanwhile (`cpuMs` of the distributor).
 */
function watchStalls(port: number, cpuMs: () => number) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  cleanups.push(() => session.destroy());
  // `lost`: the watch ended before stop() (its connection gone, a ping unanswered): the longest
  // stall is then only the longest until then, and proves nothing of the rest.
  const longest = { wallMs: 0, cpuMs: 0, pings: 0, lost: false };
  let watching = true;
  void (async () => {
    await once(session, 'connect');
    while (watching && !session.destroyed) {
      const [wallStart, cpuStart] = [performance.now(), cpuMs()];
      const answered = await new Promise<boolean>((resolve) => {
        if (!session.ping((error) => resolve(!error))) resolve(false);
      });
      if (!answered) break;
      longest.pings += 1;
      longest.wallMs = Math.max(longest.wallMs, Math.round(performance.now() - wallStart));
      longest.cpuMs = Math.max(longest.cpuMs, cpuMs() - cpuStart);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (watching) longest.lost = true;
  })().catch(() => {
    // The distributor gone between two pings (its /proc entry with it): the watch is lost.
    longest.lost = true;
  });
  return {
    stop() {
      watching = false;
      return longest;
    },
  };
}

/**
 * A node's keepalive timeout in these tests, well past the 5 s the shop's nodes allow: a loaded
 * machine stretches the loop's stalls in wall clock, and what the first test holds to is the work
 * the distributor does without a turn of its loop (in CPU, against those 5 s). The distributor
 * still pings them with its own 5 s timeout.
 */
const PATIENT_KEEPALIVE_TIMEOUT_MS = 15_000;

/**
 * The distributor's CPU from the flood's start until a node registering meanwhile is listed, at
 * most: the 5 s this test once allowed in wall clock. Measured 1.7 to 3 s (the more, the busier the
 * machine); the admission before worked through the whole flood first, 12 to 13 s.
 */
const NEWCOMER_CPU_MS = 5_000;

/** A node of `name` registering with the distributor at `port`, and how often it lost its registration. */
function register(port: number, node: ReturnType<typeof goodsNode>, keepaliveTimeoutMs: number) {
  // A keepalive of 1 s: the connection drops, and the registration with it, if the distributor
  // leaves a ping unread for `keepaliveTimeoutMs`.
  const registration = new RegistrationClient({
    distributor: `127.0.0.1:${port}`,
    node,
    token: TOKEN,
    keepalive: { timeMs: 1_000, timeoutMs: keepaliveTimeoutMs },
    backoff: { initialMs: 20, maxMs: 200 },
  });
  const disconnected = vi.fn();
  registration.on('disconnected', disconnected);
  registration.start();
  cleanups.push(() => registration.stop(200));
  return { registration, disconnected };
}

describe('a flood of health checks from a client with no token', () => {
  it('neither cuts a registered node nor keeps a new one from registering', {
    timeout: 120_000,
  }, async () => {
    const distributor = spawnComponent('src/distributor/main.ts', ['--port', '0', '--metrics-port', 'off'], {
      SHOP_REGISTRY_TOKEN: TOKEN,
    });
    cleanups.push(async () => {
      distributor.child.kill('SIGKILL');
      await distributor.exited();
    });
    const listening = await distributor.waitForLine(/listening on 127\.0\.0\.1:\d+/);
    const port = Number(/127\.0\.0\.1:(\d+)/.exec(listening)![1]);
    const distributorCpuMs = () => cpuMsOf(distributor.child.pid!);

    const listed = register(port, goodsNode({ host: '127.0.0.1' }), PATIENT_KEEPALIVE_TIMEOUT_MS);
    await vi.waitFor(() => expect(listed.registration.nodeId).toBeTruthy(), { timeout: 10_000 });
    const stalls = watchStalls(port, distributorCpuMs);

    // 80,000 health checks on 20 connections, each answered or cut before the flood ends. Before
    // streams waited by connection, and a connection's reads stopped while many of its streams
    // waited, the distributor set up every one of them in the read that brought it once 8,192
    // waited: it worked through the flood for 5 to 8 s (9 to 13 s of CPU, measured) without a turn
    // of its event loop, the nodes' pings went unanswered, and a node that registered meanwhile
    // was listed only once the flood was through.
    const floodCpuStart = distributorCpuMs();
    const { sent, answered } = countedFlood(port, 20, 4_000);
    await sent;
    await new Promise((resolve) => setTimeout(resolve, 500));
    const newcomer = register(port, goodsNode({ host: '127.0.0.1', port: 2 }), PATIENT_KEEPALIVE_TIMEOUT_MS);
    let newcomerCpuMs = Number.NaN;
    const listedNewcomer = vi
      .waitFor(() => expect(newcomer.registration.nodeId).toBeTruthy(), { timeout: 60_000, interval: 10 })
      .then(() => {
        newcomerCpuMs = distributorCpuMs() - floodCpuStart;
      });
    // Awaited once the flood is through: a timeout before then fails the test there, not as an
    // unhandled rejection.
    listedNewcomer.catch(() => {});
    const floodAnswered = await answered;
    const floodCpuMs = distributorCpuMs() - floodCpuStart;
    await listedNewcomer;
    // Pings still on their way when the flood ended: the nodes must outlast them too.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const longest = stalls.stop();

    // Held to the distributor's CPU, not to the clock: on a loaded machine the clock runs on while
    // others have the cores (a newcomer listed in 5.7 and 7.6 s where alone it took 2), but what
    // starves a node is work the distributor does without a turn of its loop, or before its turn,
    // and that costs about the same CPU however busy the machine. Under load (3 busy loops beside
    // other suites on 2 cores) the longest stall measured 0.65 to 1.2 s of CPU (2 to 3.2 s of wall
    // clock) and the newcomer was listed after 1.1 to 2.2 s of it; the admission before stalled
    // 4.1 s of CPU at a time and listed it after 9 to 14 s, once the flood was through. Half the
    // 5 s a node's keepalive allows leaves the other half for a machine giving it half a core.
    const measured = JSON.stringify({ longest, newcomerCpuMs, floodCpuMs, floodAnswered });
    expect(longest.lost, measured).toBe(false);
    expect(longest.cpuMs, measured).toBeLessThan(DEFAULT_KEEPALIVE.timeoutMs / 2);
    expect(newcomerCpuMs, measured).toBeLessThan(NEWCOMER_CPU_MS);
    expect(listed.disconnected).not.toHaveBeenCalled();
    expect(listed.registration.nodeId).toBeTruthy();
    expect(newcomer.disconnected).not.toHaveBeenCalled();
  });

  it('from 40 connections holds at most 16,384 streams waiting, closing the flooding connections, and the nodes stay', {
    timeout: 90_000,
  }, async () => {
    const distributor = spawnComponent('src/distributor/main.ts', ['--port', '0'], {
      SHOP_REGISTRY_TOKEN: TOKEN,
      DISTRIBUTOR_METRICS_PORT: '',
    });
    cleanups.push(async () => {
      distributor.child.kill('SIGKILL');
      await distributor.exited();
    });
    const listening = await distributor.waitForLine(/listening on 127\.0\.0\.1:\d+/);
    const port = Number(/127\.0\.0\.1:(\d+)/.exec(listening)![1]);
    const metrics = JSON.parse(await distributor.waitForLine(/"event":"metrics"/));
    const metricsUrl = `http://127.0.0.1:${metrics.port}/metrics`;

    // What this test holds to is the bound; the stalls of 40 flooding connections (1.7 to 4.4 s
    // measured, the flood sharing the two cores; over 10 s of wall clock on a machine loaded by other
    // suites, which cut a node with a 10 s keepalive) are the first test's matter at 20, held there
    // to the distributor's CPU, so these nodes' keepalive is as patient as that test's, and the
    // newcomer's registration is not timed.
    const listed = register(port, goodsNode({ host: '127.0.0.1' }), PATIENT_KEEPALIVE_TIMEOUT_MS);
    await vi.waitFor(() => expect(listed.registration.nodeId).toBeTruthy(), { timeout: 10_000 });

    // 120,000 health checks on 40 connections: each connection's first read brings some 2,000
    // before its reads stop, so that before the bound some 73,000 to 119,000 waited at once
    // (650 to 820 MB resident).
    const { sent, ended } = flood(port, 40, 3_000, 8_000);
    let mostWaiting = 0;
    let scraped = 0;
    let scraping = true;
    const scrapes = (async () => {
      while (scraping) {
        try {
          const text = await scrape(metricsUrl);
          mostWaiting = Math.max(mostWaiting, sample(text, 'shop_registry_streams_waiting') ?? Number.NaN);
          scraped += 1;
        } catch {
          // A keep-alive connection the admin server closes as a request comes (its 5 s timer run
          // late, after a stall of the loop on a busy machine) resets that scrape: the next one
          // opens another.
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
    await sent;
    const newcomer = register(port, goodsNode({ host: '127.0.0.1', port: 2 }), PATIENT_KEEPALIVE_TIMEOUT_MS);
    await vi.waitFor(() => expect(newcomer.registration.nodeId).toBeTruthy(), { timeout: 20_000 });
    await ended;
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    scraping = false;
    await scrapes;

    const text = await scrape(metricsUrl);
    expect(sample(text, 'shop_registry_flooding_connections_closed_total')).toBeGreaterThan(0);
    // Scraped during the flood (some 50 times in its 10 s on a quiet machine, far fewer when its
    // stalls are long; a few may be reset), and never over the bound.
    expect(scraped).toBeGreaterThanOrEqual(3);
    expect(mostWaiting).toBeLessThanOrEqual(16_384);
    expect(distributor.lines.some((line) => line.includes('"event":"streams-waiting-closed"'))).toBe(true);
    expect(listed.disconnected).not.toHaveBeenCalled();
    expect(listed.registration.nodeId).toBeTruthy();
    expect(newcomer.disconnected).not.toHaveBeenCalled();
  });
});
