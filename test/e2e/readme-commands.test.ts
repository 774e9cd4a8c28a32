import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { makeTestPki } from '../helpers/certs.js';
import { grpcurl, grpcurlLines, shellWords } from '../helpers/grpcurl.js';
import { send } from '../helpers/http.js';
import { type Shop, servingCount, startShop, TEST_REGISTRY_TOKEN } from './support/shop.js';

// The README's examples are run as written, on a fresh shop, with the default ports mapped to the
// ones this test got: what the README promises is what a user sees.
const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** Each `curl ...` command of the README (joined across `\` line ends) with the `# ...` line after it. */
function curlExamples(markdown: string): Array<{ command: string; expected: string }> {
  const lines = markdown.replace(/\\\n\s*/g, ' ').split('\n');
  const examples: Array<{ command: string; expected: string }> = [];
  lines.forEach((line, index) => {
    const next = lines[index + 1]?.trim() ?? '';
    if (line.trim().startsWith('curl ') && next.startsWith('# {')) {
      examples.push({ command: line.trim(), expected: next.slice(2) });
    }
  });
  return examples;
}

describe('the README examples', () => {
  let shop: Shop;
  let ports: Map<string, string>;
  beforeAll(async () => {
    shop = await startShop({ kind: 'sqlite' });
    await vi.waitFor(() => expect(servingCount(shop.gateway, 'GET', '/purchases')).toBe(1));
    await vi.waitFor(() => expect(servingCount(shop.gateway, 'GET', '/members')).toBe(1));
    await vi.waitFor(() => expect(servingCount(shop.gateway, 'GET', '/goods')).toBe(1));
    const port = (name: 'goods' | 'members' | 'purchases') => String(shop.services.get(name)![0]!.port);
    ports = new Map([
      ['8000', new URL(shop.gatewayUrl).port],
      ['9000', shop.distributorAddress.split(':')[1]!],
      ['9010', port('goods')],
      ['9020', port('members')],
      ['9030', port('purchases')],
    ]);
  });
  afterAll(() => shop?.stop());

  const localize = (text: string): string =>
    text
      .replace(/127\.0\.0\.1:(\d+)/g, (_whole, port: string) => `127.0.0.1:${ports.get(port) ?? port}`)
      .replaceAll('$(cat data/registry-token)', TEST_REGISTRY_TOKEN);

  it('curl: the eight book requests, the Idempotency-Key ones, then the routes by path, answer what the README shows', async () => {
    const examples = curlExamples(readme);
    expect(examples).toHaveLength(14);
    for (const { command, expected } of examples) {
      const words = shellWords(localize(command)).slice(1);
      let method = 'GET';
      let body: string | undefined;
      const headers: Record<string, string> = {};
      let url = '';
      while (words.length > 0) {
        const word = words.shift()!;
        if (word === '-X') method = words.shift()!;
        else if (word === '-H') {
          const [name, ...value] = words.shift()!.split(':');
          headers[name!.trim()] = value.join(':').trim();
        } else if (word === '-d') {
          body = words.shift();
          if (method === 'GET') method = 'POST';
        } else url = word;
      }
      const answer = await send(url, { method, headers, body });
      const normalize = (text: string) => text.replace(/"date":"[^"]+"/g, '"date":"<date>"');
      expect(normalize(answer.body), command).toBe(normalize(expected));
    }
  });

  it('grpcurl: every one-machine command works against the running shop', async () => {
    const commands = grpcurlLines(readme).filter((command) => !command.includes('-cacert'));
    expect(commands.length).toBeGreaterThanOrEqual(13);
    for (const command of commands) {
      const outcome = await grpcurl(localize(command));
      expect(outcome.status, `${command}\n${JSON.stringify(outcome.output)}`).toBe('OK');
    }
  });
});

describe('the README examples across machines (mutual TLS)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shop-readme-mtls-'));
  let shop: Shop;
  let hosts: Map<string, string>;
  beforeAll(async () => {
    const pki = makeTestPki(dir, {
      names: ['distributor', 'gateway', 'goods', 'members', 'purchases', 'operator'],
    });
    shop = await startShop({ kind: 'sqlite' }, {}, { pki, registryToken: false });
    await vi.waitFor(() => expect(servingCount(shop.gateway, 'GET', '/goods')).toBe(1));
    const created = await send(`${shop.gatewayUrl}/goods`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'test Goods', category: 'tests', price: 1000, description: 'test' }),
    });
    expect(created.body).toContain('"errorcode":0');
    // The README's hosts, as this test reaches them.
    hosts = new Map([
      ['10.0.0.1:9000', shop.distributorAddress],
      ['10.0.0.2:9010', `127.0.0.1:${shop.services.get('goods')![0]!.port}`],
    ]);
  });
  afterAll(async () => {
    await shop?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('grpcurl with -cacert/-cert/-key works against the distributor and a service', async () => {
    const commands = grpcurlLines(readme).filter((command) => command.includes('-cacert'));
    expect(commands.length).toBeGreaterThanOrEqual(2);
    for (const command of commands) {
      const local = command
        .replace(/10\.0\.0\.\d+:\d+/g, (address) => hosts.get(address) ?? address)
        .replaceAll('certs/', `${dir}/`);
      const outcome = await grpcurl(local);
      expect(outcome.status, `${command}\n${JSON.stringify(outcome.output)}`).toBe('OK');
    }
    // Without the client certificate the same call is refused.
    const withoutCertificate = await grpcurl(
      `grpcurl -cacert ${dir}/ca.crt ${hosts.get('10.0.0.2:9010')} shop.v1.GoodsService/ListGoods`,
    ).catch((error: Error) => ({ status: 'refused', output: error.message }));
    expect(withoutCertificate.status).not.toBe('OK');
  });
});
