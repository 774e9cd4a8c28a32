import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { type ComponentProcess, freePort, spawnComponent } from './support/processes.js';

// A component and a distributor that disagree on TLS, as separate processes started the way an
// operator starts them: TLS files in the environment of one and not the other. Before, goods
// retried for ever with "Failed to connect" or "wrong version number", and the distributor said
// nothing at info level.

const TOKEN = 'the-token-of-the-tls-mismatch-test';
let dir: string;
let pki: TestPki;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'shop-tls-mismatch-'));
  pki = makeTestPki(dir, { names: ['distributor', 'goods', 'members', 'gateway'] });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const processes: ComponentProcess[] = [];
afterEach(async () => {
  for (const component of processes.splice(0).reverse()) {
    if (component.child.exitCode === null) component.child.kill('SIGKILL');
    await component.exited();
  }
});

function tlsEnv(name: string): NodeJS.ProcessEnv {
  const files = pki.files(name);
  return { TLS_CA: files.caFile, TLS_CERT: files.certFile, TLS_KEY: files.keyFile };
}

/** A certificate of the other CA for `name`, with a CA file of both CAs: the distributor trusts only the first. */
function foreignEnv(name: string): NodeJS.ProcessEnv {
  const files = pki.foreignFiles(name);
  return { TLS_CA: files.caFile, TLS_CERT: files.certFile, TLS_KEY: files.keyFile };
}

function start(entry: string, args: string[], env: NodeJS.ProcessEnv): ComponentProcess {
  const component = spawnComponent(entry, args, { DATA_DIR: dir, MYSQL_URL: '', ...env });
  processes.push(component);
  return component;
}

async function startPair(distributorEnv: NodeJS.ProcessEnv, goodsEnv: NodeJS.ProcessEnv) {
  const port = await freePort();
  const distributor = start(
    'src/distributor/main.ts',
    ['--port', String(port), '--metrics-port', '0'],
    distributorEnv,
  );
  await distributor.waitForLine(/"event":"listening"/, 30_000);
  const goods = start(
    'src/services/goods/main.ts',
    ['--port', '0', '--metrics-port', '0', '--distributor', `127.0.0.1:${port}`],
    goodsEnv,
  );
  return { distributor, goods };
}

const message = (line: string): string => (JSON.parse(line) as { msg: string }).msg;

describe('TLS on one side only', () => {
  it('goods without TLS files, a distributor with mTLS: both say so', async () => {
    const { distributor, goods } = await startPair(tlsEnv('distributor'), {});
    expect(message(await goods.waitForLine(/"event":"disconnected"/, 30_000))).toMatch(
      /^not registered with the distributor \(UNAVAILABLE: .*Failed to connect.*\); retrying with backoff — the distributor may require TLS: this component has no TLS files/,
    );
    expect(message(await distributor.waitForLine(/"event":"plaintext-client"/, 10_000))).toBe(
      'a client at 127.0.0.1 spoke plaintext to this TLS port; give it TLS files (TLS_DIR (--tls-dir), or TLS_CA, TLS_CERT and TLS_KEY)',
    );
  });

  it('goods with TLS files, a plaintext distributor: goods says the distributor may not speak TLS', async () => {
    const { goods } = await startPair(
      { SHOP_REGISTRY_TOKEN: TOKEN },
      { SHOP_REGISTRY_TOKEN: TOKEN, ...tlsEnv('goods') },
    );
    expect(message(await goods.waitForLine(/"event":"disconnected"/, 30_000))).toMatch(
      /^not registered with the distributor \(UNAVAILABLE: .*wrong version number.*\); retrying with backoff — the distributor may not speak TLS: this component has TLS files/s,
    );
  });
});

describe('a certificate of another CA named as the one of its CA file', () => {
  // Found on hosts given the ca.crt of one `npm run certs` run and the certificates of another:
  // goods started, and the distributor refused its every handshake.
  it('stops the component at start with exit 2, naming both files', async () => {
    const files = pki.twinFiles('goods');
    const goods = start('src/services/goods/main.ts', ['--port', '0', '--metrics-port', '0'], {
      TLS_CA: pki.caFile,
      TLS_CERT: files.certFile,
      TLS_KEY: files.keyFile,
    });
    await expect(goods.exited()).resolves.toBe(2);
    expect(goods.lines.join('\n')).toContain(
      `TLS certificate file "${files.certFile}" from --tls-cert (TLS_CERT) names as its issuer "CN=test CA", a CA of TLS CA file "${pki.caFile}" from --tls-ca (TLS_CA), but was not signed by it`,
    );
    // The reason names the file and its flag; the usage's hundred lines after it would bury it.
    expect(goods.lines.join('\n')).not.toContain('usage: goods');
  }, 30_000);
});

describe("the distributor with another component's certificate", () => {
  // Before, it listened and said nothing, while every service and gateway refused its handshake
  // ("the server's certificate is not for spiffe://shop/distributor").
  it('stops at start with exit 2, naming the file and the identity it needs', async () => {
    const port = await freePort();
    const distributor = start(
      'src/distributor/main.ts',
      ['--port', String(port), '--metrics-port', '0'],
      tlsEnv('goods'),
    );
    await expect(distributor.exited()).resolves.toBe(2);
    expect(distributor.lines.join('\n')).toContain(
      `TLS certificate file "${pki.files('goods').certFile}" from --tls-cert (TLS_CERT) names spiffe://shop/goods, not spiffe://shop/distributor`,
    );
  }, 30_000);
});

// Both sides speak TLS, with certificates of different CAs: found on hosts given the ca.crt of one
// `npm run certs` run and the certificates of another. Before, goods retried for ever with "read
// ECONNRESET" or "Failed to connect" (a warning at each change between the two, every attempt or
// so), or "self-signed certificate in certificate chain", nothing pointing at the CA.
describe('TLS on both sides, certificates of different CAs', () => {
  const disconnected = (component: ComponentProcess): string[] =>
    component.lines.filter((line) => line.includes('"event":"disconnected"'));

  it("goods' certificate of another CA: goods says the distributor may not accept it, once", async () => {
    const { goods } = await startPair(tlsEnv('distributor'), {
      LOG_LEVEL: 'debug',
      ...foreignEnv('goods'),
    });
    expect(message(await goods.waitForLine(/"event":"disconnected"/, 30_000))).toMatch(
      /^not registered with the distributor \(UNAVAILABLE: .*(?:ECONNRESET|Failed to connect).*\); retrying with backoff — the distributor may not accept this component's certificate: it must be issued by the CA in the distributor's ca\.crt/s,
    );
    // Four attempts or more (backoff of 0.1, 1, 2 s...), whichever words grpc-js gives each time.
    await expect
      .poll(() => disconnected(goods).length, { timeout: 20_000, interval: 200 })
      .toBeGreaterThanOrEqual(4);
    expect(disconnected(goods).filter((line) => line.includes('"level":40'))).toHaveLength(1);
  }, 40_000);

  it("a distributor's certificate of another CA: goods says so", async () => {
    const files = pki.foreignFiles('distributor');
    const { goods } = await startPair(
      { TLS_CA: pki.otherCaFile, TLS_CERT: files.certFile, TLS_KEY: files.keyFile },
      tlsEnv('goods'),
    );
    expect(message(await goods.waitForLine(/"event":"disconnected"/, 30_000))).toMatch(
      /^not registered with the distributor \(UNAVAILABLE: .*certificate.*\); retrying with backoff — the distributor's certificate is not issued by a CA in this component's CA file \(TLS_CA, or ca\.crt in TLS_DIR\): give every host the same ca\.crt, or, with split CAs, add the CA that issued it/s,
    );
  }, 40_000);
});

// A wrong --advertise-host: goods listed at an address where members listens (goods on 127.0.0.2
// with members' port, advertising 127.0.0.1). Secure naming refuses every handshake, and the
// gateway's warning, message and field, must say which certificate it met there, not only that its
// attempts failed (probe 142).
describe('a service listed at the address of another component', () => {
  it("the gateway's connect-timeout warning names the certificate it met there", async () => {
    const distributorPort = await freePort();
    const distributor = start(
      'src/distributor/main.ts',
      ['--port', String(distributorPort), '--metrics-port', '0'],
      tlsEnv('distributor'),
    );
    await distributor.waitForLine(/"event":"listening"/, 30_000);
    const registry = ['--metrics-port', '0', '--distributor', `127.0.0.1:${distributorPort}`];
    const sharedPort = await freePort();
    const members = start(
      'src/services/members/main.ts',
      ['--host', '127.0.0.1', '--port', String(sharedPort), ...registry],
      tlsEnv('members'),
    );
    const goods = start(
      'src/services/goods/main.ts',
      ['--host', '127.0.0.2', '--port', String(sharedPort), '--advertise-host', '127.0.0.1', ...registry],
      tlsEnv('goods'),
    );
    await Promise.all([members, goods].map((service) => service.waitForLine(/"event":"registered"/, 30_000)));
    const gatewayPort = await freePort();
    const gateway = start(
      'src/gateway/main.ts',
      ['--host', '127.0.0.1', '--port', String(gatewayPort), '--distributor', `127.0.0.1:${distributorPort}`],
      tlsEnv('gateway'),
    );
    await gateway.waitForLine(/listening on http/, 30_000);
    // The first call makes the connection; it is answered 503 once its deadline passes.
    void fetch(`http://127.0.0.1:${gatewayPort}/goods`).catch(() => {});
    const warning = JSON.parse(await gateway.waitForLine(/"event":"upstream-connect-timeout"/, 30_000)) as {
      level: number;
      handshakeFailure: string;
      msg: string;
    };
    const expected =
      "the server's certificate is not for spiffe://shop/goods (it names spiffe://shop/members)";
    expect(warning.level).toBe(40);
    expect(warning.handshakeFailure).toBe(expected);
    expect(warning.msg).toContain(`its TLS handshake failed (${expected})`);
  }, 60_000);
});
