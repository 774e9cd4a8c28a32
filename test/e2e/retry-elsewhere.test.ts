import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { NodeState } from '../../src/gen/distributor.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { createServiceServer } from '../../src/services/common/service-server.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { Closer, startDistributor, startGateway, waitForRoute } from '../gateway/support/cluster.js';
import { startFakeGoods } from '../gateway/support/fake-shop.js';
import { type HttpResult, httpJson, send } from '../helpers/http.js';
import { goodsDescriptorSet } from '../helpers/nodes.js';
import { sample } from '../helpers/prometheus.js';
import { spawnComponent } from './support/processes.js';

/**
 * docs/rest.md: a call cut under gRPC (an instance killed mid-request) "is not a service's error:
 * 503 with Retry-After (GET and DELETE are retried once elsewhere first) … A POST so cut is 504,
 * "The service was cut off before it answered: the write may still happen" (unless a retry
 * elsewhere, with its Idempotency-Key, got an answer)"; and "GET, DELETE and a POST with an
 * Idempotency-Key refused with UNAVAILABLE are retried once on another instance; a POST without one
 * is not". Two instances of goods registered with a real distributor, a real gateway.
 */

const json = { 'Content-Type': 'application/json' };
const goods = (name: string) => JSON.stringify({ name, category: 'c', price: 1, description: 'd' });

/** The gateway's `grpc_client_started_total` of one GoodsService method. */
async function started(gatewayPort: number, method: string): Promise<number> {
  const text = (await httpJson(gatewayPort, 'GET', '/metrics')).body;
  return sample(text, 'grpc_client_started_total', { grpc_method: method }) ?? 0;
}

describe('one of two goods instances killed with requests in flight', () => {
  const closer = new Closer();
  const dataDir = mkdtempSync(join(tmpdir(), 'retry-elsewhere-'));
  afterAll(async () => {
    await closer.closeAll();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Registers goods at `port` with the distributor, as the instance there would. */
  function register(distributor: string, port: number): void {
    const registration = new RegistrationClient({
      distributor,
      node: {
        name: 'goods',
        host: '127.0.0.1',
        port,
        routes: [],
        descriptorSet: goodsDescriptorSet(),
        state: NodeState.NODE_STATE_SERVING,
      },
      backoff: { initialMs: 20, maxMs: 200 },
    });
    registration.start();
    closer.add(registration, (client) => client.stop(100));
  }

  it('GET, DELETE and the keyed POST are answered by the other; the unkeyed POST is 504, "the write may still happen"', async () => {
    const distributor = (await startDistributor(closer)).address;
    // The real goods server on SQLite in a process of its own (the test registers it: the
    // distributor keeps listing it after its death, as until a crash is noticed).
    const first = spawnComponent('test/gateway/fixtures/freezable-goods.ts', [dataDir], {});
    closer.add(first, (child) => {
      child.child.kill('SIGKILL');
    });
    const firstPort = Number(/on (\d+)/.exec(await first.waitForLine(/goods listening on \d+/))![1]);
    register(distributor, firstPort);
    const { gateway, port } = await startGateway(closer, distributor);
    await waitForRoute(gateway, 'POST /goods', 1);
    for (const name of ['one', 'two']) {
      expect(
        (await send(`http://127.0.0.1:${port}/goods`, { method: 'POST', headers: json, body: goods(name) }))
          .status,
      ).toBe(200);
    }

    // Frozen: it takes the calls on its connection and answers none.
    first.child.kill('SIGSTOP');
    const methods = ['ListGoods', 'DeleteGoods', 'CreateGoods'];
    const before = await Promise.all(methods.map((method) => started(port, method)));
    const url = `http://127.0.0.1:${port}/goods`;
    const answers: Promise<HttpResult>[] = [
      send(url),
      send(`${url}?id=1`, { method: 'DELETE' }),
      send(url, {
        method: 'POST',
        headers: { ...json, 'Idempotency-Key': 'killed-1' },
        body: goods('keyed'),
      }),
      send(url, { method: 'POST', headers: json, body: goods('unkeyed') }),
    ];
    await vi.waitFor(async () => {
      const now = await Promise.all(methods.map((method) => started(port, method)));
      expect(now.map((count, index) => count - before[index]!)).toEqual([1, 1, 2]);
    });

    // A second instance on the same store, then the first killed with the four calls on it.
    const second = createServiceServer(goodsService, {
      store: goodsService.stores.sqlite(join(dataDir, 'goods.sqlite')),
    });
    register(distributor, await second.listen('127.0.0.1', 0));
    closer.add(second, (server) => server.stop(100));
    await waitForRoute(gateway, 'POST /goods', 2);
    first.child.kill('SIGKILL');

    const [list, deleted, keyed, unkeyed] = await Promise.all(answers);
    expect(list!.status).toBe(200);
    // Retried after or before the DELETE and the keyed POST were: one of the lists they leave.
    expect(list!.body).toMatch(/^\{"key":\d+,"errorcode":0,"errormessage":"success","results":\[/);
    expect(deleted!.status).toBe(200);
    expect(deleted!.body).toMatch(/^\{"key":\d+,"errorcode":0,"errormessage":"success"\}$/);
    expect(keyed!.status).toBe(200);
    expect(keyed!.body).toMatch(/^\{"key":\d+,"errorcode":0,"errormessage":"success"\}$/);
    expect(unkeyed!.status).toBe(504);
    expect(unkeyed!.headers['retry-after']).toBeUndefined();
    expect(unkeyed!.body).toMatch(
      /^\{"key":\d+,"errorcode":1,"errormessage":"The service was cut off before it answered: the write may still happen"\}$/,
    );
    // Each retried call started once more, on the second instance; the unkeyed POST was not.
    const after = await Promise.all(methods.map((method) => started(port, method)));
    expect(after.map((count, index) => count - before[index]!)).toEqual([2, 2, 3]);
    const rows = JSON.parse((await send(url)).body).results.map((row: { name: string }) => row.name);
    expect(rows).toEqual(['two', 'keyed']);
  }, 20_000);

  it('a keyed POST cut on the killed instance and refused by the other is 504, "the write may still happen"', async () => {
    const distributor = (await startDistributor(closer)).address;
    const dir = join(dataDir, 'cut-then-refused');
    mkdirSync(dir);
    const first = spawnComponent('test/gateway/fixtures/freezable-goods.ts', [dir], {});
    closer.add(first, (child) => {
      child.child.kill('SIGKILL');
    });
    register(distributor, Number(/on (\d+)/.exec(await first.waitForLine(/goods listening on \d+/))![1]));
    const { gateway, port } = await startGateway(closer, distributor);
    await waitForRoute(gateway, 'POST /goods', 1);
    // A call answered first: the gateway's connection to it is up, and the next call is sent on it
    // (one made while frozen would wait for its connection, unsent, and its 503 would be right).
    expect((await send(`http://127.0.0.1:${port}/goods`)).status).toBe(200);

    first.child.kill('SIGSTOP');
    const before = await started(port, 'CreateGoods');
    const answer = send(`http://127.0.0.1:${port}/goods`, {
      method: 'POST',
      headers: { ...json, 'Idempotency-Key': 'cut-then-refused-1' },
      body: goods('keyed'),
    });
    await vi.waitFor(async () => expect((await started(port, 'CreateGoods')) - before).toBe(1));
    // The other instance refuses every call, as one whose database is down.
    const refusing = await startFakeGoods(closer, distributor, {
      onCall: () =>
        Promise.reject(Object.assign(new Error('Database unavailable'), { code: status.UNAVAILABLE })),
    });
    await waitForRoute(gateway, 'POST /goods', 2);
    first.child.kill('SIGKILL');

    const cut = await answer;
    // The first call may have written before it was cut: not 503, which says nothing was done.
    expect(cut.status).toBe(504);
    expect(cut.headers['retry-after']).toBeUndefined();
    expect(cut.body).toMatch(
      /^\{"key":\d+,"errorcode":1,"errormessage":"The service was cut off before it answered: the write may still happen"\}$/,
    );
    expect(refusing.calls.CreateGoods).toBe(1);
    expect((await started(port, 'CreateGoods')) - before).toBe(2);
  }, 20_000);
});

describe('both goods instances refusing calls (UNAVAILABLE)', () => {
  const closer = new Closer();
  afterAll(() => closer.closeAll());
  let port: number;
  let instances: Awaited<ReturnType<typeof startFakeGoods>>[];

  beforeAll(async () => {
    const distributor = (await startDistributor(closer)).address;
    const refuse = () =>
      Promise.reject(Object.assign(new Error('Database unavailable'), { code: status.UNAVAILABLE }));
    instances = [];
    for (let index = 0; index < 2; index++)
      instances.push(await startFakeGoods(closer, distributor, { onCall: refuse }));
    const started = await startGateway(closer, distributor);
    port = started.port;
    await waitForRoute(started.gateway, 'GET /goods', 2);
  });

  const calls = (method: string) => instances.map((instance) => instance.calls[method] ?? 0);

  it('a GET, a DELETE and a keyed POST are tried twice, once on each, then 503 with Retry-After; an unkeyed POST once', async () => {
    const url = `http://127.0.0.1:${port}/goods`;
    for (const [method, request] of [
      ['ListGoods', () => send(url)],
      ['DeleteGoods', () => send(`${url}?id=1`, { method: 'DELETE' })],
      [
        'CreateGoods',
        () =>
          send(url, {
            method: 'POST',
            headers: { ...json, 'Idempotency-Key': 'refused-1' },
            body: goods('k'),
          }),
      ],
    ] as const) {
      const before = calls(method);
      const answer = await request();
      expect(answer.status).toBe(503);
      expect(answer.headers['retry-after']).toBe('1');
      expect(answer.body).toMatch(/^\{"key":\d+,"errorcode":1,"errormessage":"Service unavailable"\}$/);
      expect(calls(method).map((count, index) => count - before[index]!)).toEqual([1, 1]);
    }
    const before = calls('CreateGoods');
    const unkeyed = await send(url, { method: 'POST', headers: json, body: goods('u') });
    expect(unkeyed.status).toBe(503);
    expect(calls('CreateGoods').reduce((sum, count, index) => sum + count - before[index]!, 0)).toBe(1);
  });
});
