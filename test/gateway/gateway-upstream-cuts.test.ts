import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { NodeState } from '../../src/gen/distributor.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { spawnComponent } from '../e2e/support/processes.js';
import { type HttpResult, httpJson } from '../helpers/http.js';
import { Http2CuttingProxy, Http2Error } from '../helpers/http2-cutting-proxy.js';
import { goodsDescriptorSet } from '../helpers/nodes.js';
import { Closer, startDistributor, startGateway, waitForRoute } from './support/cluster.js';

const GOODS = { name: 'n', category: 'c', price: 1, description: 'd' };

/**
 * The real goods server in a process of its own, reached through an HTTP/2-aware proxy. Each test
 * freezes the process (SIGSTOP) with calls in flight, then cuts those calls below gRPC, as an
 * HTTP/2 hop in front of a frozen instance does: grpc-js then reports INTERNAL "Received RST_STREAM
 * …", which the gateway used to answer 500 as if the service had failed.
 */
describe('gateway: calls cut below gRPC by a frozen instance', () => {
  const closer = new Closer();
  const dataDir = mkdtempSync(join(tmpdir(), 'gateway-cuts-'));
  let distributor: string;
  let goods: ReturnType<typeof spawnComponent>;
  let goodsPort: number;

  beforeAll(async () => {
    distributor = (await startDistributor(closer)).address;
    goods = spawnComponent('test/gateway/fixtures/freezable-goods.ts', [dataDir], {});
    closer.add(goods, (child) => {
      child.child.kill('SIGCONT');
      child.child.kill('SIGKILL');
    });
    goodsPort = Number(/on (\d+)/.exec(await goods.waitForLine(/goods listening on \d+/))![1]);
  });
  afterAll(async () => {
    await closer.closeAll();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** A gateway routing GET/POST /goods through a fresh proxy to the (thawed) goods process. */
  async function throughProxy() {
    const perCase = new Closer();
    goods.child.kill('SIGCONT');
    const proxy = perCase.add(await Http2CuttingProxy.start({ host: '127.0.0.1', port: goodsPort }), (p) =>
      p.close(),
    );
    const registration = perCase.add(
      new RegistrationClient({
        distributor,
        node: {
          name: 'goods',
          host: '127.0.0.1',
          port: proxy.port,
          routes: [],
          descriptorSet: goodsDescriptorSet(),
          state: NodeState.NODE_STATE_SERVING,
        },
      }),
      (client) => client.stop(100),
    );
    registration.start();
    const { gateway, port } = await startGateway(perCase, distributor, {});
    await waitForRoute(gateway, 'GET /goods', 1);
    expect((await httpJson(port, 'GET', '/goods')).status).toBe(200);
    return { proxy, port, close: () => perCase.closeAll() };
  }

  /** Sends a GET and a POST, freezes goods once both are on the wire, then lets `cut` act. */
  async function freezeAndCut(
    port: number,
    proxy: Http2CuttingProxy,
    cut: () => void,
  ): Promise<HttpResult[]> {
    goods.child.kill('SIGSTOP');
    const answers = Promise.all([httpJson(port, 'GET', '/goods'), httpJson(port, 'POST', '/goods', GOODS)]);
    await vi.waitFor(() => expect(proxy.openStreams).toBe(2));
    cut();
    return answers;
  }

  for (const [name, cut] of [
    [
      'RST_STREAM INTERNAL_ERROR',
      (proxy: Http2CuttingProxy) => proxy.resetStreams(Http2Error.INTERNAL_ERROR),
    ],
    [
      'RST_STREAM PROTOCOL_ERROR',
      (proxy: Http2CuttingProxy) => proxy.resetStreams(Http2Error.PROTOCOL_ERROR),
    ],
    ['GOAWAY INTERNAL_ERROR', (proxy: Http2CuttingProxy) => proxy.goAway(Http2Error.INTERNAL_ERROR)],
    // An instance killed (SIGKILL) with a POST in flight: its connection reset, grpc-js says
    // UNAVAILABLE "read ECONNRESET", which the gateway answered 503 "Service unavailable" as if
    // nothing had been sent, though the instance had written the purchase (probe).
    ['TCP reset (ECONNRESET)', (proxy: Http2CuttingProxy) => proxy.resetConnections()],
  ] as const) {
    it(`${name}: never 500; the GET 503 with Retry-After, the POST 504, since it may still be written`, async () => {
      const { proxy, port, close } = await throughProxy();
      try {
        const [list, write] = await freezeAndCut(port, proxy, () => cut(proxy));
        expect(list!.status).toBe(503);
        expect(list!.headers['retry-after']).toBe('1');
        expect(list!.body).toMatch(/^\{"key":\d+,"errorcode":1,"errormessage":"Service unavailable"\}$/);
        // The frozen instance had the request: nothing says it will not write it once it runs again.
        expect(write!.status).toBe(504);
        expect(write!.headers['retry-after']).toBeUndefined();
        expect(write!.body).toMatch(
          /^\{"key":\d+,"errorcode":1,"errormessage":"The service was cut off before it answered: the write may still happen"\}$/,
        );
      } finally {
        await close();
      }
    });
  }
});
