import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, Server, type ServiceError } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { peerIdentities, serverCredentials } from '../../src/common/tls.js';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { NodeState } from '../../src/gen/distributor.js';
import {
  GoodsServiceClient,
  type GoodsServiceServer,
  GoodsServiceService,
  type ListGoodsResponse,
} from '../../src/gen/services.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
// What a project that installs grpc-shop/resolver can import: the package's one entry.
import {
  channelCredentials,
  registerDistributorResolver,
  secureNamingChannelOptions,
} from '../../src/resolver/index.js';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { goodsDescriptorSet } from '../helpers/nodes.js';

let dir: string;
let pki: TestPki;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'resolver-mtls-'));
  pki = makeTestPki(dir, { names: ['distributor', 'goods', 'operator'] });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('distributor:/// under mutual TLS, with what the package entry exports', () => {
  it('watches the list and calls a goods instance, each side proving its certificate name', async () => {
    const distributor = createDistributorServer({
      credentials: serverCredentials(pki.files('distributor')),
      requireCertificateIdentity: true,
      peerIdentities,
    });
    const distributorPort = await distributor.listen('127.0.0.1', 0);
    cleanups.push(() => distributor.stop(100));
    const address = `127.0.0.1:${distributorPort}`;

    const goods = new Server();
    goods.addService(GoodsServiceService, {
      listGoods: (_call: unknown, callback: (error: null, response: ListGoodsResponse) => void) =>
        callback(null, {
          results: [{ id: 1, name: 'tls', category: '', price: 1, description: '' }],
          nextPageToken: '',
        }),
    } as unknown as GoodsServiceServer);
    const goodsPort = await new Promise<number>((resolve, reject) =>
      goods.bindAsync('127.0.0.1:0', serverCredentials(pki.files('goods')), (error, port) =>
        error ? reject(error) : resolve(port),
      ),
    );
    cleanups.push(() => goods.forceShutdown());
    const registration = new RegistrationClient({
      distributor: address,
      node: {
        name: 'goods',
        host: '127.0.0.1',
        port: goodsPort,
        routes: [],
        descriptorSet: goodsDescriptorSet(),
        state: NodeState.NODE_STATE_SERVING,
      },
      credentials: channelCredentials(pki.files('goods'), { expectedName: 'distributor' }),
      channelOptions: secureNamingChannelOptions(pki.files('goods'), 'distributor'),
      backoff: { initialMs: 20, maxMs: 200 },
    });
    registration.start();
    cleanups.push(() => registration.stop(100));
    await new Promise((resolve) => registration.once('registered', resolve));

    const operator = pki.files('operator');
    const resolver = registerDistributorResolver({
      distributor: address,
      credentials: channelCredentials(operator, { expectedName: 'distributor' }),
      channelOptions: secureNamingChannelOptions(operator, 'distributor'),
    });
    cleanups.push(() => resolver.close());
    const client = new GoodsServiceClient(
      'distributor:///shop.v1.GoodsService',
      channelCredentials(operator, { expectedName: 'goods' }),
      secureNamingChannelOptions(operator, 'goods'),
    );
    cleanups.push(() => client.close());
    const name = await new Promise<string>((resolve, reject) =>
      client.listGoods(
        {},
        new Metadata(),
        { deadline: Date.now() + 5_000 },
        (error: ServiceError | null, response) =>
          error ? reject(error) : resolve(response.results[0]!.name),
      ),
    );
    expect(name).toBe('tls');

    // A client that expects another name's certificate reaches nobody, whatever the list says.
    const wrong = new GoodsServiceClient(
      'distributor:///shop.v1.GoodsService',
      channelCredentials(operator, { expectedName: 'members' }),
      secureNamingChannelOptions(operator, 'members'),
    );
    cleanups.push(() => wrong.close());
    const refused = await new Promise<ServiceError | null>((resolve) =>
      wrong.listGoods({}, new Metadata(), { deadline: Date.now() + 5_000 }, (error: ServiceError | null) =>
        resolve(error),
      ),
    );
    expect(refused?.code).toBe(14);
  });
});
