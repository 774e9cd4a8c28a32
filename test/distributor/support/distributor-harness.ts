import { type ClientOptions, credentials, Metadata, type StatusObject, status } from '@grpc/grpc-js';
import { afterEach } from 'vitest';
import {
  createDistributorServer,
  type DistributorServerOptions,
} from '../../../src/distributor/distributor-server.js';
import {
  DistributorServiceClient,
  type ListResponse,
  type NodeDescription,
  type NodeListSubscription,
  type NodeListUpdate,
  NodeState,
  type RegisterRequest,
  type RegisterResponse,
  type Snapshot,
  WatchRequest,
  WatchResponse,
} from '../../../src/gen/distributor.js';
import { RegistryView } from '../../../src/registry-client/registry-view.js';

/** A first Register message of the first contract (no options): the node gets full snapshots. */
export const describeNode = (node: NodeDescription): RegisterRequest => ({
  kind: { $case: 'node', value: node },
  options: undefined,
});
/** A first Register message of this contract; `nodeList` set: the node gets the list as updates. */
export const describeNodeWith = (
  node: NodeDescription,
  nodeList?: NodeListSubscription,
): RegisterRequest => ({
  kind: { $case: 'node', value: node },
  options: { nodeList },
});
export const stateMessage = (state: NodeState): RegisterRequest => ({
  kind: { $case: 'state', value: state },
  options: undefined,
});
export const resyncMessage = (from: NodeListSubscription = NO_RESUME): RegisterRequest => ({
  kind: { $case: 'resync', value: from },
  options: undefined,
});
/** A subscription that holds no list. */
export const NO_RESUME: NodeListSubscription = { resumeInstanceId: '', resumeRevision: 0 };

/** Metadata from plain headers: `{ authorization: 'Bearer x' }`. */
export function metadataOf(headers: Record<string, string> = {}): Metadata {
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(headers)) metadata.set(key, value);
  return metadata;
}

/**
 * Distributors and clients for one test file, all closed after each test: call it once at the top of
 * the file. Every call takes optional headers, sent as metadata.
 */
export function useDistributorHarness() {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function startDistributor(options: DistributorServerOptions = {}, port = 0) {
    const distributor = createDistributorServer(options);
    const boundPort = await distributor.listen('127.0.0.1', port);
    cleanups.push(() => distributor.stop(100));
    return { distributor, address: `127.0.0.1:${boundPort}`, port: boundPort };
  }

  function client(address: string, options: Partial<ClientOptions> = {}): DistributorServiceClient {
    const created = new DistributorServiceClient(address, credentials.createInsecure(), options);
    cleanups.push(() => created.close());
    return created;
  }

  /** OK at the first message a call receives, or the status it ended with. */
  function outcomeOf(
    call: { once(event: 'data', listener: () => void): unknown },
    ended: Promise<StatusObject>,
  ): Promise<Pick<StatusObject, 'code' | 'details'>> {
    return new Promise((resolve) => {
      call.once('data', () => resolve({ code: status.OK, details: '' }));
      void ended.then(resolve);
    });
  }

  /**
   * A raw Register stream: what the test writes goes out as is, and everything that comes back is
   * kept. `outcome` settles with OK at the first response, or with the status the stream ended with.
   */
  function openRegistration(
    address: string,
    messages: RegisterRequest[],
    headers: Record<string, string> = {},
  ) {
    const call = client(address).register(metadataOf(headers));
    const responses: RegisterResponse[] = [];
    const ended = new Promise<StatusObject>((resolve) => call.once('status', resolve));
    const outcome = outcomeOf(call, ended);
    call.on('data', (response: RegisterResponse) => responses.push(response));
    call.on('error', () => {});
    for (const message of messages) call.write(message);
    cleanups.push(() => call.cancel());
    return { call, responses, ended, outcome, revisions: () => responses.map((r) => r.snapshot!.revision) };
  }

  /** A Watch call's snapshots, as an array; `ended` and `outcome` as for {@link openRegistration}. */
  function watch(address: string, headers: Record<string, string> = {}) {
    const call = client(address).watch({ subscription: undefined }, metadataOf(headers));
    const snapshots: Snapshot[] = [];
    const ended = new Promise<StatusObject>((resolve) => call.once('status', resolve));
    const outcome = outcomeOf(call, ended);
    call.on('data', (response: { snapshot: Snapshot }) => snapshots.push(response.snapshot));
    call.on('error', () => {});
    cleanups.push(() => call.cancel());
    return Object.assign(snapshots, { ended, outcome });
  }

  /**
   * A watcher that accepts messages of any size and records how many bytes each one took on the
   * wire: what a client would have had to accept.
   */
  function measuringWatch(address: string, headers: Record<string, string> = {}) {
    const raw = client(address, { 'grpc.max_receive_message_length': -1 });
    const sizes: number[] = [];
    const snapshots: Snapshot[] = [];
    const call = raw.makeServerStreamRequest(
      '/shop.v1.DistributorService/Watch',
      (request: WatchRequest) => Buffer.from(WatchRequest.encode(request).finish()),
      (bytes: Buffer) => {
        sizes.push(bytes.length);
        return WatchResponse.decode(bytes);
      },
      { subscription: undefined },
      metadataOf(headers),
      {},
    );
    call.on('data', (response: WatchResponse) => snapshots.push(response.snapshot!));
    call.on('error', () => {});
    cleanups.push(() => call.cancel());
    return { sizes, snapshots };
  }

  /**
   * A Watch of this contract: every update it receives (and its size on the wire), and the list
   * they make, kept by a RegistryView without descriptor sets. Accepts messages of any size.
   */
  function subscribe(
    address: string,
    subscription: NodeListSubscription = NO_RESUME,
    headers: Record<string, string> = {},
    options: Partial<ClientOptions> = { 'grpc.max_receive_message_length': -1 },
  ) {
    const raw = client(address, options);
    const sizes: number[] = [];
    const updates: NodeListUpdate[] = [];
    const view = new RegistryView();
    cleanups.push(() => view.close());
    const call = raw.makeServerStreamRequest(
      '/shop.v1.DistributorService/Watch',
      (request: WatchRequest) => Buffer.from(WatchRequest.encode(request).finish()),
      (bytes: Buffer) => {
        sizes.push(bytes.length);
        return WatchResponse.decode(bytes);
      },
      { subscription },
      metadataOf(headers),
      {},
    );
    const ended = new Promise<StatusObject>((resolve) => call.once('status', resolve));
    const outcome = outcomeOf(call, ended);
    call.on('data', (response: WatchResponse) => {
      updates.push(response.update!);
      view.apply(response.update!);
    });
    call.on('error', () => {});
    cleanups.push(() => call.cancel());
    return {
      call,
      updates,
      sizes,
      view,
      ended,
      outcome,
      /** The ids and states of the nodes the view lists now. */
      listed: () => (view.snapshot?.nodes ?? []).map((node) => `${node.id}:${NodeState[node.state]}`),
      kinds: () => updates.map((update) => `${update.change?.$case}@${update.revision}`),
    };
  }

  function list(address: string, headers: Record<string, string> = {}): Promise<ListResponse> {
    return new Promise((resolve, reject) =>
      client(address).list({}, metadataOf(headers), (error, response) =>
        error ? reject(error) : resolve(response),
      ),
    );
  }

  return { cleanups, startDistributor, client, openRegistration, watch, measuringWatch, subscribe, list };
}
