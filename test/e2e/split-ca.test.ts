import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { TlsFilePaths } from '../../src/common/tls.js';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { send } from '../helpers/http.js';
import { captureLog, type LogLine } from '../helpers/log-capture.js';
import { type Shop, servingCount, startShop } from './support/shop.js';

// A shop whose gateway holds a certificate of another CA than the distributor's and the services'
// ("split CA", README "Trust"): the gateway trusts only the services' CA, the distributor and the
// services trust both, as they check the gateway's client certificate. The start check on a
// component's own issuer once refused this layout; it must start and serve.

/**
 * The files of a split-CA shop: the gateway's certificate from the other CA with ca.crt alone, every
 * other component's from the CA with `serviceCaFile(name)`.
 */
function splitCa(pki: TestPki, serviceCaFile: (name: string) => string): TestPki {
  const gateway: Required<TlsFilePaths> = {
    caFile: pki.caFile,
    ...pki.issue('gateway-of-other-ca', { identity: 'gateway', by: 'other' }),
  };
  return {
    ...pki,
    files: (name) => (name === 'gateway' ? gateway : { ...pki.files(name), caFile: serviceCaFile(name) }),
  };
}

/**
 * Starts, for the tests of the describe it is called in, a split-CA shop (see splitCa) on SQLite
 * without a registration token, so that mTLS alone decides; its gateway's log is captured.
 */
function useSplitCaShop(serviceCaFile: (pki: TestPki, name: string) => string) {
  const dir = mkdtempSync(join(tmpdir(), 'shop-split-ca-'));
  const gatewayLog = captureLog('gateway');
  let shop: Shop | undefined;
  beforeAll(async () => {
    const pki = makeTestPki(dir, { names: ['distributor', 'gateway', 'goods', 'members', 'purchases'] });
    shop = await startShop(
      { kind: 'sqlite' },
      { log: gatewayLog.log },
      { pki: splitCa(pki, (name) => serviceCaFile(pki, name)), registryToken: false },
    );
  }, 30_000);
  afterAll(async () => {
    await shop?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { shop: () => shop!, gatewayLog };
}

describe('split CA: a gateway of another CA, trusted by the distributor and the services', () => {
  const { shop, gatewayLog } = useSplitCaShop((pki) => pki.bothCasFile);

  it('starts, routes goods through the gateway and serves the book body', async () => {
    await vi.waitFor(() => expect(servingCount(shop().gateway, 'GET', '/goods')).toBe(1), {
      timeout: 10_000,
    });
    expect(await send(`${shop().gatewayUrl}/goods`)).toMatchObject({
      status: 200,
      body: '{"key":0,"errorcode":1,"errormessage":"no data"}',
    });
    // The gateway's own start check cannot tell its CA from an intermediate missing from its
    // certificate file: it says so once, and that it is as meant with split CAs.
    expect(gatewayLog.lines.filter((line) => (line.level as number) >= 40)).toEqual([
      expect.objectContaining({
        event: 'tls-certificate-unanchored',
        msg: expect.stringContaining(
          'with split CAs, where the peers of this component hold its CA in their CA files, it is as meant',
        ),
      }),
    ]);
  });
});

describe("split CA, the mirror mistake: goods' CA file lacks the gateway's CA", () => {
  const { shop, gatewayLog } = useSplitCaShop((pki, name) =>
    name === 'goods' ? pki.caFile : pki.bothCasFile,
  );

  it("goods registers, and the gateway's calls to it fail with 503 and a warning that goods may not accept its certificate", async () => {
    // The distributor trusts both CAs: goods is listed and its route reaches the gateway.
    await vi.waitFor(() => expect(servingCount(shop().gateway, 'GET', '/goods')).toBe(1), {
      timeout: 10_000,
    });
    expect(await send(`${shop().gatewayUrl}/goods`)).toMatchObject({
      status: 503,
      body: '{"key":0,"errorcode":1,"errormessage":"Service unavailable"}',
    });
    const upstreamFailures = (): LogLine[] =>
      gatewayLog.lines.filter((line) => line.code === 'UNAVAILABLE' && (line.level as number) >= 40);
    // The gateway's clue (goods' own, untrusted-client-certificate, is in its log, silent here).
    await vi.waitFor(() => expect(upstreamFailures().length).toBeGreaterThanOrEqual(1));
    expect(upstreamFailures()[0]?.msg).toMatch(
      /^upstream call failed: .* — goods@127\.0\.0\.1:\d+ may not accept this component's certificate: it must be issued by the CA in goods@127\.0\.0\.1:\d+'s ca\.crt/s,
    );
    // The status page says so too, not that its connection attempts fail (refused, reset, ...).
    const goodsReason = async (): Promise<unknown> => {
      const nodes: Array<{ id: string; unreachableReason?: string }> = JSON.parse(
        (await send(`${shop().gatewayUrl}/status.json`)).body,
      ).nodes;
      return nodes.find((node) => node.id.startsWith('goods@'))?.unreachableReason;
    };
    await vi.waitFor(async () => expect(await goodsReason()).toBe('connections-dropped'));
  });
});
