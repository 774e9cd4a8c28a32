import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDistributorServer, type DistributorServer } from '../../src/distributor/distributor-server.js';
import { createGateway, type Gateway } from '../../src/gateway/gateway-server.js';
import { type RunningService, startService } from '../../src/services/common/start-service.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { http } from '../helpers/http.js';
import { type CapturedLog, captureLog, type LogLine } from '../helpers/log-capture.js';
import { servingCount } from './support/shop.js';

// Issue 11, part 1: one request followed by its id through the gateway's and the service's log lines.
describe('one request id in every log line about the request, gateway and service alike', () => {
  let dataDir: string;
  let distributor: DistributorServer;
  let goods: RunningService;
  let gateway: Gateway;
  let port: number;
  let gatewayLog: CapturedLog;
  let goodsLog: CapturedLog;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'shop-request-ids-'));
    distributor = createDistributorServer();
    const address = `127.0.0.1:${await distributor.listen('127.0.0.1', 0)}`;
    goodsLog = captureLog('goods');
    goods = await startService(
      goodsService,
      {
        host: '127.0.0.1',
        port: 0,
        distributor: address,
        advertiseHost: '127.0.0.1',
        storage: { kind: 'sqlite', dataDir },
        logLevel: 'debug',
      },
      {
        log: goodsLog.log,
        graceMs: 500,
        drainNoticeMs: 100,
        registrationBackoff: { initialMs: 20, maxMs: 200 },
      },
    );
    gatewayLog = captureLog('gateway');
    gateway = createGateway({
      distributor: address,
      log: gatewayLog.log,
      registrationBackoff: { initialMs: 20, maxMs: 200 },
    });
    port = await gateway.listen('127.0.0.1', 0);
    await vi.waitFor(() => expect(servingCount(gateway, 'GET', '/goods')).toBe(1), { timeout: 10_000 });
    // The service answers once its first database probe succeeded.
    await vi.waitFor(async () => expect((await http(port, 'GET', '/goods')).status).toBe(200));
  });
  afterAll(async () => {
    await gateway?.stop();
    await goods?.stop();
    await distributor?.stop(100);
    rmSync(dataDir, { recursive: true, force: true });
  });

  const about = (log: CapturedLog, id: string): LogLine[] =>
    log.lines.filter((line) => line.requestId === id);

  it("carries the client's X-Request-Id in the gateway's and the service's lines", async () => {
    const id = 'follow-me.1';
    const answer = await http(port, 'POST', '/goods', {
      headers: { 'Content-Type': 'application/json', 'X-Request-Id': id },
      body: JSON.stringify({ name: 'pen', category: 'office', price: 3, description: 'blue' }),
    });
    expect(answer.status).toBe(200);
    expect(answer.headers['x-request-id']).toBe(id);
    await vi.waitFor(() =>
      expect(about(gatewayLog, id).map((line) => line.msg)).toContain('request answered'),
    );
    expect(about(gatewayLog, id)).toEqual([
      expect.objectContaining({ component: 'gateway', method: 'POST', route: '/goods', status: 200 }),
    ]);
    expect(about(goodsLog, id)).toEqual([
      expect.objectContaining({
        component: 'goods',
        msg: 'call handled',
        grpcMethod: 'shop.v1.GoodsService/CreateGoods',
        code: 'OK',
      }),
    ]);
  });

  it('names the request in lines written deep in the service, under the one field requestId', async () => {
    // The service refuses the id: the handler wrapper logs the refusal and names the request from
    // the call's context, found by the call's metadata (see requestLogFields).
    const answer = await http(port, 'DELETE', '/goods?id=-5', { headers: { 'X-Request-Id': 'deep-2' } });
    expect(JSON.parse(answer.body).errormessage).toMatch(/^Invalid Parameters/);
    await vi.waitFor(() => expect(about(goodsLog, 'deep-2')).toHaveLength(2));
    expect(about(goodsLog, 'deep-2').map((line) => line.msg)).toEqual([
      'Invalid Parameters: id must be a positive number',
      'call handled',
    ]);
    expect(about(gatewayLog, 'deep-2').map((line) => line.msg)).toEqual(['request answered']);
    // Only lines about a request name one: the service's own lines (health, registration) do not.
    expect(goodsLog.lines.filter((line) => line.event === 'registered')[0]).not.toHaveProperty('requestId');
  });

  it("names the call's gRPC method and status alike in each of the service's lines about it", async () => {
    // One field name and one type per field across the lines of a request: a log store that types a
    // field by the first value it sees (Elasticsearch's dynamic mapping) refuses the lines whose
    // value does not fit, and `code` was a number in these lines but a name in `call handled`;
    // `method` was the gRPC path here but the HTTP method in the gateway's lines.
    await http(port, 'DELETE', '/goods?id=-5', { headers: { 'X-Request-Id': 'same-fields-3' } });
    await vi.waitFor(() => expect(about(goodsLog, 'same-fields-3')).toHaveLength(2));
    for (const line of about(goodsLog, 'same-fields-3')) {
      expect(line).toMatchObject({
        grpcMethod: 'shop.v1.GoodsService/DeleteGoods',
        code: 'INVALID_ARGUMENT',
      });
      expect(line).not.toHaveProperty('method');
    }
  });

  it('gives a request without an id (or with a malformed one) a new one, the same in both components', async () => {
    const answer = await http(port, 'GET', '/goods', { headers: { 'X-Request-Id': 'not valid: spaces' } });
    const id = String(answer.headers['x-request-id']);
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    await vi.waitFor(() => expect(about(goodsLog, id)).toHaveLength(1));
    expect(about(gatewayLog, id)).toHaveLength(1);
    expect(gatewayLog.lines.some((line) => JSON.stringify(line).includes('not valid: spaces'))).toBe(false);
  });
});
