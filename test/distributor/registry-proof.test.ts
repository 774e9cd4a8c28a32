import { createHash } from 'node:crypto';
import {
  CallCredentials,
  credentials,
  Metadata,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServerWritableStream,
  type StatusObject,
  status,
} from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  CALLER_PROOF_HEADER,
  callerProofHolds,
  DISTRIBUTOR_PROOF_HEADER,
  distributorProofHolds,
  endpointOfPeer,
  endpointText,
  makeCallerProof,
  makeDistributorProof,
  makeNonce,
  OVER_TLS,
  PROOF_WINDOW_MS,
  parseCallerProof,
} from '../../src/common/registry-proof.js';
import { REGISTRY_TOKEN_REFUSALS } from '../../src/common/registry-words.js';
import {
  DistributorServiceClient,
  type DistributorServiceServer,
  DistributorServiceService,
  NodeState,
  type RegisterRequest,
  type RegisterResponse,
  type Snapshot,
  type WatchRequest,
  type WatchResponse,
} from '../../src/gen/distributor.js';
import { DistributorConnection } from '../../src/registry-client/distributor-connection.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { DISTRIBUTOR_METHODS } from '../../src/registry-client/registry-credentials.js';
import { RegistryWatcher } from '../../src/registry-client/registry-watcher.js';
import { captureLog } from '../helpers/log-capture.js';
import { goodsNode } from '../helpers/nodes.js';
import { startRefusingDistributor } from '../helpers/refusing-distributor.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { describeNodeWith, useDistributorHarness } from './support/distributor-harness.js';

const TOKEN = 'test-registry-token-0123456789';
const REGISTER = DISTRIBUTOR_METHODS.register;
const fastBackoff = { initialMs: 50, maxMs: 200 };

describe('proofs of the registry token', () => {
  const node = { name: 'goods', host: '127.0.0.1', port: 9010 };

  it('hold for the call, the connection, the node and the token they were made for, and for nothing else', () => {
    const nonce = makeNonce();
    const header = makeCallerProof(TOKEN, REGISTER, nonce, '127.0.0.1:53124', node);
    expect(header).not.toContain(TOKEN);
    const proof = parseCallerProof(header)!;
    expect(proof).toMatchObject({ nonce, endpoint: '127.0.0.1:53124' });
    expect(callerProofHolds(TOKEN, REGISTER, proof, node)).toBe(true);
    expect(callerProofHolds('another-token-0123456789', REGISTER, proof, node)).toBe(false);
    expect(callerProofHolds(TOKEN, DISTRIBUTOR_METHODS.watch, proof, node)).toBe(false);
    for (const other of [
      { ...node, name: 'members' },
      { ...node, host: '10.0.0.9' },
      { ...node, port: 9011 },
    ]) {
      expect(callerProofHolds(TOKEN, REGISTER, proof, other)).toBe(false);
    }
    expect(callerProofHolds(TOKEN, REGISTER, { ...proof, timeMs: proof.timeMs + 1 }, node)).toBe(false);
    expect(callerProofHolds(TOKEN, REGISTER, { ...proof, endpoint: '127.0.0.1:53125' }, node)).toBe(false);
    expect(parseCallerProof(makeCallerProof(TOKEN, REGISTER, nonce, OVER_TLS, node))?.endpoint).toBe('-');
    expect(endpointOfPeer('[::ffff:127.0.0.1]:53124')).toBe('127.0.0.1:53124');
    expect(endpointOfPeer('[::1]:53124')).toBe(endpointText('::1', 53124));
    expect(parseCallerProof(`${header} `)).toBeUndefined();
    expect(parseCallerProof(`Bearer ${TOKEN}`)).toBeUndefined();
  });

  it("take the distributor's answer over the caller's nonce only, made with the token", () => {
    const nonce = makeNonce();
    const answer = makeDistributorProof(TOKEN, REGISTER, nonce);
    expect(distributorProofHolds(TOKEN, REGISTER, nonce, answer)).toBe(true);
    expect(distributorProofHolds(TOKEN, REGISTER, '0'.repeat(32), answer)).toBe(false);
    expect(distributorProofHolds(TOKEN, DISTRIBUTOR_METHODS.watch, nonce, answer)).toBe(false);
    expect(
      distributorProofHolds(TOKEN, REGISTER, nonce, makeDistributorProof('x'.repeat(20), REGISTER, nonce)),
    ).toBe(false);
    expect(distributorProofHolds(TOKEN, REGISTER, nonce, undefined)).toBe(false);
    expect(distributorProofHolds(TOKEN, REGISTER, nonce, 'v1 zz')).toBe(false);
  });
});

describe('the distributor, proven to', () => {
  const { startDistributor } = useDistributorHarness();
  const connections: DistributorConnection[] = [];
  afterEach(() => {
    for (const connection of connections.splice(0)) connection.close();
  });

  /**
   * A client of the distributor whose calls carry the proof `make` writes for the connection each
   * goes out on (its side of it, as the distributor sees the peer), and its options.
   */
  function provingClient(address: string, make: (endpoint: string) => string) {
    const connection = new DistributorConnection(address, credentials.createInsecure(), {});
    connections.push(connection);
    const proving = CallCredentials.createFromMetadataGenerator((_options, callback) => {
      const side = connection.localEndpoint()!;
      const metadata = new Metadata();
      metadata.set(CALLER_PROOF_HEADER, make(endpointText(side.address, side.port)));
      callback(null, metadata);
    });
    return { client: connection.client, options: { credentials: proving } };
  }

  /** A Watch call's answer headers, or the status it ended with first. */
  function watchHeaders(
    address: string,
    make: (endpoint: string) => string,
  ): Promise<Metadata | StatusObject> {
    return new Promise((resolve) => {
      const { client, options } = provingClient(address, make);
      const call = client.watch(
        { subscription: { resumeInstanceId: '', resumeRevision: 0 } },
        new Metadata(),
        options,
      );
      call.on('metadata', (headers) => {
        resolve(headers);
        call.cancel();
      });
      call.on('error', () => {});
      call.on('status', resolve);
    });
  }

  /** How a Register call of goods that sent the proof `make` writes ended: its headers first, if any. */
  function registerOutcome(
    address: string,
    make: (endpoint: string) => string,
  ): Promise<{ headers?: Metadata; ended?: StatusObject }> {
    return new Promise((resolve) => {
      const { client, options } = provingClient(address, make);
      const call = client.register(new Metadata(), options);
      call.on('metadata', (headers) => {
        resolve({ headers });
        call.cancel();
      });
      call.on('error', () => {});
      call.on('status', (ended: StatusObject) => resolve({ ended }));
      call.write(describeNodeWith(goodsNode()));
    });
  }

  it('answers a proof of the token with its own, over the caller nonce', async () => {
    const { address } = await startDistributor({ registryToken: TOKEN });
    const nonce = makeNonce();
    const headers = (await watchHeaders(address, (endpoint) =>
      makeCallerProof(TOKEN, DISTRIBUTOR_METHODS.watch, nonce, endpoint),
    )) as Metadata;
    expect(
      distributorProofHolds(
        TOKEN,
        DISTRIBUTOR_METHODS.watch,
        nonce,
        String(headers.get(DISTRIBUTOR_PROOF_HEADER)[0]),
      ),
    ).toBe(true);
  });

  it('refuses a proof made with another token, and proves nothing to it (no relay of its nonce)', async () => {
    const { address } = await startDistributor({ registryToken: TOKEN });
    const ended = (await watchHeaders(address, (endpoint) =>
      makeCallerProof('not-the-token-0123456789', DISTRIBUTOR_METHODS.watch, makeNonce(), endpoint),
    )) as StatusObject;
    expect(ended).toMatchObject({
      code: status.UNAUTHENTICATED,
      details: 'invalid credentials: the registry token is wrong',
    });
    expect(ended.metadata.get(DISTRIBUTOR_PROOF_HEADER)).toEqual([]);
  });

  it('registers only the node a Register proof was made for, proving nothing before it has checked', async () => {
    const { address } = await startDistributor({ registryToken: TOKEN });
    const described = goodsNode();
    const forGoods = { name: described.name, host: described.host, port: described.port };
    const proven = await registerOutcome(address, (endpoint) =>
      makeCallerProof(TOKEN, REGISTER, makeNonce(), endpoint, forGoods),
    );
    expect(proven.headers?.get(DISTRIBUTOR_PROOF_HEADER)).toHaveLength(1);
    // A proof taken from goods by a process in the distributor's place cannot register another node.
    const refused = await registerOutcome(address, (endpoint) =>
      makeCallerProof(TOKEN, REGISTER, makeNonce(), endpoint, { ...forGoods, port: forGoods.port + 1 }),
    );
    expect(refused.headers).toBeUndefined();
    expect(refused.ended).toMatchObject({
      code: status.UNAUTHENTICATED,
      details: 'invalid credentials: the registry token is wrong',
    });
  });

  it("spends none of an address group's registration budget on Register proofs made without the token", async () => {
    const { address } = await startDistributor({
      registryToken: TOKEN,
      limits: { registrationsPerSecond: 1, registrationBurst: 2 },
    });
    const described = goodsNode();
    const forGoods = { name: described.name, host: described.host, port: described.port };
    // Well formed, of the moment, made with no token: every process on the machine can send them.
    const forged = (endpoint: string) => `v1 ${Date.now()} ${'a'.repeat(32)} ${endpoint} ${'b'.repeat(64)}`;
    for (let attempt = 0; attempt < 4; attempt++) {
      expect((await registerOutcome(address, forged)).ended).toMatchObject({
        code: status.UNAUTHENTICATED,
        details: 'invalid credentials: the registry token is wrong',
      });
    }
    const proven = await registerOutcome(address, (endpoint) =>
      makeCallerProof(TOKEN, REGISTER, makeNonce(), endpoint, forGoods),
    );
    expect(proven.headers?.get(DISTRIBUTOR_PROOF_HEADER)).toHaveLength(1);
  });

  it('ends a Register stream that never sends its first message, which any well-formed proof opens', async () => {
    const { address } = await startDistributor({ registryToken: TOKEN, firstMessageTimeoutMs: 300 });
    // Made with no token: its node, the only thing it could be checked against, never comes.
    const forged = (endpoint: string) => `v1 ${Date.now()} ${'a'.repeat(32)} ${endpoint} ${'b'.repeat(64)}`;
    const { client, options } = provingClient(address, forged);
    const call = client.register(new Metadata(), options);
    call.on('error', () => {});
    const ended = await new Promise<StatusObject | 'still open'>((resolve) => {
      const timer = setTimeout(() => resolve('still open'), 5_000);
      call.on('status', (status: StatusObject) => {
        clearTimeout(timer);
        resolve(status);
      });
    });
    call.cancel();
    expect(ended).toMatchObject({
      code: status.DEADLINE_EXCEEDED,
      details: 'no first message within 0.3 s: a Register stream must describe its node at once',
    });
    expect((ended as StatusObject).metadata.get(DISTRIBUTOR_PROOF_HEADER)).toEqual([]);
    // A node that sends its first message at once is let in as before.
    const described = goodsNode();
    const forGoods = { name: described.name, host: described.host, port: described.port };
    const proven = await registerOutcome(address, (endpoint) =>
      makeCallerProof(TOKEN, REGISTER, makeNonce(), endpoint, forGoods),
    );
    expect(proven.headers?.get(DISTRIBUTOR_PROOF_HEADER)).toHaveLength(1);
  });

  it("refuses a proof made for another connection (a relay's), or made as if over TLS on plaintext", async () => {
    const { address } = await startDistributor({ registryToken: TOKEN });
    for (const other of [
      () => '127.0.0.1:1',
      (endpoint: string) => endpoint.replace(/:\d+$/, ':1'),
      () => OVER_TLS,
    ]) {
      const ended = (await watchHeaders(address, (endpoint) =>
        makeCallerProof(TOKEN, DISTRIBUTOR_METHODS.watch, makeNonce(), other(endpoint)),
      )) as StatusObject;
      expect(ended).toMatchObject({
        code: status.UNAUTHENTICATED,
        details: REGISTRY_TOKEN_REFUSALS.connection,
      });
      expect(ended.metadata.get(DISTRIBUTOR_PROOF_HEADER)).toEqual([]);
    }
  });

  it('refuses a proof made too far from its clock, saying so', async () => {
    const { address } = await startDistributor({ registryToken: TOKEN });
    const made = (endpoint: string) =>
      makeCallerProof(
        TOKEN,
        DISTRIBUTOR_METHODS.watch,
        makeNonce(),
        endpoint,
        undefined,
        Date.now() - PROOF_WINDOW_MS - 60_000,
      );
    expect(await watchHeaders(address, made)).toMatchObject({
      code: status.UNAUTHENTICATED,
      details: expect.stringMatching(
        /^invalid credentials: the proof of the registry token was made at a time 3[67][0-9] s behind the distributor's clock \(at most 300 s either way\): set the clocks of both hosts right$/,
      ),
    });
  });

  it('still takes the token as a bearer, as grpcurl sends it', async () => {
    const { address } = await startDistributor({ registryToken: TOKEN });
    const client = new DistributorServiceClient(address, credentials.createInsecure());
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${TOKEN}`);
    try {
      const headers = await new Promise<Metadata>((resolve, reject) => {
        const call = client.watch({ subscription: { resumeInstanceId: '', resumeRevision: 0 } }, metadata);
        call.on('metadata', (answered) => {
          resolve(answered);
          call.cancel();
        });
        call.on('error', () => {});
        call.on('status', reject);
      });
      expect(headers.get(DISTRIBUTOR_PROOF_HEADER)).toEqual([]);
    } finally {
      client.close();
    }
  });

  it('refuses the calls a relay passes on from its own connection: a watcher behind it gets no list', async () => {
    const { address, port } = await startDistributor({ registryToken: TOKEN });
    const relay = await TcpProxy.start({ host: '127.0.0.1', port });
    const watcher = new RegistryWatcher({
      distributor: `127.0.0.1:${relay.port}`,
      token: TOKEN,
      backoff: fastBackoff,
    });
    const ends: StatusObject[] = [];
    watcher.on('disconnected', (ended) => ends.push(ended));
    try {
      watcher.start();
      await vi.waitFor(() => expect(ends.length).toBeGreaterThanOrEqual(2), { timeout: 5_000 });
      expect(watcher.snapshot).toBeUndefined();
      for (const ended of ends) {
        expect(ended).toMatchObject({
          code: status.UNAUTHENTICATED,
          details: REGISTRY_TOKEN_REFUSALS.connection,
        });
      }
    } finally {
      watcher.stop();
      await relay.close();
    }
    // Straight to the distributor, the same token and code are let in.
    const direct = new RegistryWatcher({ distributor: address, token: TOKEN, backoff: fastBackoff });
    try {
      direct.start();
      await vi.waitFor(() => expect(direct.snapshot).toBeDefined());
    } finally {
      direct.stop();
    }
  });

  it('proves itself in a refusal for good of a caller that proved the token, which the component then believes', async () => {
    // "operator" is refused (PERMISSION_DENIED) after the proof is checked, before the node is looked
    // at further: a refusal the component may stop for, since only this shop's distributor can make it.
    const { address } = await startDistributor({ registryToken: TOKEN });
    const registration = new RegistrationClient({
      distributor: address,
      token: TOKEN,
      node: goodsNode({ name: 'operator' }),
      backoff: fastBackoff,
    });
    const refused = new Promise<StatusObject>((resolve) => registration.once('refused', resolve));
    try {
      registration.start();
      expect(await refused).toMatchObject({ code: status.PERMISSION_DENIED });
    } finally {
      await registration.stop(100);
    }
  });

  it('refuses, holding no token itself, a caller that proves one, and never lists it: it used to flap in and out', async () => {
    // Found running the README's multi-host layout with the token on every host but the
    // distributor: the distributor took each Register, the component then dropped it for want of
    // the distributor's proof, and goods joined and left the registry at every retry, warned that
    // another process might hold the distributor's port, and never registered.
    const { log, lines } = captureLog('distributor');
    const { address } = await startDistributor({ log });
    const registration = new RegistrationClient({
      distributor: address,
      token: TOKEN,
      node: goodsNode(),
      backoff: fastBackoff,
    });
    const ends: StatusObject[] = [];
    registration.on('disconnected', (ended: StatusObject) => ends.push(ended));
    try {
      registration.start();
      await vi.waitFor(() => expect(ends.length).toBeGreaterThanOrEqual(3));
      for (const ended of ends) {
        expect(ended).toMatchObject({
          code: status.FAILED_PRECONDITION,
          details: expect.stringContaining('give the distributor SHOP_REGISTRY_TOKEN'),
        });
      }
      expect(lines.filter((line) => line.event === 'join')).toEqual([]);
    } finally {
      await registration.stop(100);
    }
  });

  it("lets the project's own registration client and watcher in with the token, and follow the list", async () => {
    const { address } = await startDistributor({ registryToken: TOKEN });
    const registration = new RegistrationClient({
      distributor: address,
      token: TOKEN,
      node: goodsNode(),
      watchNodes: true,
      backoff: fastBackoff,
    });
    const watcher = new RegistryWatcher({
      distributor: address,
      token: TOKEN,
      descriptorSets: true,
      backoff: fastBackoff,
    });
    try {
      registration.start();
      watcher.start();
      await vi.waitFor(() => expect(registration.nodeId).toBeDefined());
      await vi.waitFor(() => expect(watcher.snapshot?.nodes.map((listed) => listed.name)).toEqual(['goods']));
      await vi.waitFor(() => expect(registration.snapshot?.nodes).toHaveLength(1));
      // The descriptor set, fetched with GetDescriptorSet, proven as the rest.
      expect(watcher.snapshot?.nodes[0]?.descriptorSet.length).toBeGreaterThan(0);
    } finally {
      watcher.stop();
      await registration.stop(100);
    }
  });
});

describe('a process listening in place of the distributor, without the token', () => {
  /** What the impostor received, and how to stop it. */
  interface Impostor {
    readonly address: string;
    readonly metadata: Metadata[];
    stop(): void;
  }

  /** A rogue members node, listed by the impostor to whoever asks. */
  const rogueList: Snapshot = {
    revision: 1,
    instanceId: 'impostor',
    nodes: [
      {
        id: 'members@127.0.0.1:6666',
        name: 'members',
        host: '127.0.0.1',
        port: 6666,
        state: NodeState.NODE_STATE_SERVING,
        routes: [],
        descriptorSet: Buffer.alloc(0),
        descriptorSetSha256: createHash('sha256').update('x').digest(),
        registeredAtUnixMs: 0,
      } as never,
    ],
  } as Snapshot;

  async function startImpostor(): Promise<Impostor> {
    const metadata: Metadata[] = [];
    const server = new Server();
    const implementation = {
      register: (call: ServerDuplexStream<RegisterRequest, RegisterResponse>) => {
        metadata.push(call.metadata);
        call.on('data', () =>
          call.write({ nodeId: 'goods@127.0.0.1:9010', snapshot: rogueList } as RegisterResponse),
        );
        call.on('error', () => {});
      },
      watch: (call: ServerWritableStream<WatchRequest, WatchResponse>) => {
        metadata.push(call.metadata);
        call.write({ snapshot: rogueList, update: undefined });
      },
      list: (call: { metadata: Metadata }, callback: (error: null, value: object) => void) => {
        metadata.push(call.metadata);
        callback(null, { snapshot: rogueList });
      },
      getDescriptorSet: (call: { metadata: Metadata }, callback: (error: null, value: object) => void) => {
        metadata.push(call.metadata);
        callback(null, { descriptorSet: Buffer.alloc(0) });
      },
    } as unknown as DistributorServiceServer;
    server.addService(DistributorServiceService, implementation);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    return { address: `127.0.0.1:${port}`, metadata, stop: () => server.forceShutdown() };
  }

  it.each(['UNAUTHENTICATED', 'PERMISSION_DENIED', 'INVALID_ARGUMENT', 'UNIMPLEMENTED'] as const)(
    'cannot stop a component for good with a refusal (%s): it is retried, with a warning that says why',
    async (name) => {
      const refusing = await startRefusingDistributor({
        code: status[name],
        details: REGISTRY_TOKEN_REFUSALS.wrong,
      });
      const { address } = refusing;
      const { log, lines } = captureLog('goods');
      const registration = new RegistrationClient({
        distributor: address,
        token: TOKEN,
        node: goodsNode(),
        backoff: fastBackoff,
        log,
      });
      const refused: StatusObject[] = [];
      registration.on('refused', (ended) => refused.push(ended));
      try {
        registration.start();
        await vi.waitFor(() => expect(refusing.calls).toBeGreaterThanOrEqual(3), { timeout: 5_000 });
      } finally {
        await registration.stop(100);
        refusing.stop();
      }
      expect(refused).toEqual([]);
      const warnings = lines.filter((line) => line.event === 'refused');
      expect(warnings.length).toBeGreaterThanOrEqual(2);
      for (const warning of warnings) {
        expect(warning).toMatchObject({ level: 40, proven: false, code: name });
        expect(warning.msg).toContain(
          `${address} refused this node (${name}: ${REGISTRY_TOKEN_REFUSALS.wrong}) without proving that it holds the registry token, so the refusal is not taken as final: it may come from another process holding the distributor's port while it restarts; if it is the distributor's, what it names needs fixing (this component's SHOP_REGISTRY_TOKEN not the distributor's, a clock more than 5 minutes off, something relaying the connection); retrying with backoff`,
        );
      }
    },
  );

  it('gets no token, and no component believes the list it sends', async () => {
    const impostor = await startImpostor();
    const registration = new RegistrationClient({
      distributor: impostor.address,
      token: TOKEN,
      node: goodsNode(),
      watchNodes: true,
      backoff: fastBackoff,
    });
    const watcher = new RegistryWatcher({
      distributor: impostor.address,
      token: TOKEN,
      descriptorSets: true,
      backoff: fastBackoff,
    });
    const ends: StatusObject[] = [];
    const believed: string[] = [];
    registration.on('disconnected', (ended) => ends.push(ended));
    watcher.on('disconnected', (ended) => ends.push(ended));
    registration.on('registered', () => believed.push('registered'));
    registration.on('snapshot', () => believed.push('registration snapshot'));
    watcher.on('snapshot', () => believed.push('watcher snapshot'));
    try {
      registration.start();
      watcher.start();
      await vi.waitFor(() => expect(ends.length).toBeGreaterThanOrEqual(4), { timeout: 5_000 });
    } finally {
      watcher.stop();
      await registration.stop(100);
      impostor.stop();
    }
    expect(believed).toEqual([]);
    expect(registration.snapshot).toBeUndefined();
    expect(watcher.snapshot).toBeUndefined();
    for (const ended of ends) {
      expect(ended).toMatchObject({
        code: status.UNAVAILABLE,
        details: expect.stringContaining(
          `the process answering at ${impostor.address} did not prove that it holds the registry token`,
        ),
      });
    }
    const received = JSON.stringify(impostor.metadata.map((one) => one.getMap()));
    expect(impostor.metadata.length).toBeGreaterThanOrEqual(4);
    expect(received).not.toContain(TOKEN);
    expect(received).not.toContain('authorization');
  });
});
