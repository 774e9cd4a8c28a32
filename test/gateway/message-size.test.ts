import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpJson } from '../helpers/http.js';
import { Closer, startDistributor, startGateway, waitForRoute } from './support/cluster.js';
import { largeGoods, startFakeGoods } from './support/fake-shop.js';

// Issue 8 §3: an answer over grpc-js's 4 MiB message limit was answered 429 "Service overloaded"
// with Retry-After, forever, and nothing was logged.

describe('an answer over the gRPC message size limit', () => {
  const closer = new Closer();
  const lines: Record<string, unknown>[] = [];
  let port: number;

  beforeAll(async () => {
    const distributor = (await startDistributor(closer)).address;
    // A service that ignores paging and answers 5 MiB at once.
    await startFakeGoods(closer, distributor, {}, largeGoods(80, 64 * 1024));
    const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const started = await startGateway(closer, distributor, { log });
    port = started.port;
    await waitForRoute(started.gateway, 'GET /goods', 1);
  });
  afterAll(() => closer.closeAll());

  it('is 502 "The answer is too large", without Retry-After, and logged once with the limit', async () => {
    const before = lines.length;
    const answer = await httpJson(port, 'GET', '/goods');
    expect(answer.status).toBe(502);
    expect(answer.body).toMatch(/^\{"key":\d+,"errorcode":1,"errormessage":"The answer is too large"\}$/);
    expect(answer.headers['retry-after']).toBeUndefined();
    const logged = lines.slice(before).filter((line) => (line.level as number) >= 40);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({
      code: 'RESOURCE_EXHAUSTED',
      details: expect.stringMatching(/^Received message larger than max/),
      msg: 'upstream call failed: The answer is too large',
    });
  });
});

describe('upstream calls past their deadline', () => {
  const closer = new Closer();
  const lines: Record<string, unknown>[] = [];
  let port: number;

  beforeAll(async () => {
    const distributor = (await startDistributor(closer)).address;
    // A service that answers GET /goods only after the gateway's deadline.
    await startFakeGoods(closer, distributor, {
      onCall: (method) =>
        method === 'ListGoods' ? new Promise((resolve) => setTimeout(resolve, 1_000)) : undefined,
    });
    const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const started = await startGateway(closer, distributor, { log, deadlineMs: 150 });
    port = started.port;
    await waitForRoute(started.gateway, 'GET /goods', 1);
  });
  afterAll(() => closer.closeAll());

  it('are logged once per interval, however long each one waited (grpc-js writes it into the details)', async () => {
    const before = lines.length;
    for (let index = 0; index < 4; index++) expect((await httpJson(port, 'GET', '/goods')).status).toBe(504);
    const warnings = lines.slice(before).filter((line) => (line.level as number) >= 40);
    expect(warnings.map((line) => [line.msg, line.code])).toEqual([
      ['upstream call failed: Upstream deadline exceeded', 'DEADLINE_EXCEEDED'],
    ]);
  });
});
