import { status } from '@grpc/grpc-js';
import { describe, expect, it, vi } from 'vitest';
import type { ServerSurfaceCall } from '../../src/distributor/registry-auth.js';
import { NodeState } from '../../src/gen/distributor.js';
import { checkHealth, reflect } from '../helpers/grpc-clients.js';
import { gatewayNode, goodsNode } from '../helpers/nodes.js';
import { capturingLogger } from './support/capturing-logger.js';
import { describeNode, stateMessage, useDistributorHarness } from './support/distributor-harness.js';

const { startDistributor, openRegistration, watch, list } = useDistributorHarness();

const TOKEN = 'test-registry-token-0123456789';
const WITH_TOKEN = { authorization: `Bearer ${TOKEN}` };

/** Stands in for the TLS layer in these unit-level tests: the identities a call claims in a header. */
const fakePeerIdentities = (call: ServerSurfaceCall): string[] =>
  call.metadata.get('x-test-identity').map(String);
const asIdentity = (identity: string) => ({ 'x-test-identity': identity });

/** The outcome of each of Register, Watch and List called with `headers`. */
async function outcomes(address: string, headers: Record<string, string>) {
  const registration = openRegistration(address, [describeNode(goodsNode())], headers);
  const watcher = watch(address, headers);
  const listed = await list(address, headers).then(
    () => ({ code: status.OK, details: '' }),
    (error: { code: number; details: string }) => ({ code: error.code, details: error.details }),
  );
  const [registered, watched] = await Promise.all([registration.outcome, watcher.outcome]);
  return { Register: registered, Watch: watched, List: listed };
}

describe('registry token', () => {
  it.each([
    [
      'no token',
      {},
      'missing credentials: send the registry token as metadata "authorization: Bearer <token>"',
    ],
    [
      'a wrong token',
      { authorization: 'Bearer not-the-token' },
      'invalid credentials: the registry token is wrong',
    ],
  ])(
    'refuses Register, Watch and List with %s: UNAUTHENTICATED, and lists nothing',
    async (_label, headers, message) => {
      const { address } = await startDistributor({ registryToken: TOKEN });
      const observer = watch(address, WITH_TOKEN);
      await vi.waitFor(() => expect(observer).toHaveLength(1));

      const results = await outcomes(address, headers);
      for (const result of Object.values(results)) {
        expect(result).toMatchObject({ code: status.UNAUTHENTICATED, details: message });
      }
      expect((await list(address, WITH_TOKEN)).snapshot!.nodes).toEqual([]);
      expect(observer.map((snapshot) => snapshot.revision)).toEqual([0]);
    },
  );

  it('serves Register, Watch and List with the right token', async () => {
    const { address } = await startDistributor({ registryToken: TOKEN });
    const results = await outcomes(address, WITH_TOKEN);
    expect(Object.values(results).map((result) => result.code)).toEqual([status.OK, status.OK, status.OK]);
    expect((await list(address, WITH_TOKEN)).snapshot!.nodes.map((node) => node.id)).toEqual([
      'goods@127.0.0.1:9010',
    ]);
  });

  it('keeps health and reflection open without a token', async () => {
    const { address } = await startDistributor({ registryToken: TOKEN });
    expect(await checkHealth(address)).toBe('SERVING');
    expect(await checkHealth(address, 'shop.v1.DistributorService')).toBe('SERVING');
    const { services } = await reflect(address);
    expect(services).toContain('shop.v1.DistributorService');
  });

  it('logs a peer refused for its credentials once at warn, with its address, and never the token', async () => {
    const { log, lines, warnings } = capturingLogger();
    const { address } = await startDistributor({ registryToken: TOKEN, log });
    const attempts: Array<Record<string, string>> = [
      {},
      { authorization: 'Bearer guessed-1' },
      { authorization: 'Bearer guessed-2' },
    ];
    for (const headers of attempts) {
      await outcomes(address, headers);
    }
    expect(warnings()).toEqual([
      expect.objectContaining({ event: 'refused', peer: '127.0.0.1', code: 'UNAUTHENTICATED' }),
    ]);
    expect(lines.filter((line) => line.event === 'refused' && line.level === 20)).toHaveLength(8);
    expect(JSON.stringify(lines)).not.toMatch(/guessed|test-registry-token/);
  });
});

describe('certificate identity (mTLS)', () => {
  const mtls = { peerIdentities: fakePeerIdentities, requireCertificateIdentity: true };

  it('refuses a node whose certificate is for another name with PERMISSION_DENIED', async () => {
    const { log, warnings } = capturingLogger();
    const { address } = await startDistributor({ ...mtls, log });
    const rogue = openRegistration(address, [describeNode(goodsNode())], asIdentity('spiffe://shop/members'));
    expect(await rogue.ended).toMatchObject({
      code: status.PERMISSION_DENIED,
      details:
        'certificate identity spiffe://shop/members does not match the name goods: registering as goods needs spiffe://shop/goods',
    });
    expect((await list(address, asIdentity('spiffe://shop/gateway'))).snapshot!.nodes).toEqual([]);
    expect(warnings()).toEqual([expect.objectContaining({ code: 'PERMISSION_DENIED', peer: '127.0.0.1' })]);
  });

  it("refuses a node under the operator's name, whose certificate people's tools hold, with PERMISSION_DENIED", async () => {
    const { address } = await startDistributor(mtls);
    const operator = asIdentity('spiffe://shop/operator');
    const rogue = openRegistration(address, [describeNode(goodsNode({ name: 'operator' }))], operator);
    expect(await rogue.ended).toMatchObject({
      code: status.PERMISSION_DENIED,
      details: "the name operator is for people's tools (grpcurl, scripts): no node registers under it",
    });
    // Its certificate still lists and watches, as grpcurl does.
    expect((await list(address, operator)).snapshot!.nodes).toEqual([]);
  });

  it('lists a node under the name its certificate is for', async () => {
    const { address } = await startDistributor(mtls);
    const goods = openRegistration(address, [describeNode(goodsNode())], asIdentity('spiffe://shop/goods'));
    await vi.waitFor(() => expect(goods.responses).toHaveLength(1));
    expect(goods.responses[0]!.nodeId).toBe('goods@127.0.0.1:9010');
  });

  it('needs a certificate identity for Register, Watch and List, but any one for Watch and List', async () => {
    const { address } = await startDistributor(mtls);
    const without = await outcomes(address, {});
    for (const result of Object.values(without)) {
      expect(result.code).toBe(status.UNAUTHENTICATED);
      expect(result.details).toContain('a client certificate with a URI SAN such as spiffe://shop/<name>');
    }
    const gateway = await outcomes(address, asIdentity('spiffe://shop/gateway'));
    expect(gateway.Watch.code).toBe(status.OK);
    expect(gateway.List.code).toBe(status.OK);
    expect(gateway.Register.code).toBe(status.PERMISSION_DENIED);
  });
});

describe('takeover of a live identity', () => {
  it('refuses another principal with ALREADY_EXISTS and leaves the holder listed and undisturbed', async () => {
    const { address } = await startDistributor({ registryToken: TOKEN, peerIdentities: fakePeerIdentities });
    const observer = watch(address, WITH_TOKEN);
    const holder = openRegistration(address, [describeNode(goodsNode())], {
      ...WITH_TOKEN,
      ...asIdentity('spiffe://shop/goods'),
    });
    await vi.waitFor(() => expect(observer).toHaveLength(2));

    // A token holder without goods' certificate, copying goods' identity with no routes.
    const rogue = openRegistration(
      address,
      [describeNode(goodsNode({ routes: [], descriptorSet: Buffer.alloc(0) }))],
      WITH_TOKEN,
    );
    expect(await rogue.ended).toMatchObject({
      code: status.ALREADY_EXISTS,
      details:
        'node goods@127.0.0.1:9010 is held by a live registration of another principal; it can register again once that one ends',
    });
    expect((await list(address, WITH_TOKEN)).snapshot!.nodes[0]!.descriptorSet.length).toBeGreaterThan(0);
    expect(observer.map((snapshot) => snapshot.revision)).toEqual([0, 1]);
    holder.call.write(stateMessage(NodeState.NODE_STATE_DRAINING));
    await vi.waitFor(() => expect(observer).toHaveLength(3));
  });

  it('lets the same principal take over at once (newest wins), as a node restarted after a crash does', async () => {
    const { address } = await startDistributor({ registryToken: TOKEN, peerIdentities: fakePeerIdentities });
    const headers = { ...WITH_TOKEN, ...asIdentity('spiffe://shop/goods') };
    const crashed = openRegistration(address, [describeNode(goodsNode())], headers);
    await vi.waitFor(() => expect(crashed.responses).toHaveLength(1));
    const restarted = openRegistration(address, [describeNode(goodsNode())], headers);
    expect(await crashed.ended).toMatchObject({ code: status.ABORTED });
    await vi.waitFor(() => expect(restarted.responses).toHaveLength(1));
    expect(restarted.responses[0]!.snapshot!.nodes.map((node) => node.id)).toEqual(['goods@127.0.0.1:9010']);
  });

  it('lets streams that share the token take over from each other', async () => {
    const { address } = await startDistributor({ registryToken: TOKEN });
    const first = openRegistration(address, [describeNode(gatewayNode())], WITH_TOKEN);
    await vi.waitFor(() => expect(first.responses).toHaveLength(1));
    const second = openRegistration(address, [describeNode(gatewayNode())], WITH_TOKEN);
    expect((await first.ended).code).toBe(status.ABORTED);
    await vi.waitFor(() => expect(second.responses).toHaveLength(1));
  });
});
