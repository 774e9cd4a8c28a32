import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { createGateway } from '../../src/gateway/gateway-server.js';
import { send } from '../helpers/http.js';
import { goodsNode } from '../helpers/nodes.js';
import { attemptList, attemptRegistration, startRogueGoods } from '../helpers/rogue.js';
import {
  childPids,
  descendantPids,
  freePort,
  freePorts,
  isAlive,
  isRunning,
  launcherEnv,
  rssMiB,
  spawnComponent,
} from './support/processes.js';
import { servingCount } from './support/shop.js';

const json = { 'content-type': 'application/json' };
const withoutKey = (body: string): string =>
  body.replace(/^\{"key":\d+,/, '{"key":N,').replace(/"date":"[^"]+"/, '"date":"D"');

describe('npm start: the launcher runs the five components as processes', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'shop-launcher-'));
  let launcher: ReturnType<typeof spawnComponent>;
  let gatewayUrl: string;
  let distributorAddress: string;
  beforeAll(async () => {
    const [distributorPort, gatewayPort] = await freePorts(2);
    distributorAddress = `127.0.0.1:${distributorPort}`;
    gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
    // A token file left readable by all: this run's token must not be written into it as it is.
    const stale = join(dataDir, 'registry-token');
    writeFileSync(stale, 'an earlier token\n');
    chmodSync(stale, 0o666);
    // No DISTRIBUTOR_ADDRESS: the launcher tells the others where the distributor listens.
    launcher = spawnComponent(
      'src/launcher/main.ts',
      [],
      launcherEnv({ distributorPort, gatewayPort, dataDir }),
    );
    await vi.waitFor(
      async () => {
        const answer = await send(`${gatewayUrl}/purchases?userid=1`);
        expect(answer.body).toContain('"errormessage":"no data"');
      },
      { timeout: 60_000, interval: 250 },
    );
    await vi.waitFor(async () => expect((await send(`${gatewayUrl}/goods`)).body).toContain('"no data"'), {
      timeout: 10_000,
    });
    await vi.waitFor(
      async () =>
        expect((await send(`${gatewayUrl}/members?username=x&password=y`)).body).toContain(
          'Invalid password',
        ),
      { timeout: 10_000 },
    );
  }, 90_000);
  afterAll(async () => {
    if (launcher && launcher.child.exitCode === null) {
      const children = childPids(launcher.child.pid!);
      launcher.child.kill('SIGKILL');
      for (const pid of children) process.kill(pid, 'SIGKILL');
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('starts the others once the distributor listens, so that a clean start warns of nothing (first: later tests provoke warnings)', () => {
    const first = (name: string) =>
      launcher.lines.findIndex((line) => line.startsWith(`[${name.padEnd(11)}] `));
    const listening = launcher.lines.findIndex((line) => /^\[distributor *\] .*listening on/.test(line));
    expect(listening).toBeGreaterThanOrEqual(0);
    for (const name of ['goods', 'members', 'purchases', 'gateway'])
      expect(first(name)).toBeGreaterThan(listening);
    expect(launcher.lines.filter((line) => / WARN /.test(line))).toEqual([]);
  });

  it('is secure by default: a per-run token guards the registry, written for tools with mode 0600, over a file left readable by all', async () => {
    const tokenFile = join(dataDir, 'registry-token');
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const token = readFileSync(tokenFile, 'utf8').trim();
    expect(token.length).toBeGreaterThanOrEqual(32);
    const rogue = await startRogueGoods();
    try {
      const outcome = await attemptRegistration(distributorAddress, goodsNode({ port: rogue.port }));
      expect(outcome).toMatchObject({ listed: false, code: status.UNAUTHENTICATED });
      expect((await attemptList(distributorAddress)).code).toBe(status.UNAUTHENTICATED);
      const listed = await attemptList(distributorAddress, { token });
      expect(listed.snapshot.nodes.map((node) => node.name).sort()).toEqual([
        'gateway',
        'goods',
        'members',
        'purchases',
      ]);
      expect((await send(`${gatewayUrl}/goods`)).status).toBe(200);
      expect(rogue.calls).toBe(0);
    } finally {
      await rogue.stop();
    }
  });

  /**
   * Starts a second launcher on the running shop's DATA_DIR with its distributor on
   * `distributorPort`, lets `whileRunning` watch it, stops it, and checks that the running shop's
   * token file held its token throughout (before, the second wrote its own there, and took the file
   * away when it stopped).
   */
  async function secondLauncherKeepsTheTokenFile(
    distributorPort: string | number,
    whileRunning: (second: ReturnType<typeof spawnComponent>) => Promise<unknown>,
  ): Promise<void> {
    const tokenFile = join(dataDir, 'registry-token');
    const token = readFileSync(tokenFile, 'utf8');
    const second = spawnComponent('src/launcher/main.ts', [], launcherEnv({ distributorPort, dataDir }));
    try {
      await whileRunning(second);
      expect(readFileSync(tokenFile, 'utf8')).toBe(token);
      second.child.kill('SIGTERM');
      expect(await second.exited()).toBe(0);
      expect(readFileSync(tokenFile, 'utf8')).toBe(token);
    } finally {
      if (second.child.exitCode === null) second.child.kill('SIGKILL');
    }
  }

  it("a second launcher on the same DATA_DIR whose ports the running shop holds starts nothing, says who holds them and exits 1 at once, leaving the running shop's token file alone", async () => {
    const tokenFile = join(dataDir, 'registry-token');
    const token = readFileSync(tokenFile, 'utf8');
    const distributorPort = distributorAddress.split(':')[1]!;
    const gatewayPort = new URL(gatewayUrl).port;
    const second = spawnComponent(
      'src/launcher/main.ts',
      [],
      launcherEnv({ distributorPort, gatewayPort, dataDir }),
    );
    try {
      // Before, each component whose port was held exited 1 and was started again for ever.
      expect(await second.exited()).toBe(1);
      expect(second.lines).toContain(
        `[launcher] cannot start: 127.0.0.1:${distributorPort} (distributor's port, DISTRIBUTOR_PORT), 0.0.0.0:${gatewayPort} (gateway's port, GATEWAY_PORT) are in use by another process (an npm start runs on this DATA_DIR: its launcher is pid ${launcher.child.pid}); stop it, or give this one other ports (DISTRIBUTOR_PORT, GATEWAY_PORT; 0: any free one); nothing was started`,
      );
      expect(second.lines.filter((line) => !line.startsWith('[launcher]'))).toEqual([]);
      expect(readFileSync(tokenFile, 'utf8')).toBe(token);
      expect((await send(`${gatewayUrl}/goods`)).body).toContain('"no data"');
    } finally {
      if (second.child.exitCode === null) second.child.kill('SIGKILL');
    }
  }, 40_000);

  it("a second launcher on the same DATA_DIR with ports of its own runs, but leaves the running shop's token file alone", async () => {
    await secondLauncherKeepsTheTokenFile(await freePort(), async (second) => {
      await second.waitForLine(
        /^\[launcher\] .*registry-token holds the token of the launcher running as pid \d+/,
        30_000,
      );
      await second.waitForLine(/^\[gateway +\] .*registered with the distributor/, 30_000);
    });
  }, 60_000);

  it('prefixes every line with its component', () => {
    for (const name of ['distributor', 'goods', 'members', 'purchases', 'gateway']) {
      expect(launcher.lines.some((line) => line.startsWith(`[${name.padEnd(11)}] `))).toBe(true);
    }
  });

  it('serves the book requests with the seed bodies', async () => {
    const steps: Array<[string, string, object | undefined, string]> = [
      [
        'DELETE',
        '/members?username=test_account',
        undefined,
        '{"key":N,"errorcode":0,"errormessage":"success"}',
      ],
      [
        'POST',
        '/members',
        { username: 'test_account', password: '1234' },
        '{"key":N,"errorcode":0,"errormessage":"success"}',
      ],
      [
        'GET',
        '/members?username=test_account&password=1234',
        undefined,
        '{"key":N,"errorcode":0,"errormessage":"success","userid":1}',
      ],
      [
        'POST',
        '/goods',
        { name: 'test Goods', category: 'tests', price: 1000, description: 'test' },
        '{"key":N,"errorcode":0,"errormessage":"success"}',
      ],
      [
        'GET',
        '/goods',
        undefined,
        '{"key":N,"errorcode":0,"errormessage":"success","results":[{"id":1,"name":"test Goods","category":"tests","price":1000,"description":"test"}]}',
      ],
      ['DELETE', '/goods?id=1', undefined, '{"key":N,"errorcode":0,"errormessage":"success"}'],
      ['POST', '/purchases', { userid: 1, goodsid: 1 }, '{"key":N,"errorcode":0,"errormessage":"success"}'],
      [
        'GET',
        '/purchases?userid=1',
        undefined,
        '{"key":N,"errorcode":0,"errormessage":"success","results":[{"id":1,"goodsid":1,"date":"D"}]}',
      ],
    ];
    for (const [method, path, body, expected] of steps) {
      const answer = await send(`${gatewayUrl}${path}`, {
        method,
        headers: json,
        body: body && JSON.stringify(body),
      });
      expect(withoutKey(answer.body)).toBe(expected);
    }
  });

  it('refuses a 10 MB body with 413 while the gateway process stays flat in memory', async () => {
    const gatewayPid = childPids(launcher.child.pid!, 'gateway/main.')[0]!;
    expect(gatewayPid).toBeDefined();
    const refuseTenMegabytes = async (): Promise<void> => {
      // Announced size over the limit: the answer must come from the header alone, before any body.
      const announced = await new Promise<number>((resolve, reject) => {
        const outgoing = request(`${gatewayUrl}/goods`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': String(10 * 1024 * 1024) },
        });
        outgoing.on('response', (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
          outgoing.destroy();
        });
        outgoing.on('error', reject);
        outgoing.flushHeaders();
      });
      expect(announced).toBe(413);
      // Chunked, size unknown: the gateway must stop reading once past the limit and answer.
      const streamed = await new Promise<number>((resolve, reject) => {
        let answered = false;
        const outgoing = request(`${gatewayUrl}/goods`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
        });
        outgoing.on('response', (response) => {
          answered = true;
          response.resume();
          resolve(response.statusCode ?? 0);
        });
        // Once the gateway has answered and closed, our remaining writes fail: that is expected.
        outgoing.on('error', (error) => (answered ? undefined : reject(error)));
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        let sent = 0;
        const pump = (): void => {
          while (!answered && sent < 10 * 1024 * 1024) {
            sent += chunk.length;
            if (!outgoing.write(chunk)) return void outgoing.once('drain', pump);
          }
          outgoing.end();
        };
        pump();
      });
      expect(streamed).toBe(413);
    };
    // The first refusal warms the allocator up; during the second, RSS is sampled every few
    // milliseconds: a gateway that buffered the body would grow by its 10 MB.
    await refuseTenMegabytes();
    const before = rssMiB(gatewayPid);
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssMiB(gatewayPid));
    }, 2);
    await refuseTenMegabytes();
    clearInterval(sampler);
    expect(peak - before).toBeLessThan(5);
    const next = await send(`${gatewayUrl}/goods`);
    expect(next.status).toBe(200);
  });

  it('stops every component on SIGTERM and exits 0', async () => {
    // Only the components: under tsx the launcher also has an esbuild helper process.
    const children = childPids(launcher.child.pid!, '/main.');
    expect(children).toHaveLength(5);
    launcher.child.kill('SIGTERM');
    expect(await launcher.exited()).toBe(0);
    expect(children.filter(isAlive)).toEqual([]);
    expect(launcher.lines).toContain('[launcher] all stopped');
    // The run's token goes with it: a later run's tools never read a stale one.
    expect(existsSync(join(dataDir, 'registry-token'))).toBe(false);
    expect(existsSync(join(dataDir, 'registry-token.pid'))).toBe(false);
  });
});

/**
 * `npm start`'s launcher on ports of its own, once its gateway answers, with the gateway stopped
 * (SIGSTOP): a component that cannot take its SIGTERM. `test` gets the launcher, its five
 * components and the stopped gateway; whatever is left running after it is killed.
 */
async function withStuckGateway(
  dataDir: string,
  test: (launcher: ReturnType<typeof spawnComponent>, children: number[]) => Promise<void>,
): Promise<void> {
  const [distributorPort, gatewayPort] = await freePorts(2);
  const launcher = spawnComponent(
    'src/launcher/main.ts',
    [],
    launcherEnv({ distributorPort, gatewayPort, dataDir }),
  );
  let stuck: number | undefined;
  try {
    await vi.waitFor(
      async () => expect((await send(`http://127.0.0.1:${gatewayPort}/healthz`)).status).toBe(200),
      { timeout: 60_000, interval: 250 },
    );
    const children = childPids(launcher.child.pid!, '/main.');
    expect(children).toHaveLength(5);
    stuck = childPids(launcher.child.pid!, 'gateway/main.')[0]!;
    process.kill(stuck, 'SIGSTOP');
    await test(launcher, children);
  } finally {
    if (stuck !== undefined && isAlive(stuck)) process.kill(stuck, 'SIGKILL');
    if (launcher.child.exitCode === null) {
      for (const pid of childPids(launcher.child.pid!)) process.kill(pid, 'SIGKILL');
      launcher.child.kill('SIGKILL');
    }
  }
}

describe('npm start: a second signal', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'shop-launcher-second-signal-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('more than a second after the first kills what still runs and exits 1, not after each 10 s stop limit', async () => {
    // The ordered stop would wait the stopped gateway's 10 s, then each component's after it.
    await withStuckGateway(dataDir, async (launcher, children) => {
      launcher.child.kill('SIGINT');
      await launcher.waitForLine(/^\[launcher\] SIGINT: stopping every component/);
      await sleep(1_200);
      const secondAt = performance.now();
      launcher.child.kill('SIGINT');
      expect(await launcher.exited()).toBe(1);
      expect(performance.now() - secondAt).toBeLessThan(5_000);
      expect(launcher.lines.join('\n')).toContain('SIGINT again: killing every component still running');
      // Exited (not yet reaped, maybe: the launcher did not wait for them, and PID 1 reaps them).
      await vi.waitFor(() => expect(children.filter(isRunning)).toEqual([]));
    });
  }, 90_000);
});

describe('npm start: a component that does not stop within the stop limit', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'shop-launcher-killed-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('is killed, named in the last line, and the launcher exits 1, not 0 as if all had stopped', async () => {
    // The ordered stop kills the stopped gateway after its 10 s.
    await withStuckGateway(dataDir, async (launcher, children) => {
      launcher.child.kill('SIGTERM');
      expect(await launcher.exited()).toBe(1);
      expect(launcher.lines).toContain(
        '[gateway    ] still running 10000 ms after SIGTERM: killed (SIGKILL)',
      );
      expect(launcher.lines.at(-1)).toBe(
        '[launcher] all stopped, but gateway did not stop within 10000 ms of SIGTERM and was killed (SIGKILL); exiting with code 1',
      );
      // The others still stopped in order after it.
      expect(children.filter(isAlive)).toEqual([]);
    });
  }, 90_000);
});

describe('npm start with a configuration error', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'shop-launcher-config-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('a DATA_DIR that is a file: the launcher says so and exits 2 before starting anything', async () => {
    const notAFolder = join(dataDir, 'a-file');
    writeFileSync(notAFolder, '');
    const launcher = spawnComponent('src/launcher/main.ts', [], { DATA_DIR: notAFolder, MYSQL_URL: '' });
    try {
      expect(await launcher.exited()).toBe(2);
      expect(launcher.lines.join('\n')).toContain('DATA_DIR: cannot write the registration token');
    } finally {
      if (launcher.child.exitCode === null) launcher.child.kill('SIGKILL');
    }
  }, 60_000);

  it('a DATA_DIR where no folder can be made (under /proc): the launcher says so and exits 2 instead of hanging', async () => {
    const launcher = spawnComponent('src/launcher/main.ts', [], {
      DATA_DIR: `/proc/shop-data-${process.pid}`,
      MYSQL_URL: '',
    });
    try {
      // Within the test's time, so that a hung launcher is killed below rather than left behind.
      const outcome = await Promise.race([launcher.exited(), sleep(10_000, 'still running after 10 s')]);
      expect(outcome).toBe(2);
      expect(launcher.lines.join('\n')).toContain('DATA_DIR: cannot write the registration token');
    } finally {
      if (launcher.child.exitCode === null) launcher.child.kill('SIGKILL');
    }
  }, 20_000);

  it('names a variable that looks like a misspelt setting (GATEWAY_PROT=8081), which every component ignored', async () => {
    const launcher = spawnComponent('src/launcher/main.ts', [], {
      DATA_DIR: dataDir,
      GATEWAY_PROT: '8081',
      SERVICE_MAX_CONECTIONS: '10',
      // The shop's MySQL settings: MYSQL_URI left the shop on SQLite, MYSQL_SSLCA without TLS.
      MYSQL_URI: 'mysql://shop:pass@db.example:3306/shop',
      MYSQL_SSLCA: '/etc/mysql/ca.pem',
      // Named like the shop's but near none of its settings: a platform's, left alone.
      GOODS_SERVICE_HOST: '10.0.0.1',
      MYSQL_HOST: 'db.example',
      MYSQL_PWD: 'secret',
      // Every component refuses this at once: the test needs the launcher's start, not a shop.
      LOG_LEVEL: 'verbose',
      MYSQL_URL: '',
    });
    try {
      expect(await launcher.exited()).toBe(2);
      expect(launcher.lines).toContain(
        '[launcher] GATEWAY_PROT is set, but no component reads it: did you mean GATEWAY_PORT? (it is ignored)',
      );
      expect(launcher.lines).toContain(
        '[launcher] SERVICE_MAX_CONECTIONS is set, but no component reads it: did you mean SERVICE_MAX_CONNECTIONS? (it is ignored)',
      );
      expect(launcher.lines).toContain(
        '[launcher] MYSQL_URI is set, but no component reads it: did you mean MYSQL_URL? (it is ignored)',
      );
      expect(launcher.lines).toContain(
        '[launcher] MYSQL_SSLCA is set, but no component reads it: did you mean MYSQL_SSL_CA? (it is ignored)',
      );
      for (const name of ['GOODS_SERVICE_HOST', 'MYSQL_HOST', 'MYSQL_PWD']) {
        expect(launcher.lines.join('\n')).not.toContain(name);
      }
    } finally {
      if (launcher.child.exitCode === null) launcher.child.kill('SIGKILL');
    }
  }, 60_000);

  it('leaves a token file that is not its own alone when SHOP_REGISTRY_TOKEN names the token, and says so', async () => {
    const other = join(dataDir, 'registry-token');
    writeFileSync(other, 'an-earlier-runs-token\n');
    const launcher = spawnComponent('src/launcher/main.ts', [], {
      DATA_DIR: dataDir,
      SHOP_REGISTRY_TOKEN: 'a-token-of-my-own-0123456789abcdef',
      // Every component refuses this at once: the test needs the launcher's start, not a shop.
      LOG_LEVEL: 'verbose',
      MYSQL_URL: '',
    });
    try {
      expect(await launcher.exited()).toBe(2);
      // It may be another running launcher's: not removed, but named as not this run's.
      expect(readFileSync(other, 'utf8')).toBe('an-earlier-runs-token\n');
      expect(launcher.lines.join('\n')).toContain('holds another token than SHOP_REGISTRY_TOKEN');
    } finally {
      if (launcher.child.exitCode === null) launcher.child.kill('SIGKILL');
      rmSync(other, { force: true });
    }
  }, 60_000);

  it.each([
    // Only goods fails: the four others are running when the launcher stops them.
    ['GOODS_PORT=abc', { GOODS_PORT: 'abc' }, /^\[goods +\] GOODS_PORT: expected a whole number/],
    // All five fail: whichever exits first makes the launcher stop the rest.
    ['LOG_LEVEL=verbose', { LOG_LEVEL: 'verbose' }, /^\[\w+ *\] LOG_LEVEL: expected one of .*"verbose"/],
  ])(
    '%s: the component is not restarted; the launcher says why, stops the rest and exits 2',
    async (_name, bad, message) => {
      const ports = await freePorts(2);
      const launcher = spawnComponent('src/launcher/main.ts', [], {
        ...launcherEnv({ distributorPort: ports[0]!, gatewayPort: ports[1], dataDir }),
        DISTRIBUTOR_ADDRESS: `127.0.0.1:${ports[0]}`,
        ...bad,
      });
      try {
        await launcher.waitForLine(message);
        const tree = descendantPids(launcher.child.pid!);
        expect(await launcher.exited()).toBe(2);
        const [said, ...more] = launcher.lines.filter((line) => / cannot run /.test(line));
        expect(more).toEqual([]);
        const culprit = /^\[launcher\] (\w+) /.exec(said ?? '')?.[1];
        expect(said).toBe(
          `[launcher] ${culprit} cannot run (bad configuration: see its message above): stopping every component`,
        );
        expect(
          launcher.lines.some((line) => message.test(line) && new RegExp(`^\\[${culprit} *\\] `).test(line)),
        ).toBe(true);
        expect(launcher.lines).toContain('[launcher] all stopped; exiting with code 2');
        // Each component printed its error once at most: none was started again.
        const errors = launcher.lines.filter((line) => message.test(line)).map((line) => line.split(']')[0]);
        expect(new Set(errors).size).toBe(errors.length);
        expect(launcher.lines.some((line) => / starting it again in /.test(line))).toBe(false);
        expect(tree.filter(isRunning)).toEqual([]);
      } finally {
        if (launcher.child.exitCode === null) launcher.child.kill('SIGKILL');
      }
    },
    60_000,
  );

  it("LOG_FORMAT=json: every line after its prefix is one JSON log record, the launcher's own and what a component printed outside its logger too", async () => {
    const ports = await freePorts(2);
    const launcher = spawnComponent('src/launcher/main.ts', [], {
      ...launcherEnv({ distributorPort: ports[0]!, gatewayPort: ports[1], dataDir }),
      DISTRIBUTOR_ADDRESS: `127.0.0.1:${ports[0]}`,
      LOG_FORMAT: 'json',
      GOODS_PORT: 'abc',
    });
    try {
      expect(await launcher.exited()).toBe(2);
      const records = launcher.lines.map((line) => {
        const [, prefix, rest] = /^\[(\w+) *\] (.*)$/.exec(line) ?? [];
        expect(rest, line).toBeDefined();
        const record = JSON.parse(rest!) as Record<string, unknown>;
        expect(record, line).toMatchObject({
          level: expect.any(Number),
          time: expect.any(Number),
          component: prefix,
        });
        expect(typeof record.msg, line).toBe('string');
        return record;
      });
      expect(records).toContainEqual(
        expect.objectContaining({
          component: 'launcher',
          level: 50,
          msg: 'goods cannot run (bad configuration: see its message above): stopping every component',
        }),
      );
      expect(records).toContainEqual(
        expect.objectContaining({
          component: 'goods',
          level: 50,
          source: 'launcher',
          msg: expect.stringMatching(/^exited with code 2 /),
        }),
      );
      // Printed to stderr before goods had a logger: wrapped, and said to come from there.
      expect(records).toContainEqual(
        expect.objectContaining({
          component: 'goods',
          level: 50,
          source: 'stderr',
          msg: expect.stringMatching(/^GOODS_PORT: expected a whole number/),
        }),
      );
      // The components' own log lines pass as they were written.
      expect(records).toContainEqual(
        expect.objectContaining({
          component: 'distributor',
          level: 30,
          msg: expect.stringMatching(/^listening on /),
        }),
      );
      expect(records.filter((record) => record.component === 'distributor' && 'source' in record)).toEqual(
        [],
      );
    } finally {
      if (launcher.child.exitCode === null) launcher.child.kill('SIGKILL');
    }
  }, 60_000);
});

describe('a port another process holds', () => {
  it.each([
    ['src/distributor/main.ts', '--port (DISTRIBUTOR_PORT)'],
    ['src/gateway/main.ts', '--port (GATEWAY_PORT)'],
    ['src/services/goods/main.ts', '--port (GOODS_PORT)'],
  ])(
    '%s exits 1, naming the address and the setting to change',
    async (entry, setting) => {
      const holder = createNetServer();
      await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
      const port = (holder.address() as AddressInfo).port;
      const dataDir = mkdtempSync(join(tmpdir(), 'shop-port-held-'));
      const component = spawnComponent(entry, ['--host', '127.0.0.1', '--port', String(port)], {
        MYSQL_URL: '',
        DATA_DIR: dataDir,
        DISTRIBUTOR_ADDRESS: '127.0.0.1:1',
        SHOP_REGISTRY_TOKEN: 'a-token-of-my-own-0123456789abcdef',
      });
      try {
        expect(await component.exited()).toBe(1);
        expect(component.lines).toContain(
          `cannot listen on 127.0.0.1:${port}: the port is in use by another process (another copy of the shop still running?); stop it, or choose another port with ${setting}`,
        );
        // grpc-js's own line about it came first before its log went through the component's.
        expect(component.lines.filter((line) => line.includes('No address added'))).toEqual([]);
      } finally {
        if (component.child.exitCode === null) component.child.kill('SIGKILL');
        holder.close();
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
    60_000,
  );
});

describe('npm start with a port another program holds', () => {
  it('starts nothing, names the port and its variable, and exits 1 at once instead of restarting the gateway for ever', async () => {
    const holder = createNetServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const gatewayPort = (holder.address() as AddressInfo).port;
    const dataDir = mkdtempSync(join(tmpdir(), 'shop-port-held-'));
    const launcher = spawnComponent(
      'src/launcher/main.ts',
      [],
      launcherEnv({ distributorPort: await freePort(), gatewayPort, dataDir }),
    );
    try {
      expect(await launcher.exited()).toBe(1);
      expect(launcher.lines).toEqual([
        `[launcher] cannot start: 0.0.0.0:${gatewayPort} (gateway's port, GATEWAY_PORT) is in use by another process (another copy of the shop, or another program: \`ss -ltnp\` names it); stop it, or give this one other ports (GATEWAY_PORT; 0: any free one); nothing was started`,
      ]);
      expect(existsSync(join(dataDir, 'registry-token'))).toBe(false);
    } finally {
      if (launcher.child.exitCode === null) launcher.child.kill('SIGKILL');
      holder.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('--help', () => {
  it.each([
    ['src/distributor/main.ts', 'usage: distributor [options]'],
    ['src/gateway/main.ts', 'usage: gateway [options]'],
    ['src/services/goods/main.ts', 'usage: goods [options]'],
    ['src/services/members/main.ts', 'usage: members [options]'],
    ['src/services/purchases/main.ts', 'usage: purchases [options]'],
    ['src/launcher/main.ts', 'usage: npm start (no options; the settings are environment variables)'],
  ])('%s prints its usage and exits 0, starting nothing', async (entry, head) => {
    const component = spawnComponent(entry, ['--help'], { MYSQL_URL: '' });
    expect(await component.exited()).toBe(0);
    expect(component.lines[0]).toBe(head);
    expect(component.lines.some((line) => /listening|starting/.test(line))).toBe(false);
  });

  it('the launcher refuses DISTRIBUTOR_PORT=0 without DISTRIBUTOR_ADDRESS: the others could not find it', async () => {
    const launcher = spawnComponent('src/launcher/main.ts', [], { DISTRIBUTOR_PORT: '0', MYSQL_URL: '' });
    expect(await launcher.exited()).toBe(2);
    expect(launcher.lines[0]).toMatch(
      /^\[launcher\] DISTRIBUTOR_PORT=0: the other components could not know/,
    );
    expect(launcher.lines.some((line) => /^\[(distributor|goods|gateway)/.test(line))).toBe(false);
  });

  it('the launcher refuses a blank DATA_DIR, as the services do, before it makes a folder of that name', async () => {
    // Read as it was, " " was a folder the launcher made for the token; then the services refused it.
    expect(existsSync(' ')).toBe(false);
    try {
      const launcher = spawnComponent('src/launcher/main.ts', [], { DATA_DIR: ' ', MYSQL_URL: '' });
      expect(await launcher.exited()).toBe(2);
      expect(launcher.lines[0]).toBe('[launcher] DATA_DIR: expected a value, got an empty one');
      expect(launcher.lines.some((line) => /^\[(distributor|goods|gateway)/.test(line))).toBe(false);
      expect(existsSync(' ')).toBe(false);
    } finally {
      rmSync(' ', { recursive: true, force: true });
    }
  });

  it.each([
    ['a port clash', { GOODS_PORT: '9000', DISTRIBUTOR_PORT: '9000' }, /^port 9000 would be both/],
    ['DISTRIBUTOR_PORT=0', { DISTRIBUTOR_PORT: '0' }, /^DISTRIBUTOR_PORT=0: /],
    ['a blank DATA_DIR', { DATA_DIR: ' ' }, /^DATA_DIR: expected a value/],
  ])(
    'with LOG_FORMAT=json, its refusal of %s read after LOG_FORMAT is one JSON line too',
    async (_, env, message) => {
      const launcher = spawnComponent('src/launcher/main.ts', [], {
        ...env,
        LOG_FORMAT: 'json',
        MYSQL_URL: '',
      });
      try {
        expect(await launcher.exited()).toBe(2);
        const lines = launcher.lines.filter((line) => line !== '');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/^\[launcher\] \{/);
        const record = JSON.parse(lines[0]!.slice('[launcher] '.length)) as Record<string, unknown>;
        expect(record).toMatchObject({ level: 50, component: 'launcher' });
        expect(record.msg).toMatch(message);
      } finally {
        rmSync(' ', { recursive: true, force: true });
      }
    },
  );

  it('the launcher takes no flags: one given is refused with exit 2 and the usage, before anything starts', async () => {
    const launcher = spawnComponent('src/launcher/main.ts', ['--port', '9000'], { MYSQL_URL: '' });
    expect(await launcher.exited()).toBe(2);
    expect(launcher.lines[0]).toBe("[launcher] Unknown option '--port'");
    expect(launcher.lines).toContain('usage: npm start (no options; the settings are environment variables)');
    expect(launcher.lines.some((line) => /^\[(distributor|goods|gateway)/.test(line))).toBe(false);
  });

  it('nor one npm kept as its own setting (npm start --port=8081 reaches it as npm_config_port): exit 2', async () => {
    const launcher = spawnComponent('src/launcher/main.ts', [], { MYSQL_URL: '', npm_config_port: '8081' });
    expect(await launcher.exited()).toBe(2);
    expect(launcher.lines[0]).toMatch(
      /^\[launcher\] npm start takes no flags, and npm kept --port=8081 as its own setting/,
    );
    expect(launcher.lines.some((line) => /^\[(distributor|goods|gateway)/.test(line))).toBe(false);
  });
});

describe('each component with TLS_DIR naming a folder that holds no certificates', () => {
  it.each(['src/distributor/main.ts', 'src/gateway/main.ts', 'src/services/goods/main.ts'])(
    '%s exits 2 at once, naming the file and the setting, without its usage or a stack',
    async (entry) => {
      const component = spawnComponent(entry, ['--port', '0'], {
        TLS_DIR: '/nonexistent-shop-certs',
        SHOP_REGISTRY_TOKEN: 'a-token-of-my-own-0123456789abcdef',
        MYSQL_URL: '',
      });
      expect(await component.exited()).toBe(2);
      expect(component.lines[0]).toMatch(
        /\/nonexistent-shop-certs\/\S+" from --tls-dir \(TLS_DIR\) cannot be read: no such file/,
      );
      // The reason names the file and its flag; the usage's hundred lines after it would bury it.
      expect(component.lines.some((line) => line.startsWith('usage: '))).toBe(false);
      expect(component.lines.some((line) => /^\s+at /.test(line))).toBe(false);
    },
  );
});

describe('a component whose TLS certificate is a device that never ends', () => {
  it('exits 2 at once, naming the file and the setting, instead of reading it for ever', async () => {
    const goods = spawnComponent('src/services/goods/main.ts', ['--port', '0'], {
      TLS_CERT: '/dev/zero',
      TLS_KEY: '/dev/zero',
      SHOP_REGISTRY_TOKEN: 'a-token-of-my-own-0123456789abcdef',
      MYSQL_URL: '',
    });
    // Reading /dev/zero takes memory for as long as it goes on: a process still at it is stopped.
    const stuck = setTimeout(() => goods.child.kill('SIGKILL'), 10_000);
    try {
      expect(await goods.exited()).toBe(2);
    } finally {
      clearTimeout(stuck);
    }
    expect(goods.lines[0]).toMatch(
      /"\/dev\/zero" from --tls-cert \(TLS_CERT\) is not a regular file: it is a character device/,
    );
    expect(goods.lines.some((line) => /^\s+at /.test(line))).toBe(false);
  });

  it("so does the gateway given it as its REST port's certificate, naming --https-cert", async () => {
    const gateway = spawnComponent('src/gateway/main.ts', ['--port', '0'], {
      GATEWAY_HTTPS_CERT: '/dev/zero',
      GATEWAY_HTTPS_KEY: '/dev/zero',
      SHOP_REGISTRY_TOKEN: 'a-token-of-my-own-0123456789abcdef',
    });
    const stuck = setTimeout(() => gateway.child.kill('SIGKILL'), 10_000);
    try {
      expect(await gateway.exited()).toBe(2);
    } finally {
      clearTimeout(stuck);
    }
    expect(gateway.lines.join('\n')).toMatch(
      /"\/dev\/zero" from --https-cert \(GATEWAY_HTTPS_CERT\) is not a regular file: it is a character device/,
    );
  });
});

describe('a service whose SQLite file is not a database', () => {
  it('exits 2 at once, naming the file, instead of failing at every restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'shop-notadb-'));
    try {
      writeFileSync(
        join(dataDir, 'goods.sqlite'),
        'not a database, but long enough to be read as a header '.repeat(20),
      );
      const goods = spawnComponent(
        'src/services/goods/main.ts',
        ['--port', '0', '--distributor', '127.0.0.1:1'],
        {
          DATA_DIR: dataDir,
          MYSQL_URL: '',
        },
      );
      expect(await goods.exited()).toBe(2);
      expect(goods.lines.join('\n')).toMatch(/cannot open the SQLite file \S+goods\.sqlite .*not a database/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('each component with LOG_LEVEL=verbose', () => {
  it.each([
    'src/distributor/main.ts',
    'src/gateway/main.ts',
    'src/services/goods/main.ts',
    'src/services/members/main.ts',
    'src/services/purchases/main.ts',
  ])('%s exits 2 at once, saying what LOG_LEVEL expects', async (entry) => {
    const component = spawnComponent(entry, ['--port', '0'], { LOG_LEVEL: 'verbose', MYSQL_URL: '' });
    expect(await component.exited()).toBe(2);
    expect(component.lines[0]).toBe(
      'LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent, got "verbose"',
    );
  });
});

describe('a service instance killed without warning', () => {
  it('gets 503 at once, and is served again when started on another port, without touching the gateway', async () => {
    const distributor = createDistributorServer();
    const distributorAddress = `127.0.0.1:${await distributor.listen('127.0.0.1', 0)}`;
    const gateway = createGateway({
      distributor: distributorAddress,
      registrationBackoff: { initialMs: 20, maxMs: 200 },
    });
    const gatewayUrl = `http://127.0.0.1:${await gateway.listen('127.0.0.1', 0)}`;
    const dataDir = mkdtempSync(join(tmpdir(), 'shop-kill-'));
    const goodsArgs = ['--port', '0', '--host', '127.0.0.1', '--distributor', distributorAddress];
    const env = { DATA_DIR: dataDir, MYSQL_URL: '' };
    let goods = spawnComponent('src/services/goods/main.ts', goodsArgs, env);
    try {
      await vi.waitFor(() => expect(servingCount(gateway, 'GET', '/goods')).toBe(1), { timeout: 30_000 });
      expect((await send(`${gatewayUrl}/goods`)).body).toContain('"no data"');

      goods.child.kill('SIGKILL');
      await goods.exited();
      const started = Date.now();
      await vi.waitFor(async () => expect((await send(`${gatewayUrl}/goods`)).status).toBe(503), {
        timeout: 5_000,
      });
      expect(Date.now() - started).toBeLessThan(5_000);
      const unavailable = await send(`${gatewayUrl}/goods`);
      expect(unavailable.headers['retry-after']).toBeDefined();
      expect(unavailable.body).toMatch(/^\{"key":\d+,"errorcode":1,"errormessage":"[^"]+"\}$/);

      goods = spawnComponent('src/services/goods/main.ts', goodsArgs, env);
      await vi.waitFor(async () => expect((await send(`${gatewayUrl}/goods`)).body).toContain('"no data"'), {
        timeout: 30_000,
      });
    } finally {
      goods.child.kill('SIGKILL');
      await gateway.stop();
      await distributor.stop(100);
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
