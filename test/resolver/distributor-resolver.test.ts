import { credentials, Metadata, Server, ServerCredentials, type ServiceError, status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { freePort } from '../../src/bench/process-probes.js';
import { REGISTRY_TOKEN_REFUSALS } from '../../src/common/registry-words.js';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { NodeRegistry } from '../../src/distributor/node-registry.js';
import { ReservedContract } from '../../src/distributor/reserved-contract.js';
import { NodeState } from '../../src/gen/distributor.js';
import {
  GoodsServiceClient,
  type GoodsServiceServer,
  GoodsServiceService,
  type ListGoodsResponse,
} from '../../src/gen/services.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import {
  channelOptionsFor,
  type DistributorResolverRegistration,
  registerDistributorResolver,
} from '../../src/resolver/index.js';
import { goodsDescriptorSet, goodsDescriptorSetWithoutRoutes } from '../helpers/nodes.js';
import { startRefusingDistributor } from '../helpers/refusing-distributor.js';
import { startSilentServer } from '../helpers/silent-server.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const TOKEN = 'test-registry-token-0123456789';
const fastBackoff = { initialMs: 20, maxMs: 200 };

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The error of one ListGoods call through `distributor:///shop.v1.GoodsService` (null if it was answered). */
async function listGoodsThroughResolver(): Promise<ServiceError | null> {
  const client = new GoodsServiceClient('distributor:///shop.v1.GoodsService', credentials.createInsecure());
  cleanups.push(() => client.close());
  return new Promise((resolve) =>
    client.listGoods({}, new Metadata(), { deadline: Date.now() + 5_000 }, resolve),
  );
}

/**
 * A distributor that asks for TOKEN, or, `open`, for nothing: a test that cuts connections through a
 * TcpProxy needs one, since a proof of the token names the connection it was made for.
 */
async function startDistributor(port = 0, registry?: NodeRegistry, { open = false } = {}) {
  const distributor = createDistributorServer({
    ...(open ? {} : { registryToken: TOKEN }),
    ...(registry ? { registry } : {}),
  });
  const bound = await distributor.listen('127.0.0.1', port);
  cleanups.push(() => distributor.stop(100));
  return { address: `127.0.0.1:${bound}`, port: bound, stop: () => distributor.stop(100) };
}

/** A goods server that answers ListGoods with its own name as the only result, registered as goods. */
async function startGoods(
  distributor: string,
  name: string,
  backoff = fastBackoff,
  {
    nodeName = 'goods',
    descriptorSet = goodsDescriptorSet(),
    answerAfterMs = 0,
    open = false,
  }: { nodeName?: string; descriptorSet?: Buffer; answerAfterMs?: number; open?: boolean } = {},
) {
  const server = new Server();
  const implementation = {
    listGoods: (_call: unknown, callback: (error: null, response: ListGoodsResponse) => void) =>
      setTimeout(
        () =>
          callback(null, {
            results: [{ id: 1, name, category: 'test', price: 1, description: '' }],
            nextPageToken: '',
          }),
        answerAfterMs,
      ),
  } as unknown as GoodsServiceServer;
  server.addService(GoodsServiceService, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  const registration = new RegistrationClient({
    distributor,
    node: {
      name: nodeName,
      host: '127.0.0.1',
      port,
      routes: [],
      descriptorSet,
      state: NodeState.NODE_STATE_SERVING,
    },
    ...(open ? {} : { token: TOKEN }),
    backoff,
  });
  registration.start();
  await new Promise((resolve) => registration.once('registered', resolve));
  const stop = async () => {
    await registration.stop(500);
    server.forceShutdown();
  };
  cleanups.push(stop);
  return { name, registration, stop };
}

/** A server that accepts connections and never says a word; its address. */
/** A distributor address where a server accepts connections and never answers. */
async function silentDistributor(): Promise<string> {
  const silent = await startSilentServer();
  cleanups.push(() => silent.close());
  return `127.0.0.1:${silent.port}`;
}

function register(distributor: string, token = TOKEN): DistributorResolverRegistration {
  const resolver = registerDistributorResolver({ distributor, token, backoff: fastBackoff });
  cleanups.push(() => resolver.close());
  return resolver;
}

function goodsClient(target: string): GoodsServiceClient {
  const client = new GoodsServiceClient(target, credentials.createInsecure());
  cleanups.push(() => client.close());
  return client;
}

/** Which instance answered each of `count` calls, in order. */
async function callsServedBy(client: GoodsServiceClient, count: number): Promise<string[]> {
  const served: string[] = [];
  for (let call = 0; call < count; call++) {
    served.push(
      await new Promise<string>((resolve, reject) =>
        client.listGoods(
          {},
          new Metadata(),
          { deadline: Date.now() + 2_000 },
          (error: ServiceError | null, response) =>
            error ? reject(error) : resolve(response.results[0]!.name),
        ),
      ),
    );
  }
  return served;
}

const tally = (served: string[]): Record<string, number> => {
  const counts: Record<string, number> = {};
  for (const name of served) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
};

/**
 * One channel uses `resolver` (a call served by goods instance "a") and is closed: the Watch ends
 * a second later, for want of channels.
 */
async function endWatchAfterOneChannel(resolver: DistributorResolverRegistration): Promise<void> {
  const first = new GoodsServiceClient('distributor:///shop.v1.GoodsService', credentials.createInsecure());
  expect(await callsServedBy(first, 1)).toEqual(['a']);
  first.close();
  await vi.waitFor(() => expect(resolver.snapshot).toBeUndefined(), { timeout: 5_000, interval: 50 });
}

describe('distributor:/// for a stock generated client', () => {
  it('resolves a service to the nodes of the name that defined it first: another name defining it too gets no call', async () => {
    // For a service outside the contract the distributor holds (which it lists whoever defines it;
    // the shop's own are refused to other names, see node-registry.test.ts), shown on GoodsService.
    const distributor = (await startDistributor(0, new NodeRegistry({ reserved: ReservedContract.none() })))
      .address;
    await startGoods(distributor, 'a');
    const resolver = register(distributor);
    const client = goodsClient('distributor:///shop.v1.GoodsService');
    await vi.waitFor(async () => expect(await callsServedBy(client, 2)).toEqual(['a', 'a']));
    // Another name's set defines GoodsService with no REST route, so the distributor lists it.
    await startGoods(distributor, 'impostor', fastBackoff, {
      nodeName: 'impostor',
      descriptorSet: goodsDescriptorSetWithoutRoutes(),
    });
    await vi.waitFor(() =>
      expect(resolver.snapshot?.nodes.some((node) => node.name === 'impostor')).toBe(true),
    );
    expect(tally(await callsServedBy(client, 10))).toEqual({ a: 10 });
    // goods keeps the service while any of its nodes is listed, its new instances included.
    await startGoods(distributor, 'b');
    await vi.waitFor(async () =>
      expect(new Set(await callsServedBy(client, 4))).toEqual(new Set(['a', 'b'])),
    );
    expect(tally(await callsServedBy(client, 20))).toEqual({ a: 10, b: 10 });
    // By its name, the impostor is still reached.
    expect(await callsServedBy(goodsClient('distributor:///impostor'), 2)).toEqual(['impostor', 'impostor']);
  });
  it('spreads calls round robin over the serving instances, and sends a drained one nothing new', async () => {
    const distributor = (await startDistributor()).address;
    const a = await startGoods(distributor, 'a');
    await startGoods(distributor, 'b');
    const resolver = register(distributor);
    const client = goodsClient('distributor:///shop.v1.GoodsService');

    // Once both are known, calls alternate between them.
    await vi.waitFor(async () =>
      expect(new Set(await callsServedBy(client, 4))).toEqual(new Set(['a', 'b'])),
    );
    expect(tally(await callsServedBy(client, 20))).toEqual({ a: 10, b: 10 });

    a.registration.setState(NodeState.NODE_STATE_DRAINING);
    await vi.waitFor(() =>
      expect(
        resolver.snapshot?.nodes.find((node) => node.state === NodeState.NODE_STATE_DRAINING),
      ).toBeDefined(),
    );
    await vi.waitFor(async () => expect(await callsServedBy(client, 4)).toEqual(['b', 'b', 'b', 'b']));
    expect(tally(await callsServedBy(client, 20))).toEqual({ b: 20 });
  });

  it('follows joins and departures live, by service or by node name', async () => {
    const distributor = (await startDistributor()).address;
    const a = await startGoods(distributor, 'a');
    register(distributor);
    const byName = goodsClient('distributor:///goods');
    expect(await callsServedBy(byName, 3)).toEqual(['a', 'a', 'a']);

    await startGoods(distributor, 'c');
    await vi.waitFor(async () =>
      expect(new Set(await callsServedBy(byName, 4))).toEqual(new Set(['a', 'c'])),
    );
    await a.stop();
    await vi.waitFor(async () => expect(await callsServedBy(byName, 4)).toEqual(['c', 'c', 'c', 'c']));
  });

  it('fails calls with UNAVAILABLE when no instance serves the target', async () => {
    const distributor = (await startDistributor()).address;
    const a = await startGoods(distributor, 'a');
    const resolver = register(distributor);
    await vi.waitFor(() => expect(resolver.snapshot?.nodes).toHaveLength(1));
    const nobody = goodsClient('distributor:///shop.v1.MembersService');
    await expect(callsServedBy(nobody, 1)).rejects.toMatchObject({
      code: 14,
      details: expect.stringContaining('the distributor lists no serving instance of shop.v1.MembersService'),
    });

    // Its only instance drains: calls fail at once instead of reaching it.
    const goods = goodsClient('distributor:///shop.v1.GoodsService');
    expect(await callsServedBy(goods, 1)).toEqual(['a']);
    a.registration.setState(NodeState.NODE_STATE_DRAINING);
    await vi.waitFor(() => expect(callsServedBy(goods, 1)).rejects.toMatchObject({ code: 14 }));
  });

  it('fails calls with UNAVAILABLE when the distributor accepts connections and never answers', async () => {
    // A hung process, or another kind of server: grpc-js waits for its HTTP/2 settings for ever.
    const distributor = await silentDistributor();
    const resolver = registerDistributorResolver({ distributor, token: TOKEN, answerTimeoutMs: 300 });
    cleanups.push(() => resolver.close());
    const started = Date.now();
    const error = await listGoodsThroughResolver();
    expect(error).toMatchObject({
      code: 14,
      details: `the distributor at ${distributor} cannot be reached: no answer within 300 ms to the Watch call`,
    });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('fails calls saying that an older distributor asks for the bearer, not that it cannot be reached', async () => {
    // A distributor built before the proofs refuses them as a missing bearer: the calls said the
    // distributor "cannot be reached", and nothing pointed at upgrading it.
    const older = await startRefusingDistributor({
      code: status.UNAUTHENTICATED,
      details: REGISTRY_TOKEN_REFUSALS.missing,
    });
    cleanups.push(() => older.stop());
    const distributor = older.address;
    const resolver = registerDistributorResolver({ distributor, token: TOKEN });
    cleanups.push(() => resolver.close());
    const error = await listGoodsThroughResolver();
    expect(error).toMatchObject({
      code: 14,
      details: expect.stringContaining(
        `the distributor at ${distributor} refused the Watch: ${REGISTRY_TOKEN_REFUSALS.missing} — `,
      ),
    });
    expect(error?.details).toContain('(upgrade the distributor first)');
  });

  it('fails the calls of a channel waiting at close(), or made after it, with UNAVAILABLE when no list had arrived', async () => {
    // A distributor that has not answered yet (nor been given up on) when close() comes.
    const distributor = await silentDistributor();
    const closedEarly = {
      code: 14,
      details: `the distributor:/// resolver was closed before the distributor at ${distributor} sent a node list`,
    };
    // A channel waiting for its first list when close() comes, then one made after it.
    const resolver = register(distributor);
    const waiting = callsServedBy(goodsClient('distributor:///shop.v1.GoodsService'), 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    resolver.close();
    await expect(waiting).rejects.toMatchObject(closedEarly);
    const client = goodsClient('distributor:///shop.v1.GoodsService');
    await expect(callsServedBy(client, 1)).rejects.toMatchObject(closedEarly);
  });

  it('resolves a channel made before close(), and idle until after it, from the list it had', async () => {
    const distributor = (await startDistributor()).address;
    await startGoods(distributor, 'a');
    const resolver = register(distributor);
    await vi.waitFor(() => expect(resolver.snapshot?.nodes).toHaveLength(1));
    // Made while the list is there, with no call yet: it has asked for nothing when close() comes.
    const client = goodsClient('distributor:///shop.v1.GoodsService');
    resolver.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await callsServedBy(client, 1)).toEqual(['a']);
  });

  it('resolves a channel made after close() from the list it had when the Watch had ended for want of channels', async () => {
    // The Watch ends a second after its last channel; close() then used to fail every later
    // channel "closed before the distributor sent a node list", though one had come.
    const distributor = (await startDistributor()).address;
    await startGoods(distributor, 'a');
    const resolver = register(distributor);
    await endWatchAfterOneChannel(resolver);
    resolver.close();
    expect(await callsServedBy(goodsClient('distributor:///shop.v1.GoodsService'), 2)).toEqual(['a', 'a']);
  });

  it('gives a channel waiting for the list of a Watch opened again, at close(), the list it had when the Watch had ended', async () => {
    // close() comes while the reopened Watch has had no answer yet: the waiting channel was failed
    // "closed before the distributor sent a node list", though one had come.
    const { port } = await startDistributor(0, undefined, { open: true });
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port });
    cleanups.push(() => proxy.close());
    await startGoods(`127.0.0.1:${port}`, 'a', fastBackoff, { open: true });
    const resolver = registerDistributorResolver({
      distributor: `127.0.0.1:${proxy.port}`,
      backoff: fastBackoff,
    });
    cleanups.push(() => resolver.close());
    await endWatchAfterOneChannel(resolver);
    // The next Watch's connection is held unanswered: its channel waits for the new list.
    proxy.delay();
    const waiting = callsServedBy(goodsClient('distributor:///shop.v1.GoodsService'), 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    resolver.close();
    expect(await waiting).toEqual(['a']);
  });

  it('drops at once an instance that leaves long after a lost Watch stream came back: nothing to keep then', async () => {
    // Open: a proof of the token would name the proxy's connection, not the distributor's peer.
    const { address: distributor, port } = await startDistributor(0, undefined, { open: true });
    await startGoods(distributor, 'a', fastBackoff, { open: true });
    // b registers through a proxy: cut, its stream ends without a word (a crash), and it is gone.
    const toB = await TcpProxy.start({ host: '127.0.0.1', port });
    cleanups.push(() => toB.close());
    await startGoods(`127.0.0.1:${toB.port}`, 'b', fastBackoff, { open: true });
    const toResolver = await TcpProxy.start({ host: '127.0.0.1', port });
    cleanups.push(() => toResolver.close());
    const resolver = registerDistributorResolver({
      distributor: `127.0.0.1:${toResolver.port}`,
      backoff: fastBackoff,
      restartGraceMs: 1_000,
    });
    cleanups.push(() => resolver.close());
    // A channel that uses the list keeps the Watch going (unused, it would end after a second).
    const client = goodsClient('distributor:///shop.v1.GoodsService');
    await vi.waitFor(async () =>
      expect(new Set(await callsServedBy(client, 4))).toEqual(new Set(['a', 'b'])),
    );
    await vi.waitFor(() => expect(resolver.snapshot?.nodes).toHaveLength(2));
    // The resolver alone loses its stream, and resumes on the same distributor: nothing changed.
    await toResolver.refuse();
    await new Promise((resolve) => setTimeout(resolve, 100));
    await toResolver.restore();
    // Long after, past the grace a lost stream could call for, b crashes.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await toB.refuse();
    await vi.waitFor(() => expect(resolver.snapshot?.nodes.map((node) => node.port)).toHaveLength(1), {
      timeout: 600,
      interval: 10,
    });
  });

  it('keeps resolving to the instances it knew through a distributor restart, until they register again', async () => {
    const first = await startDistributor();
    // goods comes back to the new distributor only a second or so after it is up: its first lists
    // are empty, as a restarted distributor's are until every node has registered again.
    await startGoods(first.address, 'a', { initialMs: 1_500, maxMs: 1_500 });
    const resolver = register(first.address);
    const client = goodsClient('distributor:///shop.v1.GoodsService');
    await vi.waitFor(async () => expect(await callsServedBy(client, 1)).toEqual(['a']));

    const before = resolver.snapshot!.instanceId;
    await first.stop();
    const second = await startDistributor(first.port);
    // The resolver has the new distributor's list, in which goods is missing for now.
    await vi.waitFor(() => expect(resolver.snapshot?.instanceId).not.toBe(before), { timeout: 2_000 });
    const served: string[] = [];
    const until = Date.now() + 2_500;
    while (Date.now() < until) {
      served.push(...(await callsServedBy(client, 1).catch((error: ServiceError) => [error.details])));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(new Set(served)).toEqual(new Set(['a']));
    expect(second.address).toBe(first.address);
  });
});

describe("the channel's own service config", () => {
  it('keeps its method settings (a timeout, here) beside round robin', async () => {
    const distributor = (await startDistributor()).address;
    await startGoods(distributor, 'slow', fastBackoff, { answerAfterMs: 2_000 });
    register(distributor);
    const serviceConfig = {
      methodConfig: [{ name: [{ service: 'shop.v1.GoodsService' }], timeout: '0.3s' }],
    };
    const client = new GoodsServiceClient(
      'distributor:///shop.v1.GoodsService',
      credentials.createInsecure(),
      {
        'grpc.service_config': JSON.stringify(serviceConfig),
      },
    );
    cleanups.push(() => client.close());
    const error = await new Promise<ServiceError | null>((resolve) =>
      client.listGoods({}, new Metadata(), { deadline: Date.now() + 10_000 }, (failed: ServiceError | null) =>
        resolve(failed),
      ),
    );
    expect(error?.code).toBe(4);
  });

  it('is still balanced round robin when it names no policy', async () => {
    const distributor = (await startDistributor()).address;
    await startGoods(distributor, 'a');
    await startGoods(distributor, 'b');
    const resolver = register(distributor);
    await vi.waitFor(() => expect(resolver.snapshot?.nodes).toHaveLength(2));
    const client = new GoodsServiceClient(
      'distributor:///shop.v1.GoodsService',
      credentials.createInsecure(),
      {
        'grpc.service_config': JSON.stringify({
          methodConfig: [{ name: [{ service: 'shop.v1.GoodsService' }], waitForReady: true }],
        }),
      },
    );
    cleanups.push(() => client.close());
    await vi.waitFor(async () =>
      expect(new Set(await callsServedBy(client, 4))).toEqual(new Set(['a', 'b'])),
    );
    expect(tally(await callsServedBy(client, 10))).toEqual({ a: 5, b: 5 });
  });
});

describe('a target the resolver cannot follow', () => {
  it('fails its calls with UNAVAILABLE saying what to write: an authority, or no service or node', async () => {
    const distributor = (await startDistributor()).address;
    await startGoods(distributor, 'a');
    register(distributor);
    // Read as another distributor's address, it was ignored: the calls went to this one's goods.
    await expect(callsServedBy(goodsClient('distributor://10.9.9.9:9000/goods'), 1)).rejects.toMatchObject({
      code: 14,
      details: `distributor://10.9.9.9:9000/goods: the distributor:/// resolver takes no authority (host); it follows the distributor given to registerDistributorResolver, ${distributor}: write distributor:///goods`,
    });
    await expect(callsServedBy(goodsClient('distributor:///'), 1)).rejects.toMatchObject({
      code: 14,
      details:
        'distributor:/// names no gRPC service or node: write distributor:///<service> (shop.v1.GoodsService) or distributor:///<node name> (goods)',
    });
    expect(await callsServedBy(goodsClient('distributor:goods'), 1)).toEqual(['a']);
  });
});

describe('the Watch stream', () => {
  it('ends after a channel whose target it cannot follow is closed, when no other used it', async () => {
    const distributor = (await startDistributor()).address;
    const resolver = register(distributor);
    await vi.waitFor(() => expect(resolver.snapshot).toBeDefined());
    const wrong = new GoodsServiceClient('distributor://10.9.9.9:9000/goods', credentials.createInsecure());
    await expect(callsServedBy(wrong, 1)).rejects.toMatchObject({ code: 14 });
    wrong.close();
    await vi.waitFor(() => expect(resolver.snapshot).toBeUndefined(), { timeout: 5_000, interval: 50 });
  });

  /** Runs a fixture program against the distributor: its exit code (null if it was killed) and its output. */
  async function runProgram(
    fixture: string,
    distributor: string,
  ): Promise<{ code: number | null; output: string }> {
    const { spawn } = await import('node:child_process');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', `test/resolver/fixtures/${fixture}`, distributor],
      {
        env: { ...process.env, SHOP_REGISTRY_TOKEN: TOKEN },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    // Held by its stream, the program would never exit: give it up after long enough.
    const giveUp = setTimeout(() => child.kill('SIGKILL'), 20_000);
    cleanups.push(() => {
      clearTimeout(giveUp);
      child.kill('SIGKILL');
    });
    return { code: await exited, output };
  }

  it('ends once every channel that used it is closed, so that the program exits', async () => {
    const distributor = (await startDistributor()).address;
    await startGoods(distributor, 'a');
    expect(await runProgram('one-call.ts', distributor)).toEqual({ code: 0, output: 'a\n' });
  }, 30_000);

  it('ends when no channel uses it soon after registering, so that a program that makes none exits', async () => {
    const distributor = (await startDistributor()).address;
    expect(await runProgram('no-channel.ts', distributor)).toEqual({ code: 0, output: 'registered\n' });
  }, 30_000);

  it('is opened again by the first channel made after it ended unused', async () => {
    const distributor = (await startDistributor()).address;
    await startGoods(distributor, 'a');
    const resolver = register(distributor);
    await vi.waitFor(() => expect(resolver.snapshot).toBeDefined());
    await vi.waitFor(() => expect(resolver.snapshot).toBeUndefined(), { timeout: 5_000, interval: 50 });
    expect(await callsServedBy(goodsClient('distributor:///shop.v1.GoodsService'), 2)).toEqual(['a', 'a']);
    expect(resolver.snapshot?.nodes).toHaveLength(1);
  });

  it('is opened again, for a new list, by a channel made after it ended', async () => {
    const distributor = (await startDistributor()).address;
    await startGoods(distributor, 'a');
    const resolver = register(distributor);
    // Ended a second after the last channel went: the list it had is stale from then on.
    await endWatchAfterOneChannel(resolver);
    await startGoods(distributor, 'b');
    const second = goodsClient('distributor:///shop.v1.GoodsService');
    await vi.waitFor(async () =>
      expect(new Set(await callsServedBy(second, 4))).toEqual(new Set(['a', 'b'])),
    );
    expect(resolver.snapshot?.nodes).toHaveLength(2);
  });

  it('gives a channel made after it ended the list it had, when the distributor cannot be reached then', async () => {
    const distributor = await startDistributor();
    await startGoods(distributor.address, 'a');
    const resolver = register(distributor.address);
    await endWatchAfterOneChannel(resolver);
    // goods still serves; the distributor is gone when a channel needs the list again (a channel
    // woken after its idle timeout, say), as it may be for a channel that kept its Watch.
    await distributor.stop();
    const second = goodsClient('distributor:///shop.v1.GoodsService');
    expect(await callsServedBy(second, 2)).toEqual(['a', 'a']);
  });

  // A program that makes a client per request ends the Watch between requests: a distributor that
  // restarted meanwhile knows nobody yet, and its first list failed the next request with "the
  // distributor lists no serving instance", where a channel that had kept its Watch kept them; so
  // did a request after the Watch was ended again during the grace.
  it('keeps the instances of the list it had through a distributor restart made while it was ended', async () => {
    const first = await startDistributor();
    // goods registers with the new distributor only 4 s or more after it is up.
    const goods = await startGoods(first.address, 'a', { initialMs: 8_000, maxMs: 8_000 });
    const resolver = register(first.address);
    const oneRequest = async (): Promise<string[]> => {
      const client = new GoodsServiceClient(
        'distributor:///shop.v1.GoodsService',
        credentials.createInsecure(),
      );
      try {
        return await callsServedBy(client, 1).catch((error: ServiceError) => [error.details]);
      } finally {
        client.close();
        // Ended a second after the channel: the next request opens it again.
        await vi.waitFor(() => expect(resolver.snapshot).toBeUndefined(), { timeout: 5_000, interval: 50 });
      }
    };
    expect(await oneRequest()).toEqual(['a']);
    await first.stop();
    let registeredAgain = false;
    goods.registration.once('registered', () => {
      registeredAgain = true;
    });
    await startDistributor(first.port);
    expect(await oneRequest()).toEqual(['a']);
    expect(await oneRequest()).toEqual(['a']);
    // Both were made while the new distributor listed no goods.
    expect(registeredAgain).toBe(false);
  });

  // The grace outlives the Watch, and may end while a Watch opened again still waits for its first
  // list: it gave the channels the list of the Watch before (the restarted distributor's first,
  // partial one), and a request failed with "the distributor lists no serving instance" where the
  // new list, a moment later, had it.
  it('waits for the list of a Watch opened again when the restart grace ends before that list comes', async () => {
    const first = await startDistributor(0, undefined, { open: true });
    // goods registers with the new distributor 2 to 4 s after it is up, while no Watch runs.
    const goods = await startGoods(first.address, 'a', { initialMs: 4_000, maxMs: 4_000 }, { open: true });
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: first.port });
    cleanups.push(() => proxy.close());
    const resolver = registerDistributorResolver({
      distributor: `127.0.0.1:${proxy.port}`,
      backoff: fastBackoff,
      restartGraceMs: 5_000,
    });
    cleanups.push(() => resolver.close());
    const oneRequest = async (deadlineMs = 2_000): Promise<string> => {
      const client = new GoodsServiceClient(
        'distributor:///shop.v1.GoodsService',
        credentials.createInsecure(),
      );
      try {
        return await new Promise<string>((resolve) =>
          client.listGoods({}, new Metadata(), { deadline: Date.now() + deadlineMs }, (error, response) =>
            resolve(error ? error.details : response.results[0]!.name),
          ),
        );
      } finally {
        client.close();
        await vi.waitFor(() => expect(resolver.snapshot).toBeUndefined(), { timeout: 5_000, interval: 50 });
      }
    };
    expect(await oneRequest()).toBe('a');
    await first.stop();
    await startDistributor(first.port, undefined, { open: true });
    const graceEnds = Date.now() + 5_000;
    // Kept by the grace: the new distributor lists no goods yet.
    expect(await oneRequest()).toBe('a');
    await new Promise((resolve) => goods.registration.once('registered', resolve));
    expect(Date.now()).toBeLessThan(graceEnds - 500);
    // The distributor answers the next Watch only after the grace has ended.
    proxy.delay();
    const request = oneRequest(10_000);
    await new Promise((resolve) => setTimeout(resolve, graceEnds + 500 - Date.now()));
    await proxy.restore();
    expect(await request).toBe('a');
  }, 20_000);
});

describe('the registry token', () => {
  it('is refused without being repeated when grpc-js cannot send it (a newline read from a file, say)', () => {
    for (const token of ['secret-token-0123456789\n', 'secret token 0123456789', 'secret-tökén-0123456789']) {
      let thrown: unknown;
      try {
        register('127.0.0.1:1', token);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(TypeError);
      expect(String((thrown as Error).message)).toContain('the registry token must be printable ASCII');
      expect(String((thrown as Error).message)).not.toContain('secret');
    }
  });

  it('is refused when empty, saying so (a SHOP_REGISTRY_TOKEN set but empty)', () => {
    expect(() => register('127.0.0.1:1', '')).toThrow(
      new TypeError("the registry token is empty: give the distributor's token, or none (undefined)"),
    );
  });
});

describe('the library entry', () => {
  // one-call.ts is the README's example. A project that type-checks with exactOptionalPropertyTypes
  // refused its `token: process.env.SHOP_REGISTRY_TOKEN` (string | undefined), where the README says
  // to pass undefined for none.
  it("types the README's example, token from process.env, under exactOptionalPropertyTypes", async () => {
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const tsc = new URL('../../node_modules/typescript/bin/tsc', import.meta.url).pathname;
    const checked = await promisify(execFile)(
      process.execPath,
      [
        tsc,
        '--noEmit',
        '--strict',
        '--exactOptionalPropertyTypes',
        '--skipLibCheck',
        '--module',
        'nodenext',
        '--target',
        'es2022',
        '--types',
        'node',
        'test/resolver/fixtures/one-call.ts',
      ],
      { maxBuffer: 16 * 1024 * 1024 },
    ).catch((error: { stdout: string }) => ({ stdout: error.stdout }));
    expect(checked.stdout).toBe('');
  }, 180_000);

  it('is exported as grpc-shop/resolver, with its types, from the build of src/resolver/index.ts', async () => {
    const { readFile } = await import('node:fs/promises');
    const manifest = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(manifest.exports['./resolver']).toEqual({
      types: './dist/resolver/index.d.ts',
      default: './dist/resolver/index.js',
    });
    const entry = await import('../../src/resolver/index.js');
    expect(Object.keys(entry).sort()).toEqual([
      'DISTRIBUTOR_SCHEME',
      'RegistryWatcher',
      'channelCredentials',
      'channelOptionsFor',
      'endpointsFor',
      'registerDistributorResolver',
      'secureNamingChannelOptions',
    ]);
  });
});

describe('a distributor:/// channel with a proxy in the environment', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('reaches the listed instances when made with channelOptionsFor (grpc-js alone sends it to the proxy, for "shop.v1.GoodsService:443")', async () => {
    const { address } = await startDistributor();
    await startGoods(address, 'a');
    // A proxy that refuses: a channel sent to it fails every call.
    const proxy = `http://127.0.0.1:${await freePort()}`;
    for (const variable of ['grpc_proxy', 'https_proxy', 'http_proxy']) vi.stubEnv(variable, proxy);
    vi.stubEnv('no_grpc_proxy', '');
    vi.stubEnv('no_proxy', '');
    register(address);
    const target = 'distributor:///shop.v1.GoodsService';
    const client = new GoodsServiceClient(target, credentials.createInsecure(), channelOptionsFor(target));
    cleanups.push(() => client.close());
    expect(await callsServedBy(client, 2)).toEqual(['a', 'a']);
  });
});
