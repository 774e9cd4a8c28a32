import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverCredentials } from '../../src/common/tls.js';
import type { GoodsServiceServer } from '../../src/gen/services.js';
import { makeTestPki } from '../helpers/certs.js';
import { httpJson } from '../helpers/http.js';
import {
  Closer,
  startDistributor,
  startGateway,
  startGoodsService,
  waitForRoute,
} from './support/cluster.js';

// A plaintext gateway routed to a service whose gRPC port requires TLS (a service listed with the
// port of another, say): every call failed 503 with "Failed to connect" in the log, nothing of TLS.

describe('a plaintext gateway calling a service whose port requires TLS', () => {
  const closer = new Closer();
  const lines: Record<string, unknown>[] = [];
  let dir: string;
  let port: number;
  let goodsPort: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'upstream-tls-mismatch-'));
    const pki = makeTestPki(dir, { names: ['goods'] });
    const distributor = (await startDistributor(closer)).address;
    const implementation: GoodsServiceServer = {
      createGoods: (_call, callback) => callback(null, { id: 1 }),
      listGoods: (_call, callback) => callback(null, { results: [], nextPageToken: '' }),
      deleteGoods: (_call, callback) => callback(null, {}),
    };
    goodsPort = (
      await startGoodsService(closer, distributor, implementation, serverCredentials(pki.files('goods')))
    ).port;
    const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const started = await startGateway(closer, distributor, { log });
    port = started.port;
    await waitForRoute(started.gateway, 'GET /goods', 1);
  });
  afterAll(async () => {
    await closer.closeAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs that the service may require TLS, with the details grpc-js gave', async () => {
    expect((await httpJson(port, 'GET', '/goods')).status).toBe(503);
    const warnings = lines.filter((line) => (line.level as number) >= 40 && line.code === 'UNAVAILABLE');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      details: expect.stringContaining('Failed to connect'),
      msg: expect.stringMatching(
        new RegExp(
          `^upstream call failed: .* — goods@127\\.0\\.0\\.1:${goodsPort} may require TLS: this component has no TLS files`,
        ),
      ),
    });
  });
});
