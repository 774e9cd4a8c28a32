import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { httpsGet } from '../helpers/http.js';
import { Closer, startDistributor, startGateway, waitForRoute } from './support/cluster.js';
import { type FakeGoods, startFakeGoods } from './support/fake-shop.js';

/** REST clients of a gateway that requires client certificates (--https-client-ca). */
describe('gateway over HTTPS with a client CA', () => {
  const closer = new Closer();
  const dir = mkdtempSync(join(tmpdir(), 'gateway-client-ca-'));
  let pki: TestPki;
  let goods: FakeGoods;
  let url: string;

  beforeAll(async () => {
    const distributor = (await startDistributor(closer)).address;
    goods = await startFakeGoods(closer, distributor);
    pki = makeTestPki(dir, { names: ['gateway', 'operator'] });
    const { certFile, keyFile } = pki.files('gateway');
    const started = await startGateway(closer, distributor, {
      https: { certFile, keyFile, caFile: pki.caFile },
    });
    await waitForRoute(started.gateway, 'GET /goods', 1);
    url = `https://127.0.0.1:${started.port}/goods`;
  });
  afterAll(async () => {
    await closer.closeAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('tells a client without a certificate, or with one of another CA, why it is refused, and routes neither', async () => {
    // TLS alone refused them in its handshake: a bare alert for the first, a reset for the second.
    expect(await httpsGet(url, pki.caFile)).toEqual({
      status: 403,
      body: '{"key":null,"errorcode":1,"errormessage":"This port requires a client certificate issued by its client CA: none was sent"}',
    });
    expect(await httpsGet(url, pki.caFile, pki.foreignFiles('operator'))).toEqual({
      status: 403,
      body: '{"key":null,"errorcode":1,"errormessage":"This port requires a client certificate issued by its client CA: the one sent was refused (UNABLE_TO_VERIFY_LEAF_SIGNATURE)"}',
    });
    expect(goods.calls).toEqual({});
  });

  it('serves a client with a certificate the client CA issued', async () => {
    const answer = await httpsGet(url, pki.caFile, pki.files('operator'));
    expect(answer).toEqual({ status: 200, body: '{"key":0,"errorcode":1,"errormessage":"no data"}' });
  });
});
