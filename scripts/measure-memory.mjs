// Resident memory of the shop's processes under load and at rest. Run after `npm run build`:
//
//   MYSQL_URL=mysql://root@127.0.0.1:3306/test node scripts/measure-memory.mjs
//
// It starts the five components as `npm start` does (dist/, the launcher's Node flags), adds a
// member and 50 goods, then runs 64 connections through the gateway for MEMORY_LOAD_SEC (default
// 60): 8 signing in (GET /members, Argon2id-bound), 28 buying (POST /purchases, userid 1..500) and
// 28 listing (GET /purchases of one of those 500 users). It prints every process's RSS in MiB at
// start, at the end of the load, and after MEMORY_IDLE_SEC (default 60) of rest, with the rates and
// each process's CPU time per request it served (the cost of a memory setting, whatever else runs on
// the machine).

import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { positiveNumber, readBenchSettings } from '../dist/bench/bench-settings.js';
import { startSystem } from '../dist/bench/system-under-test.js';

const loadSec = readBenchSettings(() => positiveNumber(process.env, 'MEMORY_LOAD_SEC', 60));
const idleSec = readBenchSettings(() => positiveNumber(process.env, 'MEMORY_IDLE_SEC', 60));
const USERS = 500;

const system = await startSystem({ logFile: join(tmpdir(), `shop-memory-${process.pid}.log`), tls: false });
/** CPU seconds (user + system) each component has used, from /proc: the cost of a setting, whatever the machine's load. */
const CLOCK_TICKS = 100;
function cpuSeconds() {
  const seconds = {};
  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) !== process.pid) continue;
      const name = /dist\/(?:services\/)?(\w+)\//.exec(readFileSync(`/proc/${entry}/cmdline`, 'utf8'))?.[1];
      if (name) seconds[name] = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    } catch {
      // The process ended while we looked.
    }
  }
  return seconds;
}
const rss = () => Object.fromEntries([...system.rssMiB()].map(([name, mib]) => [name, Math.round(mib)]));
const post = (path, body) =>
  fetch(`${system.gatewayUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
try {
  await post('/members', { username: 'memory', password: 'memory-password' });
  for (let index = 0; index < 50; index++) {
    await post('/goods', {
      name: `goods ${index}`,
      category: 'memory',
      price: 1000 + index,
      description: 'x'.repeat(200),
    });
  }
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const atStart = rss();
  const cpuBefore = cpuSeconds();
  let user = 0;
  const run = (connections, request) =>
    autocannon({ url: system.gatewayUrl, connections, duration: loadSec, requests: [request] });
  const results = await Promise.all([
    run(8, { method: 'GET', path: '/members?username=memory&password=memory-password' }),
    run(28, {
      method: 'POST',
      path: '/purchases',
      headers: { 'content-type': 'application/json' },
      setupRequest: (request) => ({
        ...request,
        body: JSON.stringify({ userid: (user++ % USERS) + 1, goodsid: 1 }),
      }),
    }),
    run(28, {
      method: 'GET',
      setupRequest: (request) => ({ ...request, path: `/purchases?userid=${(user++ % USERS) + 1}` }),
    }),
  ]);
  const afterLoad = rss();
  const cpuAfter = cpuSeconds();
  // Each process's CPU time over the requests it served: members signs in, purchases buys and lists,
  // the gateway carries them all.
  const [signIns, buys, lists] = results.map((result) => result.requests.total);
  const served = { members: signIns, purchases: buys + lists, gateway: signIns + buys + lists };
  const cpuMsPerRequest = Object.fromEntries(
    Object.entries(served).map(([name, count]) => [
      name,
      Math.round(((cpuAfter[name] - (cpuBefore[name] ?? 0)) * 1e5) / count) / 100,
    ]),
  );
  await new Promise((resolve) => setTimeout(resolve, idleSec * 1_000));
  const afterIdle = rss();
  const rates = Object.fromEntries(
    ['sign-in', 'POST /purchases', 'GET /purchases'].map((name, index) => {
      const result = results[index];
      return [
        name,
        {
          reqPerSec: Math.round(result.requests.total / result.duration),
          non2xx: result.non2xx,
          errors: result.errors,
        },
      ];
    }),
  );
  const report = { loadSec, idleSec, rates, cpuMsPerRequest, rssMiB: { atStart, afterLoad, afterIdle } };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
} finally {
  await system.stop();
}
