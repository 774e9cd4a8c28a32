import { createHash } from 'node:crypto';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { type ClientDuplexStream, credentials, Metadata, type StatusObject, status } from '@grpc/grpc-js';
import { backoffDelay } from '../common/backoff.js';
import { registrationDescriptorSet } from '../common/descriptors.js';
import { nodeIdOf } from '../common/node-id.js';
import { channelOptionsFor } from '../common/proxy-choice.js';
import {
  DistributorServiceClient,
  type NodeDescription,
  NodeState,
  type RegisterRequest,
  type RegisterResponse,
} from '../gen/distributor.js';
import { SHOP_SERVICES } from '../services/service-list.js';

/** A service the simulated nodes are instances of: one of the shop's. */
interface SimulatedService {
  readonly name: string;
  readonly grpc: { readonly name: string };
}

const SERVICES: readonly SimulatedService[] = SHOP_SERVICES;

/** Builds of each service that run side by side (a rollout): each build is its own descriptor set. */
const BUILDS = 2;

/** How a simulated node registers again after its stream ended: from 100 ms up to 2 s. */
const NODE_BACKOFF = { initialMs: 100, maxMs: 2_000 };

/** One node in this many is a canary with a descriptor set of its own. */
const CANARY_EVERY = 100;

/**
 * The descriptor set of one build of a service: what the service registers (its files with their
 * imports and HttpRules, about 27 KB for goods), plus a small file naming the build, so that builds differ.
 */
function descriptorSetOf(service: SimulatedService, build: string): Buffer {
  const set = fromBinary(FileDescriptorSetSchema, registrationDescriptorSet([service.grpc.name]));
  const marker = create(FileDescriptorProtoSchema, {
    name: `build/${service.name}-${build}.proto`,
    package: `build.${service.name.replace(/[^a-z]/g, '')}.b${build.replace(/[^0-9a-z]/gi, '')}`,
    syntax: 'proto3',
    messageType: [{ name: 'Build' }],
  });
  set.file.push(marker);
  return Buffer.from(toBinary(FileDescriptorSetSchema, set));
}

/** What simulated node number `index` registers: most share a few sets, one in 100 is a canary. */
export function simulatedNode(index: number, sets: Map<string, Buffer>): NodeDescription {
  const service = SERVICES[index % SERVICES.length]!;
  const build = index % CANARY_EVERY === CANARY_EVERY - 1 ? `canary${index}` : String(index % BUILDS);
  const key = `${service.name}/${build}`;
  let descriptorSet = sets.get(key);
  if (!descriptorSet) {
    descriptorSet = descriptorSetOf(service, build);
    sets.set(key, descriptorSet);
  }
  return {
    name: service.name,
    host: '127.0.0.1',
    port: 10_000 + index,
    routes: [],
    descriptorSet,
    state: NodeState.NODE_STATE_SERVING,
    descriptorSetSha256: createHash('sha256').update(descriptorSet).digest(),
  };
}

/** Options of {@link SimulatedNodes}. */
export interface SimulatedNodesOptions {
  distributor: string;
  token: string;
  /** Connections the nodes' streams share. */
  connections: number;
}

/** One simulated node: its registration stream while it lasts. */
interface SimulatedNode {
  readonly description: NodeDescription;
  call: ClientDuplexStream<RegisterRequest, RegisterResponse> | undefined;
  registered: boolean;
  attempts: number;
}

/**
 * N simulated service instances registering over a handful of connections from one host, as
 * services of this contract do (no node list, acknowledgements only). A refused registration (the
 * per-address rate) is tried again with backoff, as the RegistrationClient does.
 */
export class SimulatedNodes {
  readonly #clients: DistributorServiceClient[];
  readonly #metadata = new Metadata();
  readonly #nodes: SimulatedNode[] = [];
  readonly #sets = new Map<string, Buffer>();
  #registered = 0;
  #refusals = 0;
  /** Streams that ended while registered: a node lost (keepalive, a reset). */
  #lost = 0;
  #stopped = false;

  constructor(options: SimulatedNodesOptions) {
    this.#metadata.set('authorization', `Bearer ${options.token}`);
    this.#clients = Array.from(
      { length: options.connections },
      () =>
        new DistributorServiceClient(
          options.distributor,
          credentials.createInsecure(),
          // One connection per client, not one shared by all.
          channelOptionsFor(options.distributor, { 'grpc.use_local_subchannel_pool': 1 }),
        ),
    );
  }

  get registered(): number {
    return this.#registered;
  }

  /** Registrations refused on the way (and tried again). */
  get refusals(): number {
    return this.#refusals;
  }

  get lost(): number {
    return this.#lost;
  }

  /** Distinct descriptor sets among the nodes. */
  get distinctSets(): number {
    return this.#sets.size;
  }

  /** Starts registering `count` more nodes, all at once. */
  add(count: number): void {
    for (let index = 0; index < count; index++) {
      const node: SimulatedNode = {
        description: simulatedNode(this.#nodes.length, this.#sets),
        call: undefined,
        registered: false,
        attempts: 0,
      };
      this.#nodes.push(node);
      this.#register(node);
    }
  }

  /** The id simulated node `index` is listed under. */
  idOf(index: number): string {
    return nodeIdOf(this.#nodes[index]!.description);
  }

  /** Changes a registered node's state. */
  setState(index: number, state: NodeState): void {
    this.#nodes[index]!.call!.write({ kind: { $case: 'state', value: state }, options: undefined });
  }

  /** Ends a node's registration cleanly. */
  leave(index: number): void {
    const node = this.#nodes[index]!;
    node.registered = false;
    this.#registered--;
    node.call?.end();
    node.call = undefined;
  }

  stop(): void {
    this.#stopped = true;
    for (const node of this.#nodes) node.call?.cancel();
    for (const client of this.#clients) client.close();
  }

  #register(node: SimulatedNode): void {
    if (this.#stopped) return;
    const client = this.#clients[this.#nodes.indexOf(node) % this.#clients.length]!;
    const call = client.register(this.#metadata);
    node.call = call;
    node.attempts++;
    call.on('data', (response: RegisterResponse) => {
      if (response.ack && !node.registered) {
        node.registered = true;
        this.#registered++;
      }
    });
    call.on('error', () => {});
    call.once('status', (ended: StatusObject) => {
      if (node.call !== call || this.#stopped) return;
      node.call = undefined;
      if (node.registered) {
        node.registered = false;
        this.#registered--;
        this.#lost++;
      } else if (ended.code !== status.OK) {
        this.#refusals++;
      }
      setTimeout(() => this.#register(node), backoffDelay(NODE_BACKOFF, node.attempts)).unref();
    });
    call.write({ kind: { $case: 'node', value: node.description }, options: { nodeList: undefined } });
  }
}
