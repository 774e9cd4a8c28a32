import { readFileSync } from 'node:fs';
import { type StatusObject, status } from '@grpc/grpc-js';
import { describe, expect, it, vi } from 'vitest';
import type { BackoffOptions } from '../../src/common/backoff.js';
import { silentLogger } from '../../src/common/logger.js';
import { UNTRUSTED_AFTER_CA_CHANGE } from '../../src/common/registry-words.js';
import { channelCredentials, secureNamingChannelOptions, type TlsFilePaths } from '../../src/common/tls.js';
import { createGateway } from '../../src/gateway/gateway-server.js';
import { DistributorServiceClient, NodeState, type Snapshot } from '../../src/gen/distributor.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { copyIn, installCertificate, replaceFile, runFolder, useTestPki } from '../helpers/certs.js';
import { heldHandshake } from '../helpers/held-handshake.js';
import { gatewayNode, goodsNode } from '../helpers/nodes.js';
import { startTlsGoods } from '../helpers/tls-goods.js';
import { capturingLogger, type LogLine, reloaded } from './support/capturing-logger.js';
import { useDistributorHarness } from './support/distributor-harness.js';
import { listed, removalsFrom } from './support/listing.js';

// A CA removed from the distributor's CA file (because it leaked) cuts the Register and Watch
// streams whose connections were made with certificates of that CA, and only those: TLS checks a
// certificate's CA at the handshake alone, so without this they stayed registered until a restart.

const { cleanups, startDistributor } = useDistributorHarness();

const testPki = useTestPki('ca-removal-', { names: ['distributor', 'goods', 'gateway', 'members'] });

/** How often every side here reads its TLS files again. */
const REFRESH_MS = 50;
const WAIT = { timeout: 5_000, interval: 20 };

/**
 * A node registered over mTLS with `files`: every status its stream ended with, and how often it
 * registered. Its registration moves to a new connection when its certificate is renewed, as a
 * service's and a gateway's do (start-service.ts, gateway-server.ts).
 */
function register(
  address: string,
  files: Required<TlsFilePaths>,
  node = goodsNode(),
  {
    log = silentLogger(),
    watchNodes = false,
    onRenewal = (renewing: RegistrationClient) => renewing.renewConnection(),
    moveRetry = undefined as BackoffOptions | undefined,
  } = {},
) {
  let client: RegistrationClient | undefined;
  client = new RegistrationClient({
    distributor: address,
    node: { ...node, descriptorSet: Buffer.alloc(0), state: NodeState.NODE_STATE_SERVING },
    credentials: channelCredentials(files, {
      expectedName: 'distributor',
      refreshIntervalMs: REFRESH_MS,
      onCertificateTaken: () => client && onRenewal(client),
    }),
    channelOptions: secureNamingChannelOptions(files, 'distributor'),
    backoff: { initialMs: 50, maxMs: 200 },
    ...(moveRetry ? { moveRetry } : {}),
    log,
    watchNodes,
  });
  const ended: StatusObject[] = [];
  const refusals: StatusObject[] = [];
  let registrations = 0;
  /** The names of each node list it got (with `watchNodes`, as a gateway). */
  const lists: string[][] = [];
  client.on('snapshot', (snapshot) => lists.push(snapshot.nodes.map((listed) => listed.name).sort()));
  client.on('disconnected', (status) => ended.push(status));
  client.on('refused', (status) => refusals.push(status));
  client.on('registered', () => registrations++);
  client.start();
  cleanups.push(() => client?.stop(100));
  return { client, ended, refusals, lists, registrations: () => registrations };
}

/**
 * A gateway's registration over mTLS, following the node list on its stream, with its certificate
 * of the first CA in `dir` as a renewer keeps it (installCertificate replaces it in place) and
 * trusting both CAs: the registration and what it logs.
 */
function renewableGateway(address: string, dir: string) {
  const { pki } = testPki;
  const files = { caFile: pki.bothCasFile, ...installCertificate(pki.files('gateway'), dir, 'gateway') };
  const log = capturingLogger();
  const registration = register(address, files, gatewayNode(), { log: log.log, watchNodes: true });
  return { registration, log };
}

/** A Watch over mTLS with `files`: the snapshots it got and how it ended. */
function watchWith(address: string, files: Required<TlsFilePaths>) {
  const client = new DistributorServiceClient(
    address,
    channelCredentials(files, { expectedName: 'distributor' }),
    secureNamingChannelOptions(files, 'distributor'),
  );
  cleanups.push(() => client.close());
  const call = client.watch({ subscription: undefined });
  cleanups.push(() => call.cancel());
  const snapshots: Snapshot[] = [];
  call.on('data', (response: { snapshot: Snapshot }) => snapshots.push(response.snapshot));
  call.on('error', () => {});
  const ended = new Promise<StatusObject>((resolve) => call.once('status', resolve));
  return {
    snapshots,
    ended,
    names: () =>
      snapshots
        .at(-1)
        ?.nodes.map((node) => node.name)
        .sort(),
  };
}

/**
 * A distributor over mTLS whose certificate and CA file (the CA alone at first) are files of `dir`
 * that a test replaces, as a renewer keeps them, read again every REFRESH_MS: what it logs too.
 */
async function renewableDistributor(dir: string) {
  const caFile = copyIn(dir, testPki.pki.caFile, 'ca.crt');
  const { log, lines, warnings } = capturingLogger();
  const own = installCertificate(testPki.pki.files('distributor'), dir, 'distributor');
  const { distributor, address } = await startDistributor({
    tls: { ...own, caFile },
    tlsRefreshIntervalMs: REFRESH_MS,
    requireCertificateIdentity: true,
    log,
  });
  return { distributor, address, caFile, own, lines, warnings };
}

const cut = (lines: LogLine[]): LogLine[] =>
  lines.filter((line) => line.event === 'untrusted-after-ca-change');

describe("a CA removed from the distributor's CA file", () => {
  it('ends the Register and Watch streams of its certificates with UNAUTHENTICATED, which leave the list; those of the CA kept go on', async () => {
    const { pki } = testPki;
    const dir = runFolder(testPki.pki);
    // The distributor trusts both CAs, as in the middle of a rotation, or as a shop with a second CA.
    const caFile = copyIn(dir, pki.bothCasFile, 'ca.crt');
    const { log, lines, warnings } = capturingLogger();
    const { distributor, address } = await startDistributor({
      tls: { ...pki.files('distributor'), caFile },
      tlsRefreshIntervalMs: REFRESH_MS,
      requireCertificateIdentity: true,
      log,
    });
    const ofLeakedCa = register(address, pki.foreignFiles('goods'), goodsNode());
    const ofKeptCa = register(address, pki.files('gateway'), gatewayNode());
    const outsider = watchWith(address, pki.foreignFiles('members'));
    const insider = watchWith(address, pki.files('members'));
    await vi.waitFor(() => expect(listed(distributor)).toEqual(['gateway', 'goods']), WAIT);
    await vi.waitFor(() => expect(insider.names()).toEqual(['gateway', 'goods']), WAIT);
    await vi.waitFor(() => expect(outsider.snapshots.length).toBeGreaterThan(0), WAIT);

    // The other CA leaked: the operator removes it.
    replaceFile(pki.caFile, caFile);

    await vi.waitFor(() => expect(listed(distributor)).toEqual(['gateway']), WAIT);
    await vi.waitFor(
      () =>
        expect(ofLeakedCa.ended[0]).toMatchObject({
          code: status.UNAUTHENTICATED,
          details: UNTRUSTED_AFTER_CA_CHANGE,
        }),
      WAIT,
    );
    expect(await outsider.ended).toMatchObject({
      code: status.UNAUTHENTICATED,
      details: UNTRUSTED_AFTER_CA_CHANGE,
    });
    await vi.waitFor(() => expect(insider.names()).toEqual(['gateway']), WAIT);
    expect(ofKeptCa.ended).toEqual([]);

    // One warning per stream cut, naming the node and its address.
    expect(cut(warnings())).toEqual([
      expect.objectContaining({
        grpcMethod: 'shop.v1.DistributorService/Register',
        node: 'goods@127.0.0.1:9010',
        peer: '127.0.0.1',
        code: 'UNAUTHENTICATED',
      }),
      expect.objectContaining({ grpcMethod: 'shop.v1.DistributorService/Watch', peer: '127.0.0.1' }),
    ]);
    expect(cut(lines)).toHaveLength(2);
    expect(JSON.stringify(lines)).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);

    // Its node tries again, on a new connection whose handshake the new CA file refuses: it stays
    // out (its connection was closed, or it would have registered again on it at once).
    await vi.waitFor(() => expect(ofLeakedCa.ended.length).toBeGreaterThanOrEqual(3), WAIT);
    expect(ofLeakedCa.ended.slice(1).map((ended) => ended.code)).not.toContain(status.OK);
    expect(ofLeakedCa.registrations()).toBe(1);
    expect(listed(distributor)).toEqual(['gateway']);
    expect(ofKeptCa.registrations()).toBe(1);
  });

  it("cuts nobody through a CA rotation's steps: a registration made before its node's renewal moves to a new connection with the renewed certificate, without leaving the list", async () => {
    const { pki } = testPki;
    const dir = runFolder(testPki.pki);
    const { distributor, address, caFile, own, lines, warnings } = await renewableDistributor(dir);
    const removed = removalsFrom(distributor, cleanups);
    // Its files replaced in place at step 2.
    const { registration: early, log: gatewayLog } = renewableGateway(address, dir);
    await vi.waitFor(() => expect(listed(distributor)).toEqual(['gateway']), WAIT);
    const joins = (): unknown[] =>
      lines.filter((line) => line.event === 'join' || line.event === 'rejoin').map((line) => line.event);

    // Step 1: the new CA beside the old one. A watcher of the new CA from then on.
    replaceFile(pki.bothCasFile, caFile);
    await reloaded(lines, caFile, 1);
    const watcher = watchWith(address, { ...pki.foreignFiles('members'), caFile: pki.bothCasFile });
    await vi.waitFor(() => expect(watcher.names()).toEqual(['gateway']), WAIT);
    // Step 2: certificates of the new CA, the distributor's own and the gateway's; a node started
    // now registers with one.
    installCertificate(pki.foreignFiles('distributor'), dir, 'distributor');
    installCertificate(pki.foreignFiles('gateway'), dir, 'gateway');
    await reloaded(lines, own.certFile, 1);
    // The gateway took its renewed certificate: registered again from a new connection, replacing
    // its entry in place, the connection before closed.
    await vi.waitFor(
      () => expect(gatewayLog.lines.filter((line) => line.event === 'registration-moved')).toHaveLength(1),
      WAIT,
    );
    expect(joins()).toEqual(['join', 'rejoin']);
    const late = register(address, pki.foreignFiles('goods'), goodsNode());
    await vi.waitFor(() => expect(listed(distributor)).toEqual(['gateway', 'goods']), WAIT);
    expect(cut(lines)).toEqual([]);

    // Step 3: the old CA removed. Nothing was made with a certificate of it any more: nobody is cut.
    replaceFile(pki.otherCaFile, caFile);
    await reloaded(lines, caFile, 2);
    await new Promise((resolve) => setTimeout(resolve, 10 * REFRESH_MS));
    expect(cut(lines)).toEqual([]);
    expect(listed(distributor)).toEqual(['gateway', 'goods']);
    expect(early.ended).toEqual([]);
    expect(early.refusals).toEqual([]);
    expect(early.registrations()).toBe(1);
    expect(late.ended).toEqual([]);
    expect(late.registrations()).toBe(1);
    // The gateway never left: the distributor never removed it, and no node list the watcher got
    // from step 1 on is without it.
    expect(removed).toEqual([]);
    await vi.waitFor(() => expect(watcher.names()).toEqual(['gateway', 'goods']), WAIT);
    expect(
      watcher.snapshots.filter((snapshot) => !snapshot.nodes.some((node) => node.name === 'gateway')),
    ).toEqual([]);
    // Its own node list went on over the new stream (goods joined after the move).
    await vi.waitFor(() => expect(early.lists.at(-1)).toEqual(['gateway', 'goods']), WAIT);
    expect(early.lists.filter((names) => !names.includes('gateway'))).toEqual([]);
    // The replaced registration's end was expected: the gateway said nothing of it.
    expect(gatewayLog.warnings()).toEqual([]);
    expect(warnings()).toEqual([]);
  });

  it('keeps a registration on its connection when the distributor refuses the renewed certificate (its CA not added yet)', async () => {
    const { pki } = testPki;
    const dir = runFolder(testPki.pki);
    const { log, lines } = capturingLogger();
    const { distributor, address } = await startDistributor({
      tls: { ...pki.files('distributor'), caFile: pki.caFile },
      tlsRefreshIntervalMs: REFRESH_MS,
      requireCertificateIdentity: true,
      log,
    });
    const removed = removalsFrom(distributor, cleanups);
    const { registration: gateway, log: gatewayLog } = renewableGateway(address, dir);
    await vi.waitFor(() => expect(gateway.lists.at(-1)).toEqual(['gateway']), WAIT);

    // Step 2 before step 1: the gateway renewed by the new CA, which the distributor does not trust.
    installCertificate(pki.foreignFiles('gateway'), dir, 'gateway');
    await vi.waitFor(
      () => expect(gatewayLog.warnings().map((line) => line.event)).toEqual(['registration-move-failed']),
      WAIT,
    );
    // The registration made before stays, and its node list goes on (asked for whole again).
    const goods = register(address, pki.files('goods'), goodsNode());
    await vi.waitFor(() => expect(gateway.lists.at(-1)).toEqual(['gateway', 'goods']), WAIT);
    expect(gateway.ended).toEqual([]);
    expect(gateway.registrations()).toBe(1);
    expect(goods.ended).toEqual([]);
    expect(removed).toEqual([]);
    expect(lines.filter((line) => line.event === 'rejoin')).toEqual([]);
  });

  it("moves a registration whose move the distributor refused once the distributor trusts the renewed certificate's CA, before the rotation's last step", async () => {
    const { pki } = testPki;
    const dir = runFolder(testPki.pki);
    const { distributor, address, caFile, lines, warnings } = await renewableDistributor(dir);
    const removed = removalsFrom(distributor, cleanups);
    const goodsFiles = { caFile: pki.bothCasFile, ...installCertificate(pki.files('goods'), dir, 'goods') };
    const goodsLog = capturingLogger();
    const goods = register(address, goodsFiles, goodsNode(), {
      log: goodsLog.log,
      moveRetry: { initialMs: 200, maxMs: 400 },
    });
    await vi.waitFor(() => expect(listed(distributor)).toEqual(['goods']), WAIT);

    // Step 2 before step 1: renewed by the new CA, which the distributor does not trust yet.
    installCertificate(pki.foreignFiles('goods'), dir, 'goods');
    await vi.waitFor(
      () => expect(goodsLog.warnings().map((line) => line.event)).toEqual(['registration-move-failed']),
      WAIT,
    );
    // Tried again, told at debug only, while the distributor still refuses.
    await vi.waitFor(
      () =>
        expect(
          goodsLog.lines.filter((line) => line.event === 'registration-move-failed').length,
        ).toBeGreaterThan(1),
      WAIT,
    );
    expect(goodsLog.warnings()).toHaveLength(1);
    expect(lines.filter((line) => line.event === 'rejoin')).toEqual([]);

    // Step 1 reaches the distributor: the next try moves the registration, with no renewal.
    replaceFile(pki.bothCasFile, caFile);
    await reloaded(lines, caFile, 1);
    await vi.waitFor(
      () => expect(goodsLog.lines.filter((line) => line.event === 'registration-moved')).toHaveLength(1),
      WAIT,
    );
    expect(lines.filter((line) => line.event === 'rejoin')).toHaveLength(1);
    // Tries stop once it held.
    const tries = goodsLog.lines.filter((line) => line.event === 'registration-move-failed').length;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(goodsLog.lines.filter((line) => line.event === 'registration-move-failed')).toHaveLength(tries);

    // Step 3: the old CA removed; nothing is left on a certificate of it, so nobody is cut.
    replaceFile(pki.otherCaFile, caFile);
    await reloaded(lines, caFile, 2);
    await new Promise((resolve) => setTimeout(resolve, 10 * REFRESH_MS));
    expect(cut(lines)).toEqual([]);
    expect(listed(distributor)).toEqual(['goods']);
    expect(goods.ended).toEqual([]);
    expect(goods.registrations()).toBe(1);
    expect(removed).toEqual([]);
    // The distributor said only why it refused the tries before step 1.
    expect(new Set(warnings().map((line) => line.event))).toEqual(new Set(['untrusted-client-certificate']));
  });

  it('tells a drain acknowledged on the connection before when the move under way at the time fails', async () => {
    const { pki } = testPki;
    const dir = runFolder(testPki.pki);
    const { distributor, address } = await startDistributor({
      tls: { ...pki.files('distributor'), caFile: pki.caFile },
      tlsRefreshIntervalMs: REFRESH_MS,
      requireCertificateIdentity: true,
    });
    const goodsFiles = { caFile: pki.bothCasFile, ...installCertificate(pki.files('goods'), dir, 'goods') };
    const goodsLog = capturingLogger();
    const goods = register(address, goodsFiles, goodsNode(), {
      log: goodsLog.log,
      // The service starts draining (a SIGTERM) while its registration moves.
      onRenewal: (renewing) => {
        renewing.renewConnection();
        renewing.setState(NodeState.NODE_STATE_DRAINING);
      },
    });
    await vi.waitFor(() => expect(goods.client.acknowledgedState).toBe(NodeState.NODE_STATE_SERVING), WAIT);

    // Renewed by a CA the distributor does not trust yet: the move fails, the registration before stays.
    installCertificate(pki.foreignFiles('goods'), dir, 'goods');
    await vi.waitFor(
      () => expect(goodsLog.warnings().map((line) => line.event)).toEqual(['registration-move-failed']),
      WAIT,
    );
    expect(distributor.registry.snapshot().nodes.map((node) => node.state)).toEqual([
      NodeState.NODE_STATE_DRAINING,
    ]);
    // What the distributor acknowledged on that registration during the move is told.
    await vi.waitFor(() => expect(goods.client.acknowledgedState).toBe(NodeState.NODE_STATE_DRAINING), WAIT);
    expect(goods.ended).toEqual([]);
  });

  it('tries a renewal taken while a move was under way once that move failed', async () => {
    const { pki } = testPki;
    const dir = runFolder(testPki.pki);
    const { address } = await startDistributor({
      tls: { ...pki.files('distributor'), caFile: pki.caFile },
      tlsRefreshIntervalMs: REFRESH_MS,
      requireCertificateIdentity: true,
    });
    const goodsFiles = { caFile: pki.bothCasFile, ...installCertificate(pki.files('goods'), dir, 'goods') };
    const goodsLog = capturingLogger();
    let renewals = 0;
    const goods = register(address, goodsFiles, goodsNode(), {
      log: goodsLog.log,
      // Two renewals, the second while the first one's move is under way.
      onRenewal: (renewing) => {
        renewals++;
        renewing.renewConnection();
        renewing.renewConnection();
      },
    });
    await vi.waitFor(() => expect(goods.registrations()).toBe(1), WAIT);

    installCertificate(pki.foreignFiles('goods'), dir, 'goods');
    // Each renewal got its move (both refused here: the distributor does not trust their CA yet).
    await vi.waitFor(
      () =>
        expect(goodsLog.warnings().map((line) => line.event)).toEqual([
          'registration-move-failed',
          'registration-move-failed',
        ]),
      WAIT,
    );
    expect(renewals).toBe(1);
    // None is left pending, to go out at some later answer: a state acknowledged starts no move.
    goods.client.setState(NodeState.NODE_STATE_DRAINING);
    await vi.waitFor(() => expect(goods.client.acknowledgedState).toBe(NodeState.NODE_STATE_DRAINING), WAIT);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(goodsLog.warnings()).toHaveLength(2);
    expect(goods.ended).toEqual([]);
    expect(goods.registrations()).toBe(1);
  });

  it("moves a service's and a gateway's registrations at their renewal: step 3 cuts neither", async () => {
    const { pki } = testPki;
    const dir = runFolder(testPki.pki);
    const { distributor, address, caFile, lines } = await renewableDistributor(dir);
    const removed = removalsFrom(distributor, cleanups);
    // Their files read again every 5 s, as components do.
    const goodsFiles = { caFile: pki.bothCasFile, ...installCertificate(pki.files('goods'), dir, 'goods') };
    const goodsLog = capturingLogger();
    await startTlsGoods({ distributor: address, tls: goodsFiles, dir, log: goodsLog.log, cleanups });
    const gatewayFiles = {
      caFile: pki.bothCasFile,
      ...installCertificate(pki.files('gateway'), dir, 'gateway'),
    };
    const gatewayLog = capturingLogger();
    const gateway = createGateway({ distributor: address, tls: gatewayFiles, log: gatewayLog.log });
    cleanups.push(() => gateway.stop());
    await gateway.listen('127.0.0.1', 0);
    await vi.waitFor(() => expect(listed(distributor)).toEqual(['gateway', 'goods']), WAIT);

    replaceFile(pki.bothCasFile, caFile);
    await reloaded(lines, caFile, 1);
    installCertificate(pki.foreignFiles('distributor'), dir, 'distributor');
    installCertificate(pki.foreignFiles('goods'), dir, 'goods');
    installCertificate(pki.foreignFiles('gateway'), dir, 'gateway');
    const moved = (logged: LogLine[]) => logged.filter((line) => line.event === 'registration-moved');
    await vi.waitFor(() => expect(moved(goodsLog.lines)).toHaveLength(1), { ...WAIT, timeout: 15_000 });
    await vi.waitFor(() => expect(moved(gatewayLog.lines)).toHaveLength(1), { ...WAIT, timeout: 15_000 });

    replaceFile(pki.otherCaFile, caFile);
    await reloaded(lines, caFile, 2);
    await new Promise((resolve) => setTimeout(resolve, 10 * REFRESH_MS));
    expect(cut(lines)).toEqual([]);
    expect(removed).toEqual([]);
    expect(listed(distributor)).toEqual(['gateway', 'goods']);
    expect(goodsLog.warnings()).toEqual([]);
    expect(gatewayLog.warnings()).toEqual([]);
  }, 30_000);

  it('closes a connection whose handshake, begun before the change, ends after it', async () => {
    const { pki } = testPki;
    const caFile = copyIn(runFolder(testPki.pki), pki.bothCasFile, 'ca.crt');
    const { log, lines, warnings } = capturingLogger();
    const { address } = await startDistributor({
      tls: { ...pki.files('distributor'), caFile },
      tlsRefreshIntervalMs: REFRESH_MS,
      requireCertificateIdentity: true,
      log,
    });
    // The client's certificate held back: the distributor's TLS socket was made with the CAs of
    // before, and checks the certificate against them once it comes.
    const files = pki.foreignFiles('goods');
    const late = heldHandshake(Number(address.split(':').at(-1)), {
      ca: readFileSync(pki.caFile),
      cert: readFileSync(files.certFile),
      key: readFileSync(files.keyFile),
      ALPNProtocols: ['h2'],
      checkServerIdentity: () => undefined,
    });
    cleanups.push(() => late.socket.destroy());
    await late.clientDone;
    replaceFile(pki.caFile, caFile);
    await reloaded(lines, caFile, 1);
    late.release();
    await vi.waitFor(
      () =>
        expect(cut(warnings())).toEqual([
          expect.objectContaining({ peer: '127.0.0.1', code: 'UNAUTHENTICATED' }),
        ]),
      WAIT,
    );
    // Closed by the distributor: no Register can go over it.
    await late.answer;
  });
});
