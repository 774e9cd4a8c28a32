import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertGoods } from '../../src/bench/bulk-goods.js';
import { createTestNetwork, netnsUnavailableReason, type TestNetwork } from './support/netns.js';
import { type ComponentProcess, spawnComponent } from './support/processes.js';

// A client on a slow link: the shop on one host (network namespace), a client on another, and the
// shop's side of the link limited to 2 Mbit/s by the kernel's token bucket (tc tbf). On loopback the
// kernel's buffers take a large answer whole, so a slow reader cannot be seen there; on this link
// the gateway must hand a long answer over a slice at a time for a reader this slow to keep up with
// its limit, which is set short here: 2 s per 64 KiB slice of a streamed list, and without a
// write completing for any other answer (--unread-answer-timeout-ms; at 1 s the kernel's own pace
// failed it under a busy test run: it wakes a writer once a third of its send buffer has drained,
// which on this link can take longer).
const HOSTS = { shop: '10.213.58.2', client: '10.213.58.3' } as const;
const GATEWAY_URL = `http://${HOSTS.shop}:8000`;
/** 2 Mbit/s: 250 KB a second, so that a 1 MB page takes 4 s, twice the limit. */
const LINK = ['rate', '2mbit', 'burst', '16kb', 'latency', '100ms'];
/** Goods with descriptions of 1 KB: 1,500 of them make about 1.6 MB of JSON, two pages. */
const GOODS = 1_500;

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') {
  throw new Error(`the slow-link test must run under CI=true (as root), but ${unavailable}`);
}
if (unavailable) process.stderr.write(`\n[test] the slow-link test will skip: ${unavailable}.\n`);

/** GET with node:http from the client host; prints the status, the bytes of the body, whether it ended whole. */
const SLOW_CLIENT = `
const started = Date.now();
const request = require('node:http').get(process.argv[1], (response) => {
  let bytes = 0;
  const chunks = [];
  response.on('data', (chunk) => { bytes += chunk.length; chunks.push(chunk); });
  const report = (complete) => {
    const body = Buffer.concat(chunks).toString('utf8');
    let results = -1;
    try { results = JSON.parse(body).results.length; } catch {}
    process.stdout.write(JSON.stringify({ status: response.statusCode, bytes, complete, results,
      contentLength: response.headers['content-length'] ?? null, seconds: (Date.now() - started) / 1000 }));
    process.exit(0);
  };
  response.on('end', () => report(true));
  response.on('aborted', () => report(false));
  response.on('error', () => report(false));
});
request.on('error', (error) => { process.stderr.write(String(error)); process.exit(1); });
`;

interface SlowAnswer {
  status: number;
  bytes: number;
  complete: boolean;
  results: number;
  contentLength: string | null;
  seconds: number;
}

describe.runIf(!unavailable)(
  unavailable
    ? `a client on a slow link (skipped: ${unavailable})`
    : 'a client on a slow link (network namespaces, 2 Mbit/s) takes long answers whole',
  () => {
    let dataDir: string | undefined;
    let network: TestNetwork | undefined;
    const processes: ComponentProcess[] = [];

    const start = (entry: string, args: string[]): ComponentProcess => {
      const component = spawnComponent(
        entry,
        args,
        { DATA_DIR: dataDir!, MYSQL_URL: '' },
        {
          prefix: network!.prefix('shop'),
        },
      );
      processes.push(component);
      return component;
    };

    const fromClient = async (path: string): Promise<SlowAnswer> => {
      const run = await network!.run(
        'client',
        process.execPath,
        ['-e', SLOW_CLIENT, `${GATEWAY_URL}${path}`],
        60_000,
      );
      if (run.code !== 0) throw new Error(`GET ${path} from the client host failed: ${run.stderr}`);
      return JSON.parse(run.stdout) as SlowAnswer;
    };

    beforeAll(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'shop-slow-link-'));
      await insertGoods({ kind: 'sqlite', file: join(dataDir, 'goods.sqlite') }, GOODS, (index) => ({
        name: `goods ${index + 1}`,
        category: 'c',
        price: index,
        description: 'd'.repeat(1_000),
      }));
      network = createTestNetwork(HOSTS);
      // Only what leaves the shop's host is slowed: its components talk to each other on it.
      execFileSync('ip', [
        'netns',
        'exec',
        network.namespace('shop'),
        'tc',
        'qdisc',
        'add',
        'dev',
        'eth0',
        'root',
        'tbf',
        ...LINK,
      ]);
      const distributor = start('src/distributor/main.ts', ['--insecure-open-registry']);
      await distributor.waitForLine(/listening on/);
      const goods = start('src/services/goods/main.ts', ['--distributor', '127.0.0.1:9000']);
      const gateway = start('src/gateway/main.ts', [
        '--distributor',
        '127.0.0.1:9000',
        // Each page's call; under the whole answer's time (some 6 s over the link).
        '--deadline-ms',
        '3000',
        '--unread-answer-timeout-ms',
        '2000',
      ]);
      await goods.waitForLine(/registered with the distributor/);
      await gateway.waitForLine(/listening on/);
    }, 90_000);

    afterAll(async () => {
      try {
        for (const component of processes.reverse()) {
          component.child.kill('SIGTERM');
          await component.exited();
        }
      } finally {
        if (dataDir) rmSync(dataDir, { recursive: true, force: true });
        network?.remove();
      }
    }, 30_000);

    it('a whole list streamed in pages of 1 MB, each page taking 4 s over the link', async () => {
      const answer = await fromClient('/goods');
      expect(answer).toMatchObject({ status: 200, complete: true, results: GOODS, contentLength: null });
      // It did take the link's time: the limits were exceeded many times over by the answer as a whole.
      expect(answer.seconds).toBeGreaterThan(3);
    }, 60_000);

    it('one page of 1 MB, answered with its Content-Length', async () => {
      const answer = await fromClient('/goods?page_size=1000');
      expect(answer).toMatchObject({ status: 200, complete: true, results: 1_000 });
      expect(Number(answer.contentLength)).toBe(answer.bytes);
      expect(answer.seconds).toBeGreaterThan(2);
    }, 60_000);
  },
);
