import { request } from 'node:http';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import {
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { NodeState } from '../../src/gen/distributor.js';
import { GoodsServiceService } from '../../src/gen/services.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { type HttpResult, http, httpJson } from '../helpers/http.js';
import { startSilentServer } from '../helpers/silent-server.js';
import { Closer, startDistributor, startGateway, startService, waitForRoute } from './support/cluster.js';
import { descriptorSetOf, field, httpOptions, message, registryOf, Type } from './support/descriptors.js';
import { type FakeHooks, shopDescriptorSet, startFakeGoods } from './support/fake-shop.js';

const ROW = { id: 1, name: 'test Goods', category: 'tests', price: 1000, description: 'test' };
/** A POST /goods body. */
const NEW_GOODS = { name: 'n', category: 'c', price: 1, description: 'd' };
const LIST_BODY = (key: number) =>
  `{"key":${key},"errorcode":0,"errormessage":"success","results":[{"id":1,"name":"test Goods","category":"tests","price":1000,"description":"test"}]}`;

function keyOf(result: HttpResult): number {
  return Number(/^\{"key":(\d+),/.exec(result.body)?.[1]);
}

/**
 * A service the gateway has never heard of: its contract, REST routes included, exists only in this
 * test. By default Greet is `GET /greetings` (query), `GET /greetings/{name}` and
 * `PATCH /greetings/{name}` (body `*`), showing `lines`, `count` and `at`.
 */
function greeterFile(
  options = httpOptions('GET /greetings', {
    additional: ['GET /greetings/{name}', ['PATCH /greetings/{name}', '*']],
    envelope: ['lines', 'count', 'at'],
  }),
) {
  return create(FileDescriptorProtoSchema, {
    name: 'test/greeter.proto',
    package: 'test.greeter.v1',
    syntax: 'proto3',
    dependency: ['google/protobuf/timestamp.proto'],
    messageType: [
      message('GreetRequest', [field('name', 1, Type.STRING), field('times', 2, Type.UINT32)]),
      message('GreetResponse', [
        field('lines', 1, Type.STRING, { repeated: true }),
        field('count', 2, Type.INT64),
        field('at', 3, Type.MESSAGE, { typeName: '.google.protobuf.Timestamp' }),
        field('internal_note', 4, Type.STRING),
      ]),
    ],
    service: [
      {
        name: 'Greeter',
        method: [
          {
            name: 'Greet',
            inputType: '.test.greeter.v1.GreetRequest',
            outputType: '.test.greeter.v1.GreetResponse',
            options,
          },
        ],
      } as never,
    ],
  });
}

/** The Greeter service of `file` (see greeterFile), its messages encoded by their descriptors. */
function greeterDefinition(file: ReturnType<typeof greeterFile>): ServiceDefinition {
  const registry = registryOf(file);
  const GreetRequest = registry.getMessage('test.greeter.v1.GreetRequest')!;
  const GreetResponse = registry.getMessage('test.greeter.v1.GreetResponse')!;
  return {
    Greet: {
      path: '/test.greeter.v1.Greeter/Greet',
      requestStream: false,
      responseStream: false,
      requestSerialize: (value: Parameters<typeof toBinary>[1]) => Buffer.from(toBinary(GreetRequest, value)),
      requestDeserialize: (bytes: Buffer) => fromBinary(GreetRequest, bytes),
      responseSerialize: (value: Parameters<typeof toBinary>[1]) =>
        Buffer.from(toBinary(GreetResponse, value)),
      responseDeserialize: (bytes: Buffer) => fromBinary(GreetResponse, bytes),
    },
  };
}

describe('gateway routing, balancing and upstream faults', () => {
  const shared = new Closer();
  const perTest = new Closer();
  let distributor: string;

  beforeAll(async () => {
    distributor = (await startDistributor(shared)).address;
  });
  afterEach(() => perTest.closeAll());
  afterAll(() => shared.closeAll());

  it('routes to a service defined only in this test, registered while the gateway runs', async () => {
    const { gateway, port } = await startGateway(perTest, distributor);
    await startFakeGoods(perTest, distributor, {}, [ROW]);
    await waitForRoute(gateway, 'GET /goods', 1);
    const before = await httpJson(port, 'GET', '/greetings?name=Ada&times=2');
    expect(before.status).toBe(404);

    const file = greeterFile();
    const GreetResponse = registryOf(file).getMessage('test.greeter.v1.GreetResponse')!;
    const definition = greeterDefinition(file);
    const greeter = await startService(perTest, {
      distributor,
      name: 'greeter',
      definition,
      implementation: {
        Greet: (
          call: ServerUnaryCall<{ name: string; times: number }, unknown>,
          callback: sendUnaryData<unknown>,
        ) => {
          const { name, times } = call.request;
          callback(
            null,
            create(GreetResponse, {
              lines: Array.from({ length: times }, () => `Hello, ${name}`),
              count: BigInt(times),
              at: { seconds: 1604503907n, nanos: 5_000_000 },
              internalNote: 'not shown',
            } as never),
          );
        },
      },
      descriptorSet: descriptorSetOf(file),
    });
    await waitForRoute(gateway, 'GET /greetings', 1);

    const greeted = await httpJson(port, 'GET', '/greetings?name=Ada&times=2');
    expect(greeted.status).toBe(200);
    expect(greeted.body).toBe(
      `{"key":${keyOf(greeted)},"errorcode":0,"errormessage":"success","lines":["Hello, Ada","Hello, Ada"],"count":2,"at":"2020-11-04T15:31:47.005Z"}`,
    );
    const patched = await httpJson(port, 'PATCH', '/greetings/Bob', { name: 'Eve', times: '1' });
    expect(patched.body).toBe(
      `{"key":${keyOf(patched)},"errorcode":0,"errormessage":"success","lines":["Hello, Bob"],"count":1,"at":"2020-11-04T15:31:47.005Z"}`,
    );
    const byPath = await httpJson(port, 'GET', '/greetings/Ad%C3%A1?times=1');
    expect(JSON.parse(byPath.body).lines).toEqual(['Hello, Adá']);
    const invalid = await httpJson(port, 'GET', '/greetings?name=Ada&times=-1');
    expect(invalid.body).toBe(`{"key":${keyOf(invalid)},"errorcode":1,"errormessage":"Invalid Parameters"}`);
    expect((await httpJson(port, 'GET', '/goods')).status).toBe(200);

    await greeter.stop();
    await waitForRoute(gateway, 'GET /greetings', 0);
    const gone = await httpJson(port, 'GET', '/greetings?name=Ada');
    expect(gone.status).toBe(503);
  });

  it('balances round robin across two instances', async () => {
    const { gateway, port } = await startGateway(perTest, distributor);
    const first = await startFakeGoods(perTest, distributor, {}, [ROW]);
    const second = await startFakeGoods(perTest, distributor, {}, [ROW]);
    await waitForRoute(gateway, 'GET /goods', 2);
    for (let count = 0; count < 10; count++) {
      const result = await httpJson(port, 'GET', '/goods');
      expect(result.body).toBe(LIST_BODY(keyOf(result)));
    }
    expect([first.calls.ListGoods, second.calls.ListGoods]).toEqual([5, 5]);
  });

  it('moves all traffic off a draining instance without a failed request', async () => {
    const { gateway, port } = await startGateway(perTest, distributor);
    const draining = await startFakeGoods(perTest, distributor, {}, [ROW]);
    const staying = await startFakeGoods(perTest, distributor, {}, [ROW]);
    await waitForRoute(gateway, 'GET /goods', 2);

    const statuses: number[] = [];
    let running = true;
    const worker = async (): Promise<void> => {
      while (running) statuses.push((await httpJson(port, 'GET', '/goods')).status);
    };
    const workers = [worker(), worker(), worker(), worker()];
    await vi.waitFor(() => expect(draining.calls.ListGoods).toBeGreaterThan(10), { timeout: 10_000 });
    draining.drain();
    await waitForRoute(gateway, 'GET /goods', 1, 1);
    const drainedCalls = draining.calls.ListGoods;
    const stayingCalls = staying.calls.ListGoods ?? 0;
    // Time enough for a loaded machine: the point is where the calls go, not how fast.
    await vi.waitFor(() => expect(staying.calls.ListGoods).toBeGreaterThan(stayingCalls + 40), {
      timeout: 10_000,
    });
    running = false;
    await Promise.all(workers);

    // Calls already on their way when the snapshot arrived may still land: four workers, four calls.
    expect(draining.calls.ListGoods! - drainedCalls).toBeLessThanOrEqual(4);
    const later = draining.calls.ListGoods;
    for (let count = 0; count < 10; count++) expect((await httpJson(port, 'GET', '/goods')).status).toBe(200);
    expect(draining.calls.ListGoods).toBe(later);
    expect(new Set(statuses)).toEqual(new Set([200]));
  });

  it('answers 503 with Retry-After, promptly, when the only instance drains or leaves', async () => {
    const { gateway, port } = await startGateway(perTest, distributor, { retryAfterSeconds: 2 });
    const only = await startFakeGoods(perTest, distributor, {}, [ROW]);
    await waitForRoute(gateway, 'GET /goods', 1);

    only.drain();
    await waitForRoute(gateway, 'GET /goods', 0, 1);
    let started = Date.now();
    const drained = await httpJson(port, 'GET', '/goods');
    expect(Date.now() - started).toBeLessThan(500);
    expect(drained.status).toBe(503);
    expect(drained.headers['retry-after']).toBe('2');
    expect(drained.body).toBe(
      `{"key":${keyOf(drained)},"errorcode":1,"errormessage":"No serving instance for GET /goods"}`,
    );

    await only.stop();
    await waitForRoute(gateway, 'GET /goods', 0, 0);
    started = Date.now();
    const left = await httpJson(port, 'POST', '/goods', { name: 'n' });
    expect(Date.now() - started).toBeLessThan(500);
    expect(left.status).toBe(503);
    expect(left.headers['retry-after']).toBe('2');
    expect(left.body).toBe(
      `{"key":${keyOf(left)},"errorcode":1,"errormessage":"No serving instance for POST /goods"}`,
    );
    // The path is echoed cut, as a 404's is: a client's 16 KB path is not sent back whole.
    const long = `/goods/${'7'.repeat(4_000)}`;
    const echoed = await httpJson(port, 'DELETE', long);
    expect(echoed.status).toBe(503);
    expect(JSON.parse(echoed.body).errormessage).toBe(`No serving instance for DELETE ${long.slice(0, 200)}`);

    // Back on another port: served again, nothing touched on the gateway.
    await startFakeGoods(perTest, distributor, {}, [ROW]);
    await waitForRoute(gateway, 'GET /goods', 1);
    const back = await httpJson(port, 'GET', '/goods');
    expect(back.body).toBe(LIST_BODY(keyOf(back)));
  });

  it('never retries a POST on another instance when one dies, retries a GET, and then passes the dead one over', async () => {
    const { gateway, port } = await startGateway(perTest, distributor);
    const dying = await startFakeGoods(perTest, distributor, {}, [ROW]);
    const healthy = await startFakeGoods(perTest, distributor, {}, [ROW]);
    await waitForRoute(gateway, 'GET /goods', 2);
    // Warm both channels, then kill one server while it is still registered (as a crash looks
    // until the distributor notices).
    for (let count = 0; count < 2; count++) await httpJson(port, 'GET', '/goods');
    dying.server.forceShutdown();

    // A POST that meets the dead instance (its connection gone, not yet known to fail) is not
    // retried: it may have been done. The lost connection is made again at once, and fails, so at
    // most the first POST meets it: the gateway may already pass the instance over.
    const created = [];
    for (let count = 0; count < 2; count++) {
      created.push(
        await httpJson(port, 'POST', '/goods', { name: 'n', category: 'c', price: 1, description: '' }),
      );
    }
    const statuses = created.map((result) => result.status);
    expect([
      [200, 200],
      [503, 200],
    ]).toContainEqual(statuses);
    const refused = created.find((result) => result.status === 503);
    if (refused) {
      expect(refused.headers['retry-after']).toBe('1');
      expect(refused.body).toBe(
        `{"key":${keyOf(refused)},"errorcode":1,"errormessage":"Service unavailable"}`,
      );
    }
    // Its one row, and those POSTs that it took.
    const taken = statuses.filter((status) => status === 200).length;
    expect(healthy.goods).toHaveLength(1 + taken);

    for (let count = 0; count < 4; count++) {
      const result = await httpJson(port, 'GET', '/goods');
      expect(result.status).toBe(200);
    }
    // Still listed, but failing to connect: passed over while the healthy one can take the calls.
    for (let count = 0; count < 4; count++) {
      const result = await httpJson(port, 'POST', '/goods', {
        name: 'n',
        category: 'c',
        price: 1,
        description: '',
      });
      expect(result.status).toBe(200);
    }
    expect(healthy.goods).toHaveLength(1 + taken + 4);
  });

  it('gives an instance passed over while it failed calls again once it answers at its address', async () => {
    const { gateway, port } = await startGateway(perTest, distributor);
    const healthy = await startFakeGoods(perTest, distributor, {}, [ROW]);
    const returning = await startFakeGoods(perTest, distributor, {}, [ROW]);
    await waitForRoute(gateway, 'GET /goods', 2);
    for (let count = 0; count < 2; count++) await httpJson(port, 'GET', '/goods');
    // Its server goes and comes back on the same port, its registration kept (a quick restart).
    returning.server.forceShutdown();
    for (let count = 0; count < 4; count++) await httpJson(port, 'GET', '/goods');
    const before = healthy.calls.ListGoods ?? 0;
    const again = new Server();
    let answered = 0;
    again.addService(GoodsServiceService, {
      listGoods: (_call: unknown, callback: sendUnaryData<unknown>) => {
        answered++;
        callback(null, { results: [ROW], nextPageToken: '' });
      },
    });
    await new Promise<void>((resolve, reject) =>
      again.bindAsync(`127.0.0.1:${returning.port}`, ServerCredentials.createInsecure(), (error) =>
        error ? reject(error) : resolve(),
      ),
    );
    perTest.add(again, (server) => server.forceShutdown());
    await vi.waitFor(
      async () => {
        expect((await httpJson(port, 'GET', '/goods')).status).toBe(200);
        expect(answered).toBeGreaterThan(0);
      },
      { timeout: 15_000, interval: 100 },
    );
    expect(healthy.calls.ListGoods).toBeGreaterThan(before);
  }, 20_000);

  it('passes over a listed instance it cannot reach (it accepts connections and never speaks gRPC): no request waits on it', async () => {
    const { gateway, port } = await startGateway(perTest, distributor, { deadlineMs: 1_000 });
    const healthy = await startFakeGoods(perTest, distributor, {}, [ROW]);
    const silent = perTest.add(await startSilentServer(), (server) => server.close());
    const unreachable = new RegistrationClient({
      distributor,
      node: {
        name: 'goods',
        host: '127.0.0.1',
        port: silent.port,
        routes: [],
        descriptorSet: Buffer.from(shopDescriptorSet('shop.v1.GoodsService')),
        state: NodeState.NODE_STATE_SERVING,
      },
      backoff: { initialMs: 20, maxMs: 200 },
    });
    perTest.add(unreachable, (registration) => registration.stop(500));
    unreachable.start();
    await waitForRoute(gateway, 'GET /goods', 2);
    const started = performance.now();
    const statuses = [];
    for (let count = 0; count < 10; count++) statuses.push((await httpJson(port, 'GET', '/goods')).status);
    // Before, every second request waited its whole deadline on the silent instance: 504.
    expect(statuses).toEqual(Array(10).fill(200));
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(healthy.calls.ListGoods).toBe(10);
  });

  it('answers 504 when the service does not answer within the deadline', async () => {
    const { gateway, port } = await startGateway(perTest, distributor, { deadlineMs: 200 });
    const hooks: FakeHooks = { onCall: () => new Promise<void>(() => {}) };
    await startFakeGoods(perTest, distributor, hooks, [ROW]);
    await waitForRoute(gateway, 'GET /goods', 1);
    const started = Date.now();
    const result = await httpJson(port, 'GET', '/goods');
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(result.status).toBe(504);
    expect(result.body).toBe(
      `{"key":${keyOf(result)},"errorcode":1,"errormessage":"Upstream deadline exceeded"}`,
    );
  });

  it('answers a write past the deadline 504 saying it may still happen: the service had it', async () => {
    const { gateway, port } = await startGateway(perTest, distributor, { deadlineMs: 200 });
    const hooks: FakeHooks = { onCall: () => new Promise<void>(() => {}) };
    await startFakeGoods(perTest, distributor, hooks, [ROW]);
    await waitForRoute(gateway, 'POST /goods', 1);
    const result = await httpJson(port, 'POST', '/goods', NEW_GOODS);
    expect(result.status).toBe(504);
    expect(result.body).toBe(
      `{"key":${keyOf(result)},"errorcode":1,"errormessage":"Upstream deadline exceeded: the write may still happen"}`,
    );
  });

  it('answers 500 with a plain message when the service fails, never its details', async () => {
    const { gateway, port } = await startGateway(perTest, distributor);
    const hooks: FakeHooks = {
      onCall: () => Promise.reject(new Error('ECONNREFUSED 10.0.0.7:3306 at Pool.query')),
    };
    await startFakeGoods(perTest, distributor, hooks, [ROW]);
    await waitForRoute(gateway, 'GET /goods', 1);
    const result = await httpJson(port, 'GET', '/goods');
    expect(result.status).toBe(500);
    expect(result.body).toBe(
      `{"key":${keyOf(result)},"errorcode":1,"errormessage":"Internal error in the service"}`,
    );
  });

  it('answers a write the service could not confirm (UNKNOWN) 500 saying it may have been done; a read 500 plainly', async () => {
    const { gateway, port } = await startGateway(perTest, distributor);
    const unconfirmed = Object.assign(new Error('the connection to the database was lost'), {
      code: status.UNKNOWN,
    });
    await startFakeGoods(perTest, distributor, { onCall: () => Promise.reject(unconfirmed) }, [ROW]);
    await waitForRoute(gateway, 'POST /goods', 1);
    const write = await httpJson(port, 'POST', '/goods', NEW_GOODS);
    expect(write.status).toBe(500);
    expect(write.headers['retry-after']).toBeUndefined();
    expect(write.body).toBe(
      `{"key":${keyOf(write)},"errorcode":1,"errormessage":"Internal error in the service: the write may have been done"}`,
    );
    const read = await httpJson(port, 'GET', '/goods');
    expect(read.status).toBe(500);
    expect(read.body).toBe(
      `{"key":${keyOf(read)},"errorcode":1,"errormessage":"Internal error in the service"}`,
    );
  });

  it('answers 500 when a service answers bytes that do not match the descriptors it registered', async () => {
    const { gateway, port } = await startGateway(perTest, distributor);
    const file = greeterFile(httpOptions('GET /lies', { envelope: ['lines'] }));
    const GreetRequest = registryOf(file).getMessage('test.greeter.v1.GreetRequest')!;
    await startService(perTest, {
      distributor,
      name: 'liar',
      definition: {
        Greet: {
          path: '/test.greeter.v1.Greeter/Greet',
          requestStream: false,
          responseStream: false,
          requestSerialize: (value: Buffer) => value,
          requestDeserialize: (bytes: Buffer) => fromBinary(GreetRequest, bytes),
          // Field 1 is `repeated string lines`; this sends it as a varint.
          responseSerialize: () => Buffer.from([0x08, 0x01]),
          responseDeserialize: (bytes: Buffer) => bytes,
        },
      },
      implementation: { Greet: (_call: unknown, callback: sendUnaryData<unknown>) => callback(null, {}) },
      descriptorSet: descriptorSetOf(file),
    });
    await waitForRoute(gateway, 'GET /lies', 1);
    const result = await httpJson(port, 'GET', '/lies');
    expect(result.status).toBe(500);
    expect(result.body).toBe(
      `{"key":${keyOf(result)},"errorcode":1,"errormessage":"Internal error in the service"}`,
    );
  });

  it('routes a template that ends in a verb, as custom methods in the AIP-136 style do', async () => {
    const { gateway, port } = await startGateway(perTest, distributor);
    const file = greeterFile(httpOptions('GET /greetings/{name}:shout', { envelope: ['lines'] }));
    const GreetResponse = registryOf(file).getMessage('test.greeter.v1.GreetResponse')!;
    await startService(perTest, {
      distributor,
      name: 'shouter',
      definition: greeterDefinition(file),
      implementation: {
        Greet: (call: ServerUnaryCall<{ name: string }, unknown>, callback: sendUnaryData<unknown>) =>
          callback(null, create(GreetResponse, { lines: [call.request.name.toUpperCase()] } as never)),
      },
      descriptorSet: descriptorSetOf(file),
    });
    await waitForRoute(gateway, 'GET /greetings/*:shout', 1);
    const shouted = await httpJson(port, 'GET', '/greetings/Ada:shout');
    expect(shouted.body).toBe(
      `{"key":${keyOf(shouted)},"errorcode":0,"errormessage":"success","lines":["ADA"]}`,
    );
    // Without the verb, the path is no route's.
    expect((await httpJson(port, 'GET', '/greetings/Ada')).status).toBe(404);
  });

  it('takes a JSON body that is not an object for a route whose body is one scalar field', async () => {
    const { gateway, port } = await startGateway(perTest, distributor);
    const file = greeterFile(
      httpOptions('PUT /greetings/{name}', {
        body: 'times',
        additional: [['PATCH /greetings', '*']],
        envelope: ['lines'],
      }),
    );
    const GreetResponse = registryOf(file).getMessage('test.greeter.v1.GreetResponse')!;
    await startService(perTest, {
      distributor,
      name: 'repeater',
      definition: greeterDefinition(file),
      implementation: {
        Greet: (
          call: ServerUnaryCall<{ name: string; times: number }, unknown>,
          callback: sendUnaryData<unknown>,
        ) =>
          callback(
            null,
            create(GreetResponse, { lines: [`${call.request.name} ${call.request.times}`] } as never),
          ),
      },
      descriptorSet: descriptorSetOf(file),
    });
    await waitForRoute(gateway, 'PUT /greetings/*', 1);
    // The body is the value of `times`, as the OpenAPI document says: a number, or a string of digits.
    for (const body of [3, '3']) {
      const put = await httpJson(port, 'PUT', '/greetings/Ada', body);
      expect(put.body, JSON.stringify(body)).toBe(
        `{"key":${keyOf(put)},"errorcode":0,"errormessage":"success","lines":["Ada 3"]}`,
      );
    }
    const notANumber = await httpJson(port, 'PUT', '/greetings/Ada', { times: 3 });
    expect(notANumber.body).toBe(
      `{"key":${keyOf(notANumber)},"errorcode":1,"errormessage":"Invalid Parameters"}`,
    );
    // A route whose body is the whole message still takes only an object.
    const list = await httpJson(port, 'PATCH', '/greetings', [3]);
    expect(list).toMatchObject({
      status: 400,
      body: `{"key":${keyOf(list)},"errorcode":1,"errormessage":"The JSON body must be an object"}`,
    });
  });

  it('cancels the upstream call when the HTTP client goes away', async () => {
    const { gateway, port } = await startGateway(perTest, distributor);
    let cancelled = false;
    let arrived = false;
    const hooks: FakeHooks = {
      onCall: (_method, call) =>
        new Promise<void>(() => {
          arrived = true;
          call.on('cancelled', () => {
            cancelled = true;
          });
        }),
    };
    await startFakeGoods(perTest, distributor, hooks, [ROW]);
    await waitForRoute(gateway, 'GET /goods', 1);
    const outgoing = request({ host: '127.0.0.1', port, path: '/goods', agent: false });
    const pending = new Promise((resolve) => outgoing.on('error', () => resolve('aborted')));
    outgoing.end();
    await vi.waitFor(() => expect(arrived).toBe(true));
    outgoing.destroy();
    expect(await pending).toBe('aborted');
    await vi.waitFor(() => expect(cancelled).toBe(true));
    expect((await http(port, 'GET', '/nope')).status).toBe(404);
  });
});
