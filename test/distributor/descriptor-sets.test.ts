import { createHash } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { describe, expect, it, vi } from 'vitest';
import type { GetDescriptorSetResponse } from '../../src/gen/distributor.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { gatewayNode, goodsDescriptorSet, goodsNode } from '../helpers/nodes.js';
import { describeNodeWith, metadataOf, useDistributorHarness } from './support/distributor-harness.js';
import { junkDescriptorSet, junkNode } from './support/junk-nodes.js';

const { cleanups, startDistributor, client, openRegistration, subscribe } = useDistributorHarness();

const TOKEN = 'test-registry-token-0123456789';
const WITH_TOKEN = { authorization: `Bearer ${TOKEN}` };

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest();
/** Another service's set (the shop's three services share one file, and so one set). */
const JUNK_SET = junkDescriptorSet(2_000);
const junkSet = () => JUNK_SET;
const junkAt = (port: number) => junkNode('junk', port, JUNK_SET.length);

describe('descriptor sets by hash', () => {
  function getDescriptorSet(address: string, hash: Buffer, headers: Record<string, string> = WITH_TOKEN) {
    return new Promise<GetDescriptorSetResponse>((resolve, reject) =>
      client(address).getDescriptorSet({ sha256: hash }, metadataOf(headers), (error, response) =>
        error ? reject(error) : resolve(response),
      ),
    );
  }

  it('keeps one copy per distinct set, serves it by hash, and drops it with its last node', async () => {
    const { address, distributor } = await startDistributor({ registryToken: TOKEN });
    const goods = [9010, 9011, 9012].map((port) =>
      openRegistration(address, [describeNodeWith(goodsNode({ port }))], WITH_TOKEN),
    );
    const junk = openRegistration(address, [describeNodeWith(junkAt(9020))], WITH_TOKEN);
    await vi.waitFor(() => expect(distributor.registry.snapshot().nodes).toHaveLength(4));
    const store = distributor.registry.descriptorSets;
    expect(store.size).toBe(2);
    expect(store.bytes).toBe(goodsDescriptorSet().length + junkSet().length);
    const listed = distributor.registry.snapshot().nodes;
    expect(new Set(listed.map((node) => node.descriptorSetSha256.toString('hex')))).toEqual(
      new Set([sha256(goodsDescriptorSet()).toString('hex'), sha256(junkSet()).toString('hex')]),
    );
    expect(listed.every((node) => node.descriptorSet.length === 0)).toBe(true);

    expect((await getDescriptorSet(address, sha256(goodsDescriptorSet()))).descriptorSet).toEqual(
      goodsDescriptorSet(),
    );
    expect((await getDescriptorSet(address, sha256(junkSet()))).descriptorSet).toEqual(junkSet());

    for (const node of goods.slice(0, 2)) node.call.end();
    await vi.waitFor(() => expect(distributor.registry.snapshot().nodes).toHaveLength(2));
    expect(store.size).toBe(2);
    goods[2]!.call.end();
    await vi.waitFor(() => expect(store.size).toBe(1));
    await expect(getDescriptorSet(address, sha256(goodsDescriptorSet()))).rejects.toMatchObject({
      code: status.NOT_FOUND,
    });
    junk.call.end();
    await vi.waitFor(() => expect(store.bytes).toBe(0));
  });

  it('asks GetDescriptorSet for the credentials of List, and a 32-byte hash', async () => {
    const { address } = await startDistributor({ registryToken: TOKEN });
    openRegistration(address, [describeNodeWith(goodsNode())], WITH_TOKEN);
    const hash = sha256(goodsDescriptorSet());
    await vi.waitFor(() => getDescriptorSet(address, hash));
    await expect(getDescriptorSet(address, hash, {})).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    await expect(getDescriptorSet(address, hash.subarray(0, 5))).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: 'sha256 must be 32 bytes, got 5',
    });
  });

  it('takes a hash alone for a set it holds, and asks for the bytes of one it does not', async () => {
    const { address, distributor } = await startDistributor();
    const hashOnly = (port: number) =>
      goodsNode({ port, descriptorSet: Buffer.alloc(0), descriptorSetSha256: sha256(goodsDescriptorSet()) });
    const early = openRegistration(address, [describeNodeWith(hashOnly(9010))]);
    expect(await early.ended).toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: `the distributor holds no descriptor set ${sha256(goodsDescriptorSet()).toString('hex')}: register again with descriptor_set`,
    });
    openRegistration(address, [describeNodeWith(goodsNode({ port: 9011 }))]);
    await vi.waitFor(() => expect(distributor.registry.snapshot().nodes).toHaveLength(1));
    const later = openRegistration(address, [describeNodeWith(hashOnly(9012))]);
    expect(await later.outcome).toMatchObject({ code: status.OK });
    expect(distributor.registry.snapshot().nodes.map((node) => node.port)).toEqual([9011, 9012]);
  });

  it('refuses a hash that is not the hash of the bytes sent', async () => {
    const { address } = await startDistributor();
    const lying = openRegistration(address, [
      describeNodeWith(goodsNode({ descriptorSetSha256: sha256(junkSet()) })),
    ]);
    expect(await lying.ended).toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: 'invalid registration: descriptor_set_sha256 is not the SHA-256 of descriptor_set',
    });
    const short = openRegistration(address, [
      describeNodeWith(goodsNode({ descriptorSetSha256: Buffer.alloc(4) })),
    ]);
    expect(await short.ended).toMatchObject({ code: status.INVALID_ARGUMENT });
  });

  it('lets a gateway fetch each distinct set once, however many instances share it', async () => {
    const { address, distributor } = await startDistributor();
    for (let port = 9010; port < 9020; port++)
      openRegistration(address, [describeNodeWith(goodsNode({ port }))]);
    for (const port of [9020, 9021]) openRegistration(address, [describeNodeWith(junkAt(port))]);
    await vi.waitFor(() => expect(distributor.registry.snapshot().nodes).toHaveLength(12));
    const served = vi.spyOn(distributor.registry.descriptorSets, 'get');
    const gateway = new RegistrationClient({
      distributor: address,
      node: gatewayNode(),
      watchNodes: true,
      backoff: { initialMs: 20, maxMs: 200 },
    });
    cleanups.push(() => gateway.stop(200));
    gateway.start();
    await vi.waitFor(() => expect(gateway.snapshot?.nodes).toHaveLength(13));
    openRegistration(address, [describeNodeWith(goodsNode({ port: 9030 }))]);
    await vi.waitFor(() => expect(gateway.snapshot?.nodes).toHaveLength(14));
    expect(served).toHaveBeenCalledTimes(2);
    const routed = gateway.snapshot!.nodes.filter((node) => node.routes.length > 0);
    expect(routed.every((node) => node.descriptorSet.length > 0)).toBe(true);
  });

  it('lists 400 goods-like nodes with messages that stay small (it once broke at 297)', async () => {
    const { address, distributor } = await startDistributor();
    const watcher = subscribe(address, undefined, {}, {});
    const count = 400;
    for (let index = 0; index < count; index++) {
      openRegistration(address, [describeNodeWith(goodsNode({ port: 10_000 + index }))]);
    }
    await vi.waitFor(() => expect(watcher.view.snapshot?.nodes).toHaveLength(count), { timeout: 20_000 });
    expect(distributor.registry.descriptorSets.size).toBe(1);
    expect(Math.max(...watcher.sizes.slice(1))).toBeLessThan(1_000);
    const late = subscribe(address, undefined, {}, {});
    await vi.waitFor(() => expect(late.view.snapshot?.nodes).toHaveLength(count));
    expect(late.sizes[0]).toBeLessThan(150_000);
  });
});
