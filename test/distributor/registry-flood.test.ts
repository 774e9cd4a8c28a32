import { status } from '@grpc/grpc-js';
import { describe, expect, it, vi } from 'vitest';
import { NodeRegistry } from '../../src/distributor/node-registry.js';
import { DEFAULT_BUDGET, REGISTRATION_LIMITS } from '../../src/distributor/registration-limits.js';
import { SNAPSHOT_LIMIT_BYTES } from '../../src/distributor/snapshot-size.js';
import { NodeState, WatchResponse } from '../../src/gen/distributor.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { gatewayNode, goodsNode } from '../helpers/nodes.js';
import { capturingLogger } from './support/capturing-logger.js';
import {
  describeNode,
  describeNodeWith,
  NO_RESUME,
  stateMessage,
  useDistributorHarness,
} from './support/distributor-harness.js';
import { junkNode, junkNodeOfEntrySize, piecesOf } from './support/junk-nodes.js';

const { cleanups, startDistributor, openRegistration, watch, measuringWatch, subscribe, list } =
  useDistributorHarness();

const TOKEN = 'test-registry-token-0123456789';
const WITH_TOKEN = { authorization: `Bearer ${TOKEN}` };

describe('registry limits over gRPC', () => {
  it('refuses nodes over the per-name and total counts with RESOURCE_EXHAUSTED, telling no one', async () => {
    const { address } = await startDistributor({ limits: { nodesPerName: 2, nodes: 3 } });
    const observer = watch(address);
    const listed = [goodsNode({ port: 1 }), goodsNode({ port: 2 }), gatewayNode()].map((node) =>
      openRegistration(address, [describeNode(node)]),
    );
    await vi.waitFor(() => expect(observer.at(-1)!.nodes).toHaveLength(3));

    const third = openRegistration(address, [describeNode(goodsNode({ port: 3 }))]);
    expect(await third.ended).toMatchObject({
      code: status.RESOURCE_EXHAUSTED,
      details: 'the registry is full: at most 3 nodes',
    });
    listed[2]!.call.end();
    await vi.waitFor(() => expect(observer.at(-1)!.nodes).toHaveLength(2));
    const revision = observer.at(-1)!.revision;
    expect(await openRegistration(address, [describeNode(goodsNode({ port: 3 }))]).ended).toMatchObject({
      code: status.RESOURCE_EXHAUSTED,
      details: 'too many nodes named goods: at most 2',
    });
    expect((await list(address)).snapshot!.revision).toBe(revision);
    expect(observer.at(-1)!.revision).toBe(revision);
    expect(listed[0]!.responses.at(-1)!.snapshot!.revision).toBe(revision);
  });

  it('takes a peer’s burst of registrations, then refuses the next with RESOURCE_EXHAUSTED', async () => {
    const { address } = await startDistributor({
      limits: { registrationsPerSecond: 1, registrationBurst: 3 },
    });
    const accepted = [1, 2, 3].map((port) =>
      openRegistration(address, [describeNode(gatewayNode({ port }))]),
    );
    await vi.waitFor(() => expect(accepted.every((node) => node.responses.length > 0)).toBe(true));
    expect(await openRegistration(address, [describeNode(gatewayNode({ port: 4 }))]).ended).toMatchObject({
      code: status.RESOURCE_EXHAUSTED,
      details: 'too many registrations from 127.0.0.1: at most 1 a second (bursts of 3)',
    });
    expect((await list(address)).snapshot!.nodes).toHaveLength(3);
    // A registered node may still change its state: that is counted per stream, not per address.
    accepted[0]!.call.write(stateMessage(NodeState.NODE_STATE_DRAINING));
    await vi.waitFor(async () =>
      expect((await list(address)).snapshot!.nodes[0]!.state).toBe(NodeState.NODE_STATE_DRAINING),
    );
  });

  it('ends a registration that flips its state faster than allowed', async () => {
    const { address } = await startDistributor({ limits: { stateChangeBurst: 2 } });
    const flipper = openRegistration(address, [describeNode(gatewayNode())]);
    const states = [
      NodeState.NODE_STATE_DRAINING,
      NodeState.NODE_STATE_SERVING,
      NodeState.NODE_STATE_DRAINING,
    ];
    for (const state of states) flipper.call.write(stateMessage(state));
    expect(await flipper.ended).toMatchObject({
      code: status.RESOURCE_EXHAUSTED,
      details: 'too many state changes: at most 1 a second (bursts of 2)',
    });
    await vi.waitFor(async () => expect((await list(address)).snapshot!.nodes).toEqual([]));
  });

  it('refuses a message larger than the largest valid registration before decoding it', async () => {
    const { address } = await startDistributor();
    const huge = junkNode('junk', 9100, DEFAULT_BUDGET.maxRequestBytes);
    const ended = await openRegistration(address, [describeNode(huge)]).ended;
    expect(ended.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(ended.details).toContain('larger than max');
  });

  it('sends a list full to the last byte to clients with the default receive limit', async () => {
    const at = new Date('2026-01-01T00:00:00.123Z');
    const { address } = await startDistributor({ registry: new NodeRegistry({ now: () => at }) });
    const measured = measuringWatch(address);
    const defaultWatcher = watch(address);
    const subscriber = subscribe(address, NO_RESUME, {}, {});
    // Four names at nearly their full share, in nodes padded with routes; a fifth name takes the
    // last bytes.
    const plan = ['a', 'b', 'c', 'd'].flatMap((name) =>
      piecesOf(DEFAULT_BUDGET.nameBytes - 100_000).map((bytes, index) => ({ name, port: index + 1, bytes })),
    );
    const planned = plan.reduce((sum, entry) => sum + entry.bytes, 0);
    plan.push(
      ...piecesOf(DEFAULT_BUDGET.listBytes - planned).map((bytes, index) => ({
        name: 'e',
        port: index + 1,
        bytes,
      })),
    );
    const nodes: Array<ReturnType<typeof openRegistration>> = [];
    // The first node is a client of the first contract (it receives every list); the others are not.
    for (const [index, { name, port, bytes }] of plan.entries()) {
      const description = junkNodeOfEntrySize(name, port, bytes, at);
      const node = openRegistration(address, [
        index === 0 ? describeNode(description) : describeNodeWith(description),
      ]);
      expect(await node.outcome).toEqual({ code: status.OK, details: '' });
      nodes.push(node);
    }
    const full = (await list(address)).snapshot!;
    expect(full.nodes).toHaveLength(plan.length);
    const fullWatchBytes = WatchResponse.encode({ snapshot: full, update: undefined }).finish().length;
    expect(fullWatchBytes).toBeLessThanOrEqual(SNAPSHOT_LIMIT_BYTES);
    expect(SNAPSHOT_LIMIT_BYTES - fullWatchBytes).toBeLessThan(DEFAULT_BUDGET.envelopeBytes);

    const oneMore = openRegistration(address, [describeNode(gatewayNode())]);
    expect(await oneMore.ended).toMatchObject({ code: status.RESOURCE_EXHAUSTED });
    expect((await oneMore.ended).details).toContain('the registry is full');

    const slow = { timeout: 15_000 };
    await vi.waitFor(() => expect(defaultWatcher.at(-1)?.revision).toBe(full.revision), slow);
    await vi.waitFor(() => expect(nodes[0]!.responses.at(-1)!.snapshot!.revision).toBe(full.revision), slow);
    await vi.waitFor(() => expect(measured.snapshots.at(-1)?.revision).toBe(full.revision), slow);
    expect(Math.max(...measured.sizes)).toBe(fullWatchBytes);
    // A subscriber of this contract with the default receive limit lists them all too, and a new one
    // gets the whole list in one snapshot within the limit.
    await vi.waitFor(() => expect(subscriber.view.snapshot?.nodes).toHaveLength(plan.length), slow);
    const late = subscribe(address, NO_RESUME, {}, {});
    await vi.waitFor(() => expect(late.view.snapshot?.nodes).toHaveLength(plan.length), slow);
    expect(late.sizes[0]).toBeLessThanOrEqual(SNAPSHOT_LIMIT_BYTES);
    expect(SNAPSHOT_LIMIT_BYTES - late.sizes[0]!).toBeLessThan(DEFAULT_BUDGET.envelopeBytes);
  });
});

describe('a flood of junk registrations', () => {
  const JUNK = 20;
  const junk = (index: number) =>
    junkNode(`junk-${index}`, 20_000 + index, REGISTRATION_LIMITS.descriptorSetBytes);

  async function realShop(address: string) {
    const registrations = [goodsNode({ host: '127.0.0.1' }), gatewayNode()].map((node) => {
      const registration = new RegistrationClient({
        distributor: address,
        node,
        token: TOKEN,
        backoff: { initialMs: 20, maxMs: 200 },
        // The gateway receives the list; goods only its acknowledgements.
        watchNodes: node.name === 'gateway',
      });
      const disconnected = vi.fn();
      registration.on('disconnected', disconnected);
      registration.start();
      cleanups.push(() => registration.stop(200));
      return { registration, disconnected };
    });
    await vi.waitFor(() => expect(registrations.every(({ registration }) => registration.nodeId)).toBe(true));
    return registrations;
  }

  it(`with a valid token: ${JUNK} × 256 KiB fill the distinct descriptor sets to their bound and no further; real nodes stay`, async () => {
    const { address } = await startDistributor({ registryToken: TOKEN });
    const measured = measuringWatch(address, WITH_TOKEN);
    const defaultWatcher = watch(address, WITH_TOKEN);
    const shop = await realShop(address);

    const flood = Array.from({ length: JUNK }, (_, index) =>
      openRegistration(address, [describeNode(junk(index))], WITH_TOKEN),
    );
    const outcomes = await Promise.all(flood.map(async (attempt) => (await attempt.outcome).code));
    const accepted = outcomes.filter((code) => code === status.OK).length;
    expect(accepted).toBeGreaterThan(0);
    expect(outcomes.filter((code) => code === status.RESOURCE_EXHAUSTED)).toHaveLength(JUNK - accepted);
    for (const refused of flood.filter((_, index) => outcomes[index] !== status.OK)) {
      expect((await refused.ended).details).toContain('the registry is full');
    }

    const listed = (await list(address, WITH_TOKEN)).snapshot!;
    expect(listed.nodes.map((node) => node.name)).toEqual(expect.arrayContaining(['goods', 'gateway']));
    expect(listed.nodes).toHaveLength(2 + accepted);
    await vi.waitFor(() => expect(measured.snapshots.at(-1)?.revision).toBe(listed.revision), {
      timeout: 15_000,
    });
    expect(Math.max(...measured.sizes)).toBeLessThanOrEqual(SNAPSHOT_LIMIT_BYTES);
    // Every client kept its stream: none was sent more than it accepts.
    // Catching up on megabytes of lists takes a while.
    const slow = { timeout: 15_000 };
    await vi.waitFor(() => expect(defaultWatcher.at(-1)?.revision).toBe(listed.revision), slow);
    const [goods, gateway] = shop;
    await vi.waitFor(() => expect(gateway!.registration.snapshot?.revision).toBe(listed.revision), slow);
    expect(gateway!.registration.snapshot!.nodes).toHaveLength(2 + accepted);
    expect(goods!.registration.snapshot).toBeUndefined();
    for (const { registration, disconnected } of shop) {
      expect(registration.nodeId).toBeDefined();
      expect(disconnected).not.toHaveBeenCalled();
    }
  });

  it(`without a token: all ${JUNK} are refused, logged once, and nothing changes`, async () => {
    const { log, warnings } = capturingLogger();
    const { address } = await startDistributor({ registryToken: TOKEN, log });
    await realShop(address);
    const before = (await list(address, WITH_TOKEN)).snapshot!;
    const flood = Array.from({ length: JUNK }, (_, index) =>
      openRegistration(address, [describeNode(junk(index))]),
    );
    for (const attempt of flood) expect((await attempt.ended).code).toBe(status.UNAUTHENTICATED);
    expect((await list(address, WITH_TOKEN)).snapshot).toEqual(before);
    expect(warnings().filter((line) => line.event === 'refused')).toEqual([
      expect.objectContaining({
        peer: '127.0.0.1',
        code: 'UNAUTHENTICATED',
        grpcMethod: 'shop.v1.DistributorService/Register',
      }),
    ]);
  });
});
