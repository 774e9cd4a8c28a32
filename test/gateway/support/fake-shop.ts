import { type ServerUnaryCall, type sendUnaryData, status } from '@grpc/grpc-js';
import { registrationDescriptorSet } from '../../../src/common/descriptors.js';
import {
  type Goods,
  type GoodsServiceServer,
  type MembersServiceServer,
  MembersServiceService,
  type Purchase,
  type PurchasesServiceServer,
  PurchasesServiceService,
} from '../../../src/gen/services.js';
import { type Closer, startGoodsService, startService, type TestService } from './cluster.js';

/**
 * In-memory stand-ins for the shop's services, on the real contracts and with the descriptor sets
 * (so the REST routes) the real services register: enough to check the gateway against the seed run's bodies, not the services.
 */

/** The descriptor set a real shop service registers: its routes. */
export function shopDescriptorSet(service: string): Uint8Array {
  return registrationDescriptorSet([service]);
}

const invalid = { code: status.INVALID_ARGUMENT, details: 'Invalid Parameters' };
const noData = { code: status.NOT_FOUND, details: 'no data' };

/** Hooks a test uses to watch or slow a fake service. */
/** `count` goods whose descriptions are `descriptionBytes` long each: an answer of a size a test needs. */
export function largeGoods(count: number, descriptionBytes: number): Goods[] {
  const description = 'x'.repeat(descriptionBytes);
  return Array.from({ length: count }, (_, index) => ({
    id: index + 1,
    name: `goods ${index + 1}`,
    category: 'c',
    price: 1,
    description,
  }));
}

export interface FakeHooks {
  /**
   * Called with every call before it is answered; a promise delays the answer. A rejection is
   * answered with its error's numeric `code` (a gRPC status), INTERNAL when it has none.
   */
  onCall?: (method: string, call: ServerUnaryCall<unknown, unknown>) => Promise<void> | void;
}

export interface FakeGoods extends TestService {
  readonly goods: Goods[];
  /** Calls received, by method name. */
  readonly calls: Record<string, number>;
}

export async function startFakeGoods(
  closer: Closer,
  distributor: string,
  hooks: FakeHooks = {},
  goods: Goods[] = [],
): Promise<FakeGoods> {
  const calls: Record<string, number> = {};
  let nextId = goods.reduce((max, item) => Math.max(max, item.id), 0) + 1;
  /** Counts the call, runs the test's hook, then answers; a hook that throws is an internal error. */
  const handle = <Request, Response>(
    method: string,
    call: ServerUnaryCall<Request, Response>,
    callback: sendUnaryData<Response>,
    answer: (request: Request) => void,
  ): void => {
    calls[method] = (calls[method] ?? 0) + 1;
    Promise.resolve(hooks.onCall?.(method, call as ServerUnaryCall<unknown, unknown>)).then(
      () => answer(call.request),
      (error: Error & { code?: unknown }) =>
        callback({
          code: typeof error.code === 'number' ? error.code : status.INTERNAL,
          details: error.message,
        }),
    );
  };
  const implementation: GoodsServiceServer = {
    createGoods: (call, callback) =>
      handle('CreateGoods', call, callback, ({ name, category, price, description }) => {
        if (!name || !category || price === undefined || description === undefined) return callback(invalid);
        const id = nextId++;
        goods.push({ id, name, category, price, description });
        callback(null, { id });
      }),
    listGoods: (call, callback) =>
      handle('ListGoods', call, callback, () =>
        goods.length ? callback(null, { results: goods, nextPageToken: '' }) : callback(noData),
      ),
    deleteGoods: (call, callback) =>
      handle('DeleteGoods', call, callback, ({ id }) => {
        if (id === undefined || id < 1) return callback(invalid);
        const index = goods.findIndex((item) => item.id === id);
        if (index >= 0) goods.splice(index, 1);
        callback(null, {});
      }),
  };
  const service = await startGoodsService(closer, distributor, implementation);
  return Object.assign(service, { goods, calls });
}

export async function startFakeMembers(closer: Closer, distributor: string): Promise<TestService> {
  const members = new Map<string, { id: number; password: string }>();
  let nextId = 1;
  const implementation: MembersServiceServer = {
    createMember: ({ request }, callback) => {
      if (!request.username || !request.password) return callback(invalid);
      if (members.has(request.username)) {
        return callback({ code: status.ALREADY_EXISTS, details: 'The username is already taken' });
      }
      const id = nextId++;
      members.set(request.username, { id, password: request.password });
      callback(null, { userid: id });
    },
    signIn: ({ request }, callback) => {
      const member = members.get(request.username ?? '');
      if (!member || member.password !== request.password) {
        return callback({ code: status.UNAUTHENTICATED, details: 'Invalid password' });
      }
      callback(null, { userid: member.id });
    },
    deleteMember: ({ request }, callback) => {
      if (!request.username) return callback(invalid);
      members.delete(request.username);
      callback(null, {});
    },
  };
  return startService(closer, {
    distributor,
    name: 'members',
    definition: MembersServiceService,
    implementation,
    descriptorSet: shopDescriptorSet('shop.v1.MembersService'),
  });
}

export async function startFakePurchases(
  closer: Closer,
  distributor: string,
  date: Date,
): Promise<TestService> {
  const purchases: (Purchase & { userid: number })[] = [];
  const implementation: PurchasesServiceServer = {
    createPurchase: ({ request }, callback) => {
      if (!request.userid || !request.goodsid) return callback(invalid);
      const id = purchases.length + 1;
      purchases.push({ id, userid: request.userid, goodsid: request.goodsid, date });
      callback(null, { id });
    },
    listPurchases: ({ request }, callback) => {
      if (!request.userid) return callback(invalid);
      const results = purchases
        .filter((purchase) => purchase.userid === request.userid)
        .map(({ id, goodsid, date: when }) => ({ id, goodsid, date: when }));
      return results.length ? callback(null, { results, nextPageToken: '' }) : callback(noData);
    },
  };
  return startService(closer, {
    distributor,
    name: 'purchases',
    definition: PurchasesServiceService,
    implementation,
    descriptorSet: shopDescriptorSet('shop.v1.PurchasesService'),
  });
}
