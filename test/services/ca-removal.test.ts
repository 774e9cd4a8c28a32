import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ChannelCredentials, connectivityState, status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Logger } from '../../src/common/logger.js';
import { channelCredentials, secureNamingChannelOptions, type TlsFilePaths } from '../../src/common/tls.js';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { createGateway } from '../../src/gateway/gateway-server.js';
import { GoodsServiceClient } from '../../src/gen/services.js';
import { capturingLogger } from '../distributor/support/capturing-logger.js';
import { installCertificate, replaceFile, useTestPki } from '../helpers/certs.js';
import { heldHandshake } from '../helpers/held-handshake.js';
import { startTlsGoods } from '../helpers/tls-goods.js';

// A CA removed from a service's CA file (because it leaked) closes the connections that clients
// made to it with certificates of that CA, and only those: TLS checks a certificate's CA at the
// handshake alone, so without this a client of the leaked CA went on calling the service.

const testPki = useTestPki('service-ca-removal-', { names: ['distributor', 'goods', 'gateway'] });
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** How often the service reads its TLS files again. */
const REFRESH_MS = 50;
const WAIT = { timeout: 5_000, interval: 20 };
/** An empty shop's answer to ListGoods: the call reached the service. */
const ANSWERED = { code: status.NOT_FOUND, details: 'no data' };

/** A distributor over mTLS with `tls`, reading its files again every REFRESH_MS: its address. */
async function startTlsDistributor(tls: Required<TlsFilePaths>): Promise<string> {
  const distributor = createDistributorServer({ tls, tlsRefreshIntervalMs: REFRESH_MS });
  const port = await distributor.listen('127.0.0.1', 0);
  cleanups.push(() => distributor.stop(0));
  return `127.0.0.1:${port}`;
}

/** Goods over mTLS with `tls`, on SQLite in `dir`, reading its files again every REFRESH_MS. */
function startGoods(distributor: string, tls: Required<TlsFilePaths>, dir: string, log: Logger) {
  return startTlsGoods({ distributor, tls, dir, log, cleanups, tlsRefreshIntervalMs: REFRESH_MS });
}

/**
 * Goods trusting both CAs, as in the middle of a rotation or as a shop with a second CA, through a
 * CA file of its own that a test rewrites, and what it logs.
 */
async function goodsTrustingBothCas() {
  const { pki } = testPki;
  const dir = mkdtempSync(join(pki.dir, 'run-'));
  const caFile = join(dir, 'ca.crt');
  copyFileSync(pki.bothCasFile, caFile);
  const distributor = await startTlsDistributor({ ...pki.files('distributor'), caFile: pki.bothCasFile });
  const { log, lines, warnings } = capturingLogger();
  const goods = await startGoods(distributor, { ...pki.files('goods'), caFile }, dir, log);
  return { caFile, goods, lines, warnings };
}

/** A goods client over mTLS with `files`, and every connectivity state its channel went through. */
function goodsClient(address: string, files: Required<TlsFilePaths>) {
  const credentials: ChannelCredentials = channelCredentials(files, { expectedName: 'goods' });
  const client = new GoodsServiceClient(address, credentials, secureNamingChannelOptions(files, 'goods'));
  cleanups.push(() => client.close());
  const states: number[] = [];
  const channel = client.getChannel();
  const follow = (): void => {
    const state = channel.getConnectivityState(false);
    states.push(state);
    if (state !== connectivityState.SHUTDOWN) channel.watchConnectivityState(state, Infinity, follow);
  };
  follow();
  const listGoods = () =>
    new Promise<{ code: number; details?: string }>((resolve) =>
      client.listGoods({}, (error) =>
        resolve(error ? { code: error.code, details: error.details } : { code: 0 }),
      ),
    );
  return { listGoods, states };
}

describe("a CA removed from a service's CA file", () => {
  it('closes a connection whose handshake, begun before the change, ends after it', async () => {
    const { pki } = testPki;
    const { caFile, goods, lines, warnings } = await goodsTrustingBothCas();
    // The client's certificate held back: goods' TLS socket was made with the CAs of before, and
    // checks the certificate against them once it comes.
    const files = pki.foreignFiles('gateway');
    const late = heldHandshake(goods.port, {
      ca: readFileSync(pki.caFile),
      cert: readFileSync(files.certFile),
      key: readFileSync(files.keyFile),
      servername: 'goods',
      ALPNProtocols: ['h2'],
      checkServerIdentity: () => undefined,
    });
    cleanups.push(() => late.socket.destroy());
    await late.clientDone;
    replaceFile(pki.caFile, caFile);
    await vi.waitFor(
      () =>
        expect(lines.filter((line) => line.event === 'tls-reloaded' && line.file === caFile)).toHaveLength(1),
      WAIT,
    );
    late.release();
    const cut = () => warnings().filter((line) => line.event === 'untrusted-after-ca-change');
    await vi.waitFor(() => expect(cut()).toEqual([expect.objectContaining({ peer: '127.0.0.1' })]), WAIT);
    // Closed by goods: no call can go over it.
    await late.answer;
  });

  it('closes the connections of its certificates, which cannot connect again; those of the CA kept go on untouched', async () => {
    const { pki } = testPki;
    const { caFile, goods, lines, warnings } = await goodsTrustingBothCas();
    const address = `127.0.0.1:${goods.port}`;
    const ofLeakedCa = goodsClient(address, pki.foreignFiles('gateway'));
    const ofKeptCa = goodsClient(address, { ...pki.files('gateway'), caFile: pki.bothCasFile });
    expect(await ofLeakedCa.listGoods()).toEqual(ANSWERED);
    expect(await ofKeptCa.listGoods()).toEqual(ANSWERED);

    // The other CA leaked: the operator removes it from the service's CA file.
    replaceFile(pki.caFile, caFile);

    const cut = () => warnings().filter((line) => line.event === 'untrusted-after-ca-change');
    await vi.waitFor(() => expect(cut()).toHaveLength(1), WAIT);
    expect(cut()[0]).toMatchObject({ peer: '127.0.0.1', port: expect.any(Number) });
    expect(cut()[0]?.msg).toMatch(/no longer in goods's CA file/);
    expect(JSON.stringify(lines)).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
    // Its connection is gone; a new one is refused at its handshake.
    await vi.waitFor(() => expect(ofLeakedCa.states.at(-1)).not.toBe(connectivityState.READY), WAIT);
    expect(await ofLeakedCa.listGoods()).toMatchObject({ code: status.UNAVAILABLE });
    // The client of the CA kept stayed on the connection it had from the start.
    expect(await ofKeptCa.listGoods()).toEqual(ANSWERED);
    expect(ofKeptCa.states.filter((state) => state === connectivityState.READY)).toHaveLength(1);
    expect(ofKeptCa.states.at(-1)).toBe(connectivityState.READY);
    expect(cut()).toHaveLength(1);
  });

  it("cuts none of a gateway's connections at a rotation's step 3 once the gateway renewed: its requests go on without a failure", async () => {
    const { pki } = testPki;
    const dir = mkdtempSync(join(pki.dir, 'run-'));
    // Step 1 done: every CA file holds both CAs; every certificate is still of the old CA.
    const caFileOf = (name: string): string => {
      const file = join(dir, `${name}-ca.crt`);
      copyFileSync(pki.bothCasFile, file);
      return file;
    };
    const distributorCa = caFileOf('distributor');
    const distributor = await startTlsDistributor({
      caFile: distributorCa,
      ...installCertificate(pki.files('distributor'), dir, 'distributor'),
    });
    const goodsCa = caFileOf('goods');
    const goodsLog = capturingLogger();
    await startGoods(
      distributor,
      { caFile: goodsCa, ...installCertificate(pki.files('goods'), dir, 'goods') },
      dir,
      goodsLog.log,
    );
    const gatewayLog = capturingLogger();
    const gateway = createGateway({
      distributor,
      tls: { caFile: caFileOf('gateway'), ...installCertificate(pki.files('gateway'), dir, 'gateway') },
      tlsRefreshIntervalMs: REFRESH_MS,
      log: gatewayLog.log,
    });
    cleanups.push(() => gateway.stop());
    const gatewayPort = await gateway.listen('127.0.0.1', 0);
    const statuses: number[] = [];
    const get = async (): Promise<number> => {
      const { status: answered } = await fetch(`http://127.0.0.1:${gatewayPort}/goods`);
      statuses.push(answered);
      return answered;
    };
    await vi.waitFor(async () => expect(await get()).toBe(200), { ...WAIT, timeout: 10_000 });

    // Step 2: every certificate renewed by the new CA, goods' last.
    const moved = () => gatewayLog.lines.filter((line) => line.event === 'upstream-moved');
    for (const name of ['distributor', 'gateway']) installCertificate(pki.foreignFiles(name), dir, name);
    await vi.waitFor(
      () => expect(gatewayLog.lines.filter((line) => line.event === 'registration-moved')).toHaveLength(1),
      WAIT,
    );
    // Its calls to goods moved to a connection made with it.
    await vi.waitFor(() => expect(moved()).toHaveLength(1), WAIT);
    // Goods renewed after that: the gateway's connection to it still holds goods' certificate of
    // the old CA, which step 3 removes from the gateway's CA file.
    installCertificate(pki.foreignFiles('goods'), dir, 'goods');
    // Goods took it: its registration moved to a connection made with it.
    await vi.waitFor(
      () => expect(goodsLog.lines.filter((line) => line.event === 'registration-moved')).toHaveLength(1),
      WAIT,
    );
    // Step 3, under requests: the old CA removed from every CA file.
    statuses.length = 0;
    let requesting = true;
    const requests = (async () => {
      while (requesting) await get();
    })();
    for (const file of [distributorCa, goodsCa, join(dir, 'gateway-ca.crt')])
      replaceFile(pki.otherCaFile, file);
    await new Promise((resolve) => setTimeout(resolve, 20 * REFRESH_MS));
    requesting = false;
    await requests;
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.filter((answered) => answered !== 200).slice(0, 3)).toEqual([]);
    expect(goodsLog.warnings()).toEqual([]);
    expect(gatewayLog.warnings()).toEqual([]);
    // The gateway moved its calls to goods again at step 3, to a connection that shows goods'
    // renewed certificate, instead of cutting them.
    expect(moved()).toHaveLength(2);
  }, 30_000);

  it("keeps a gateway's calls on their connection when the service refuses its renewed certificate (its CA not added there yet)", async () => {
    const { pki } = testPki;
    const dir = mkdtempSync(join(pki.dir, 'run-'));
    const distributor = await startTlsDistributor({ ...pki.files('distributor'), caFile: pki.bothCasFile });
    // Goods trusts the old CA only: step 1 has not reached it.
    const goodsLog = capturingLogger();
    await startGoods(distributor, pki.files('goods'), dir, goodsLog.log);
    const gatewayLog = capturingLogger();
    const gateway = createGateway({
      distributor,
      tls: { caFile: pki.bothCasFile, ...installCertificate(pki.files('gateway'), dir, 'gateway') },
      log: gatewayLog.log,
    });
    cleanups.push(() => gateway.stop());
    const gatewayPort = await gateway.listen('127.0.0.1', 0);
    const get = async (): Promise<number> => (await fetch(`http://127.0.0.1:${gatewayPort}/goods`)).status;
    await vi.waitFor(async () => expect(await get()).toBe(200), { ...WAIT, timeout: 10_000 });

    installCertificate(pki.foreignFiles('gateway'), dir, 'gateway');
    await vi.waitFor(
      () =>
        expect(gatewayLog.warnings().filter((line) => line.event === 'upstream-move-failed')).toEqual([
          expect.objectContaining({ upstream: expect.stringMatching(/^goods@127\.0\.0\.1:\d+$/) }),
        ]),
      { ...WAIT, timeout: 15_000 },
    );
    // Its calls go on over the connection made with the certificate before.
    for (let request = 0; request < 20; request++) expect(await get()).toBe(200);
    expect(gatewayLog.lines.filter((line) => line.event === 'upstream-moved')).toEqual([]);
  }, 30_000);

  it("moves a gateway's calls once the service trusts its renewed certificate's CA, without a renewal, and no failed request", async () => {
    const { pki } = testPki;
    const dir = mkdtempSync(join(pki.dir, 'run-'));
    const distributor = await startTlsDistributor({ ...pki.files('distributor'), caFile: pki.bothCasFile });
    // Goods trusts the old CA only, through a CA file that step 1 changes later.
    const goodsCa = join(dir, 'goods-ca.crt');
    copyFileSync(pki.caFile, goodsCa);
    const goodsLog = capturingLogger();
    await startGoods(distributor, { ...pki.files('goods'), caFile: goodsCa }, dir, goodsLog.log);
    const gatewayLog = capturingLogger();
    const gateway = createGateway({
      distributor,
      tls: { caFile: pki.bothCasFile, ...installCertificate(pki.files('gateway'), dir, 'gateway') },
      tlsRefreshIntervalMs: REFRESH_MS,
      upstreamMoveRetry: { initialMs: 200, maxMs: 400 },
      log: gatewayLog.log,
    });
    cleanups.push(() => gateway.stop());
    const gatewayPort = await gateway.listen('127.0.0.1', 0);
    const statuses: number[] = [];
    const get = async (): Promise<number> => {
      const { status: answered } = await fetch(`http://127.0.0.1:${gatewayPort}/goods`);
      statuses.push(answered);
      return answered;
    };
    await vi.waitFor(async () => expect(await get()).toBe(200), { ...WAIT, timeout: 10_000 });
    const failedMoves = () => gatewayLog.lines.filter((line) => line.event === 'upstream-move-failed');
    const moved = () => gatewayLog.lines.filter((line) => line.event === 'upstream-moved');

    // Step 2 before step 1 reached goods: the gateway renewed by the new CA.
    installCertificate(pki.foreignFiles('gateway'), dir, 'gateway');
    await vi.waitFor(() => expect(failedMoves().length).toBeGreaterThan(1), { ...WAIT, timeout: 15_000 });
    // Told once; the tries after it at debug.
    expect(gatewayLog.warnings().map((line) => line.event)).toEqual(['upstream-move-failed']);

    // Step 1 reaches goods, under requests: the next try moves the calls.
    statuses.length = 0;
    let requesting = true;
    const requests = (async () => {
      while (requesting) await get();
    })();
    replaceFile(pki.bothCasFile, goodsCa);
    await vi.waitFor(() => expect(moved()).toHaveLength(1), WAIT);
    const tries = failedMoves().length;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    requesting = false;
    await requests;
    // The tries stopped once it held, and no request failed.
    expect(failedMoves()).toHaveLength(tries);
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.filter((answered) => answered !== 200).slice(0, 3)).toEqual([]);

    // The old CA removed at goods: the gateway's connection, made with its renewed certificate, is
    // not among those goods closes (its registration's is: the distributor was not renewed here).
    replaceFile(pki.otherCaFile, goodsCa);
    const cuts = () => goodsLog.warnings().filter((line) => line.event === 'untrusted-after-ca-change');
    await vi.waitFor(() => expect(cuts()).toEqual([expect.objectContaining({ distributor })]), WAIT);
    await new Promise((resolve) => setTimeout(resolve, 10 * REFRESH_MS));
    expect(cuts()).toHaveLength(1);
    expect(gatewayLog.warnings().map((line) => line.event)).toEqual(['upstream-move-failed']);
  }, 30_000);
});
