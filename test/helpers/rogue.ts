import {
  type ChannelCredentials,
  type ChannelOptions,
  credentials as grpcCredentials,
  Metadata,
  Server,
  type ServerCredentials,
  ServerCredentials as ServerCredentialsClass,
  type StatusObject,
  status,
} from '@grpc/grpc-js';
import { DistributorServiceClient, type NodeDescription, type Snapshot } from '../../src/gen/distributor.js';
import { type GoodsServiceServer, GoodsServiceService } from '../../src/gen/services.js';
import { send } from './http.js';

/**
 * An attacker's goods server: it answers every GoodsService call (with an empty list) and counts
 * them, so a test can prove that no request ever reached it.
 */
export interface RogueServer {
  readonly port: number;
  /** Calls that reached a handler. */
  readonly calls: number;
  stop(): Promise<void>;
}

export async function startRogueGoods(
  credentials: ServerCredentials = ServerCredentialsClass.createInsecure(),
): Promise<RogueServer> {
  let calls = 0;
  const server = new Server();
  const answer = (_call: unknown, callback: (error: null, value: object) => void): void => {
    calls++;
    callback(null, {});
  };
  const implementation: GoodsServiceServer = {
    createGoods: answer,
    listGoods: (_call, callback) => {
      calls++;
      callback(null, { results: [], nextPageToken: '' });
    },
    deleteGoods: answer,
  } as GoodsServiceServer;
  server.addService(GoodsServiceService, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return {
    port,
    get calls() {
      return calls;
    },
    stop: () =>
      new Promise((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
}

/** How a registration attempt ended: listed under an id (and still open), or refused with a status. */
export type RegistrationOutcome =
  | { readonly listed: true; readonly nodeId: string; close(): void }
  | { readonly listed: false; readonly code: status; readonly details: string };

/** Options of {@link attemptRegistration}. */
export interface AttemptOptions {
  token?: string;
  credentials?: ChannelCredentials;
  /** Channel options, e.g. the TLS server name that goes with secure naming. */
  channelOptions?: ChannelOptions;
}

/**
 * Opens a Register stream as any grpc-js client could, with the public contract only, and reports
 * whether the distributor listed the node. A listed node stays listed until `close()`.
 */
export function attemptRegistration(
  distributor: string,
  node: NodeDescription,
  { token, credentials = grpcCredentials.createInsecure(), channelOptions = {} }: AttemptOptions = {},
): Promise<RegistrationOutcome> {
  const client = new DistributorServiceClient(distributor, credentials, {
    ...channelOptions,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });
  const metadata = new Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  const call = client.register(metadata);
  return new Promise((resolve) => {
    call.on('data', (response: { nodeId: string }) =>
      resolve({
        listed: true,
        nodeId: response.nodeId,
        close: () => {
          call.cancel();
          client.close();
        },
      }),
    );
    call.on('error', () => {});
    call.on('status', (result: StatusObject) => {
      client.close();
      resolve({ listed: false, code: result.code, details: result.details });
    });
    call.write({ kind: { $case: 'node', value: node }, options: undefined });
  });
}

/** How a List call ended. */
export function attemptList(
  distributor: string,
  { token, credentials = grpcCredentials.createInsecure(), channelOptions = {} }: AttemptOptions = {},
): Promise<{ code: status; snapshot: Snapshot }> {
  const client = new DistributorServiceClient(distributor, credentials, channelOptions);
  const metadata = new Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  return new Promise((resolve) => {
    client.list({}, metadata, (error, response) => {
      client.close();
      resolve({
        code: error?.code ?? status.OK,
        snapshot: response?.snapshot ?? { revision: 0, nodes: [], instanceId: '' },
      });
    });
  });
}

/** How the first message of a Watch stream went. */
export function attemptWatch(
  distributor: string,
  { token, credentials = grpcCredentials.createInsecure(), channelOptions = {} }: AttemptOptions = {},
): Promise<{ code: status }> {
  const client = new DistributorServiceClient(distributor, credentials, channelOptions);
  const metadata = new Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  const call = client.watch({ subscription: undefined }, metadata);
  return new Promise((resolve) => {
    call.on('data', () => {
      call.cancel();
      client.close();
      resolve({ code: status.OK });
    });
    call.on('error', (error: { code: status }) => {
      client.close();
      resolve({ code: error.code });
    });
  });
}

/**
 * Real traffic during an attack: `count` GETs of `url`, `concurrency` at a time, while `attack`
 * runs. Resolves with how many answered 200 with errorcode 0 and the failures seen.
 */
export async function trafficDuring(
  url: string,
  attack: () => Promise<void>,
  { count = 200, concurrency = 8 }: { count?: number; concurrency?: number } = {},
): Promise<{ ok: number; total: number; failures: string[] }> {
  let next = 0;
  let ok = 0;
  const failures: string[] = [];
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      try {
        const answer = await send(url);
        if (answer.status === 200 && answer.body.includes('"errorcode":0')) ok++;
        else failures.push(`${answer.status} ${answer.body.slice(0, 120)}`);
      } catch (error) {
        failures.push(String(error));
      }
    }
  };
  await Promise.all([attack(), ...Array.from({ length: concurrency }, worker)]);
  return { ok, total: count, failures };
}
