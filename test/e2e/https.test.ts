import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { httpsGet } from '../helpers/http.js';
import { type Shop, servingCount, startShop } from './support/shop.js';

describe('the gateway over HTTPS, with the whole shop on mTLS behind it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shop-https-'));
  let pki: TestPki;
  let open: Shop;
  let clientOnly: Shop;
  beforeAll(async () => {
    pki = makeTestPki(dir, {
      names: ['distributor', 'gateway', 'goods', 'members', 'purchases', 'operator'],
    });
    const { certFile, keyFile } = pki.files('gateway');
    open = await startShop({ kind: 'sqlite' }, { https: { certFile, keyFile } }, { pki });
    clientOnly = await startShop(
      { kind: 'sqlite' },
      { https: { certFile, keyFile, caFile: pki.caFile } },
      { pki },
    );
    for (const shop of [open, clientOnly]) {
      await vi.waitFor(() => expect(servingCount(shop.gateway, 'GET', '/goods')).toBe(1));
    }
  });
  afterAll(async () => {
    await open?.stop();
    await clientOnly?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const httpsUrl = (shop: Shop): string => `${shop.gatewayUrl.replace('http:', 'https:')}/goods`;

  it('serves the book body over HTTPS, to services reached over mTLS', async () => {
    const answer = await httpsGet(httpsUrl(open), pki.caFile);
    expect(answer).toEqual({ status: 200, body: '{"key":0,"errorcode":1,"errormessage":"no data"}' });
  });

  it('with a client CA, answers only REST clients with a certificate it issued', async () => {
    // The others are told why, in a 403 (test/gateway/gateway-https-client-ca.test.ts).
    expect((await httpsGet(httpsUrl(clientOnly), pki.caFile)).status).toBe(403);
    expect((await httpsGet(httpsUrl(clientOnly), pki.caFile, pki.foreignFiles('operator'))).status).toBe(403);
    const answer = await httpsGet(httpsUrl(clientOnly), pki.caFile, pki.files('operator'));
    expect(answer.body).toContain('"errormessage":"no data"');
  });
});
