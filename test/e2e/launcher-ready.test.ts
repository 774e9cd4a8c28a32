import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTestPki } from '../helpers/certs.js';
import { httpsGet, send } from '../helpers/http.js';
import {
  childPids,
  descendantPids,
  freePort,
  isRunning,
  launcherEnv,
  spawnComponent,
} from './support/processes.js';

// `npm start` says when the shop answers: one line once every service it started is registered and
// the gateway routes to it, so that a request made on that line is served; a warning naming whoever
// is missing if that takes too long; one line again once a component it restarted is back.

const READY =
  /^\[launcher\] the shop is ready: (http:\/\/127\.0\.0\.1:(\d+)) \(goods, members, purchases registered; \d+\.\d s\)$/;

describe('npm start says when the shop is ready', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0).reverse()) cleanup();
  });

  /** The launcher on free ports, the gateway on port 0 (any free one); `env` added. */
  async function startLauncher(env: NodeJS.ProcessEnv = {}): Promise<ReturnType<typeof spawnComponent>> {
    const dataDir = mkdtempSync(join(tmpdir(), 'shop-ready-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const launcher = spawnComponent(
      'src/launcher/main.ts',
      [],
      {
        ...launcherEnv({ distributorPort: await freePort(), gatewayPort: 0, dataDir }),
        GATEWAY_HOST: '127.0.0.1',
        ...env,
      },
      { stdinOpen: true },
    );
    cleanups.push(() => {
      for (const pid of [...descendantPids(launcher.child.pid!), launcher.child.pid!]) {
        if (isRunning(pid)) process.kill(pid, 'SIGKILL');
      }
    });
    return launcher;
  }

  it('after every service registered, at the port the gateway got, where GET /goods then answers 200; again after a restart', async () => {
    const launcher = await startLauncher();
    const line = await launcher.waitForLine(READY, 60_000);
    const at = launcher.lines.indexOf(line);
    const [, url, port] = READY.exec(line)!;
    expect(Number(port)).toBeGreaterThan(0);
    for (const name of ['goods', 'members', 'purchases']) {
      const registered = launcher.lines.findIndex((each) =>
        new RegExp(`^\\[${name} *\\] .*registered with the distributor`).test(each),
      );
      expect(registered, launcher.lines.join('\n')).toBeGreaterThanOrEqual(0);
      expect(registered).toBeLessThan(at);
    }
    // At once, no retry: the line said the gateway routes it.
    const answer = await send(`${url}/goods`);
    expect(answer.status).toBe(200);
    expect(answer.body).toContain('"no data"');
    expect(launcher.lines.filter((each) => /^\[launcher\] .*(not ready|ready again)/.test(each))).toEqual([]);

    // goods dies: the launcher starts it again, and says so once it is back (not while the gateway
    // still lists the goods that died).
    const goods = childPids(launcher.child.pid!, 'services/goods/main.')[0]!;
    process.kill(goods, 'SIGKILL');
    const again = await launcher.waitForLine(
      /^\[launcher\] the shop is ready again: http:\/\/127\.0\.0\.1:\d+ \(goods back; \d+\.\d s after it exited\)$/,
      60_000,
    );
    expect(again).toContain(url);
    const restarted = launcher.lines.findIndex((each) => /^\[goods *\] exited \(SIGKILL\)/.test(each));
    const registeredAgain = launcher.lines.findLastIndex((each) =>
      /^\[goods *\] .*registered with the distributor/.test(each),
    );
    expect(restarted).toBeGreaterThan(at);
    expect(registeredAgain).toBeGreaterThan(restarted);
    expect(registeredAgain).toBeLessThan(launcher.lines.indexOf(again));
    expect((await send(`${url}/goods`)).status).toBe(200);

    launcher.child.kill('SIGTERM');
    expect(await launcher.exited()).toBe(0);
  }, 150_000);

  // Its GET /status.json asks the launcher, as every client, for a certificate of its client CA:
  // refused (403), the launcher never said the shop was ready, only warned 30 s on that the
  // gateway did not tell it.
  it('with a gateway that requires client certificates (GATEWAY_HTTPS_CLIENT_CA), at its https URL, where a client with a certificate is then served', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shop-ready-pki-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const pki = makeTestPki(dir, { names: ['gateway', 'operator'] });
    const { certFile, keyFile } = pki.files('gateway');
    const launcher = await startLauncher({
      GATEWAY_HTTPS_CERT: certFile,
      GATEWAY_HTTPS_KEY: keyFile,
      GATEWAY_HTTPS_CLIENT_CA: pki.caFile,
    });
    const line = await launcher.waitForLine(/^\[launcher\] the shop is (?:not )?ready/, 60_000);
    const [, url] =
      /^\[launcher\] the shop is ready: (https:\/\/127\.0\.0\.1:\d+) \(goods, members, purchases registered; \d+\.\d s\)$/.exec(
        line,
      ) ?? [];
    expect(url, line).toBeDefined();
    // The answer on the gateway's pipe is read by the launcher, never shown.
    expect(launcher.lines.filter((each) => each.includes('shop-supervisor'))).toEqual([]);
    const answer = await httpsGet(`${url}/goods`, pki.caFile, pki.files('operator'));
    expect(answer).toMatchObject({ status: 200 });
    expect(answer.body).toContain('"no data"');
    expect((await httpsGet(`${url}/goods`, pki.caFile)).status).toBe(403);
    launcher.child.kill('SIGTERM');
    expect(await launcher.exited()).toBe(0);
  }, 120_000);

  // Every service registered at an address where nothing listens (ADVERTISE_HOST=127.0.0.2, the
  // services listening on 127.0.0.1 alone): the gateway routed to them and could connect to none, its
  // /readyz said not ready, and the launcher, counting registrations, said the shop was ready.
  it('with the services registered where the gateway cannot connect to them: never ready, and warns naming each and its address', async () => {
    const launcher = await startLauncher({ ADVERTISE_HOST: '127.0.0.2' });
    const warning = await launcher.waitForLine(/^\[launcher\] the shop is (?:not )?ready/, 60_000);
    expect(warning).toMatch(
      /^\[launcher\] the shop is not ready 30 s after the start: goods \(at 127\.0\.0\.2:\d+\), members \(at 127\.0\.0\.2:\d+\), purchases \(at 127\.0\.0\.2:\d+\) are registered, but the gateway cannot connect to them there \(its attempts failing for \d+ s; see its lines above\): give them an address the gateway reaches, --host \(SERVICE_HOST\) or --advertise-host \(ADVERTISE_HOST\), or open the way from the gateway to those addresses; the launcher says so once the shop is ready$/,
    );
    // The gateway agrees: not ready, for want of an instance it reaches.
    const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(
      launcher.lines.find((each) => /^\[gateway *\] .*listening on http:/.test(each)) ?? '',
    )?.[1];
    expect(url, launcher.lines.join('\n')).toBeDefined();
    const readyz = await send(`${url}/readyz`);
    expect(readyz.status).toBe(503);
    expect(readyz.body).toContain('no reachable instance for GET /goods');
    launcher.child.kill('SIGTERM');
    expect(await launcher.exited()).toBe(0);
  }, 120_000);

  it('warns, naming the service that cannot register, and stops at once on SIGTERM', async () => {
    // goods's process runs, but never gets to register: its entry never loads.
    const folder = mkdtempSync(join(tmpdir(), 'shop-ready-hang-'));
    cleanups.push(() => rmSync(folder, { recursive: true, force: true }));
    const hang = join(folder, 'hang-goods.mjs');
    writeFileSync(
      hang,
      "if (/services[\\\\/]goods[\\\\/]main\\./.test(process.argv[1] ?? '')) { setInterval(() => {}, 1 << 30); await new Promise(() => {}); }\n",
    );
    const launcher = await startLauncher({
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${hang}`.trim(),
    });
    const warning = await launcher.waitForLine(/^\[launcher\] .*not ready/, 60_000);
    expect(warning).toMatch(
      /^\[launcher\] the shop is not ready 30 s after the start: goods has not registered with the distributor, or the gateway does not route to it yet /,
    );
    expect(launcher.lines.some((each) => /^\[launcher\] the shop is ready/.test(each))).toBe(false);
    const stoppedAt = performance.now();
    launcher.child.kill('SIGTERM');
    expect(await launcher.exited()).toBe(0);
    expect(performance.now() - stoppedAt).toBeLessThan(8_000);
  }, 120_000);
});
