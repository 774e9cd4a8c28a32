import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { credentials } from '@grpc/grpc-js';
import { GoodsServiceClient } from '../gen/services.js';
import { hashPassword, verifyPassword } from '../services/members/password-hasher.js';
import { type CaseResult, median } from './case-result.js';
import { runClosedLoop } from './closed-loop.js';
import { runHttpCase } from './http-load.js';
import { startSystem } from './system-under-test.js';

// `npm run bench`: the shop's throughput and latency against this machine's own ceilings, measured in
// one run so that the ratios hold on a noisy, shared machine. Each round runs every case once;
// the figures printed are the medians over the rounds.
const durationSec = Number(process.env.BENCH_DURATION_SEC ?? 10);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const connections = 64;

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
mkdirSync('bench-results', { recursive: true });
const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

say(`bench: ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`);
say(`bench: ${rounds} round(s) of ${durationSec} s per case, ${connections} connections`);
const system = await startSystem(`bench-results/${stamp}-processes.log`);
say(`bench: store is ${system.store}`);
const bare = await startBareServer();

const member = { username: 'bench_member', password: 'bench password 1234' };
await seed(system.gatewayUrl, member);
const goodsClient = new GoodsServiceClient(system.goodsAddress, credentials.createInsecure());
const storedHash = await hashPassword(member.password);

const cases: Array<{ name: string; run: () => Promise<CaseResult> }> = [
  {
    name: 'bare Node HTTP (ceiling)',
    run: () => runHttpCase({ name: 'bare', url: bare.url, connections, durationSec }),
  },
  {
    name: 'GET /goods (gateway)',
    run: () =>
      runHttpCase({ name: 'GET /goods', url: `${system.gatewayUrl}/goods`, connections, durationSec }),
  },
  {
    name: 'ListGoods (direct gRPC)',
    run: () =>
      runClosedLoop(
        'ListGoods',
        connections,
        durationSec,
        () =>
          new Promise((resolve, reject) =>
            goodsClient.listGoods({}, (error, response) => (error ? reject(error) : resolve(response))),
          ),
      ),
  },
  {
    name: 'GET /members (sign-in)',
    run: () =>
      runHttpCase({
        name: 'sign-in',
        url: `${system.gatewayUrl}/members?username=${member.username}&password=${encodeURIComponent(member.password)}`,
        connections,
        durationSec,
      }),
  },
  {
    name: 'POST /purchases',
    run: () =>
      runHttpCase({
        name: 'POST /purchases',
        url: `${system.gatewayUrl}/purchases`,
        method: 'POST',
        body: JSON.stringify({ userid: 1, goodsid: 1 }),
        connections,
        durationSec,
      }),
  },
  {
    name: 'password verify (raw)',
    run: () =>
      runClosedLoop('verify', connections, durationSec, async () => {
        if (!(await verifyPassword(member.password, storedHash))) throw new Error('verify failed');
      }),
  },
];

const samples = new Map<string, CaseResult[]>(cases.map((entry) => [entry.name, []]));
try {
  for (let round = 1; round <= rounds; round++) {
    for (const entry of cases) {
      const result = await entry.run();
      samples.get(entry.name)!.push(result);
      say(
        `  round ${round} ${entry.name.padEnd(26)} ${result.requestsPerSec.toFixed(0).padStart(7)} req/s  ` +
          `p50 ${result.p50Ms.toFixed(1)} ms  p99 ${result.p99Ms.toFixed(1)} ms  errors ${result.errors}`,
      );
    }
  }
  report(samples, system.rssMiB());
  say(
    `bench: the load generator itself (autocannon, gRPC client) ended at ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB RSS`,
  );
} finally {
  goodsClient.close();
  bare.stop();
  await system.stop();
}

function summarize(results: CaseResult[]) {
  return {
    requestsPerSec: median(results.map((result) => result.requestsPerSec)),
    p50Ms: median(results.map((result) => result.p50Ms)),
    p99Ms: median(results.map((result) => result.p99Ms)),
    errors: results.reduce((sum, result) => sum + result.errors, 0),
    total: results.reduce((sum, result) => sum + result.total, 0),
  };
}

function report(all: Map<string, CaseResult[]>, rss: Map<string, number>): void {
  const figures = Object.fromEntries([...all].map(([name, results]) => [name, summarize(results)]));
  const rate = (name: string): number => figures[name]!.requestsPerSec;
  const p99 = (name: string): number => figures[name]!.p99Ms;
  say('');
  say(
    `${'case (median of rounds)'.padEnd(28)} ${'req/s'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} errors`,
  );
  for (const [name, figure] of Object.entries(figures)) {
    say(
      `${name.padEnd(28)} ${figure.requestsPerSec.toFixed(0).padStart(8)} ${figure.p50Ms.toFixed(1).padStart(8)} ` +
        `${figure.p99Ms.toFixed(1).padStart(8)} ${figure.errors}/${figure.total}`,
    );
  }
  const ceiling = rate('bare Node HTTP (ceiling)');
  const targets = [
    check('GET /goods vs ceiling', rate('GET /goods (gateway)') / ceiling, 0.13),
    check('GET /goods p99 (ms)', p99('GET /goods (gateway)'), 25, 'max'),
    check('POST /purchases vs ceiling', rate('POST /purchases') / ceiling, 0.18),
    check('POST /purchases p99 (ms)', p99('POST /purchases'), 16, 'max'),
    check('sign-in vs raw verify', rate('GET /members (sign-in)') / rate('password verify (raw)'), 0.9),
    check(
      'GET /goods vs direct ListGoods',
      rate('GET /goods (gateway)') / rate('ListGoods (direct gRPC)'),
      0.75,
    ),
    ...[...rss].map(([name, mib]) => check(`RSS ${name} (MiB)`, mib, 100, 'max')),
  ];
  say('');
  for (const target of targets) {
    say(
      `${target.met ? 'MET   ' : 'MISSED'} ${target.name.padEnd(40)} ${target.value.toFixed(3).padStart(9)}  (target ${target.kind === 'min' ? '≥' : '≤'} ${target.target})`,
    );
  }
  const errors = Object.values(figures).reduce((sum, figure) => sum + figure.errors, 0);
  say(errors === 0 ? '\nno request failed' : `\n${errors} request(s) failed: see the errors column`);
  const file = `bench-results/${stamp}.json`;
  writeFileSync(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), store: system.store, rounds, durationSec, connections, cores: cpus().length, node: process.version, figures, samples: Object.fromEntries(all), rssMiB: Object.fromEntries(rss), targets }, null, 2)}\n`,
  );
  say(`bench: written ${file}`);
}

function check(name: string, value: number, target: number, kind: 'min' | 'max' = 'min') {
  return { name, value, target, kind, met: kind === 'min' ? value >= target : value <= target };
}

async function seed(gatewayUrl: string, account: { username: string; password: string }): Promise<void> {
  const post = async (path: string, body: object): Promise<void> => {
    const response = await fetch(`${gatewayUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const envelope = (await response.json()) as { errorcode: number; errormessage: string };
    if (envelope.errorcode !== 0) throw new Error(`seeding ${path} failed: ${envelope.errormessage}`);
  };
  for (let index = 1; index <= 100; index++) {
    await post('/goods', {
      name: `goods ${index}`,
      category: `category ${index % 7}`,
      price: 1000 + index,
      description: `the description of goods number ${index}`,
    });
  }
  await post('/members', account);
}

async function startBareServer(): Promise<{ url: string; stop(): void }> {
  const child = spawn(
    process.execPath,
    [...process.execArgv, fileURLToPath(new URL('./bare-http-server.js', import.meta.url))],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (chunk: Buffer) =>
      resolve((JSON.parse(chunk.toString()) as { port: number }).port),
    );
    child.once('exit', () => reject(new Error('the bare HTTP server exited')));
  });
  return { url: `http://127.0.0.1:${port}/`, stop: () => child.kill('SIGTERM') };
}
