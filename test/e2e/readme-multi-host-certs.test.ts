import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { shellWords } from '../helpers/grpcurl.js';

// The README's layout across machines, followed literally: its `npm run certs` line, then a
// component started with `--advertise-host` is dialled there by tools such as grpcurl, which check
// that the address is in the certificate. A component missing from the certs line (members and
// purchases beside goods were) registered and served the gateway, but every grpcurl call to it
// failed ("IP: 10.0.0.2 is not in the cert's list").
const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const section = readme.slice(
  readme.indexOf('## Running across machines'),
  readme.indexOf('### Rolling restarts'),
);
const script = new URL('../../scripts/certs.mjs', import.meta.url).pathname;

describe("the README's certificates for the hosts of its layout across machines", () => {
  const dir = mkdtempSync(join(tmpdir(), 'readme-multi-host-certs-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('cover the address every component of the layout is advertised or dialled at', () => {
    const certsLine = section.split('\n').find((line) => line.startsWith('npm run certs -- '));
    expect(certsLine).toBeDefined();
    const args = shellWords(certsLine!).slice(4);
    execFileSync(process.execPath, [script, '--out', dir, ...args], { stdio: 'pipe' });

    const starts = section.split('\n').filter((line) => /^TLS_DIR=\S+ npm run \w+ -- /.test(line));
    expect(starts.length).toBeGreaterThanOrEqual(5);
    const expected: Array<[string, string]> = [];
    for (const line of starts) {
      const words = shellWords(line);
      const name = words[3]!;
      const advertised = words[words.indexOf('--advertise-host') + 1];
      if (words.includes('--advertise-host')) expected.push([name, advertised!]);
      const distributor = words[words.indexOf('--distributor') + 1];
      if (words.includes('--distributor')) expected.push(['distributor', distributor!.split(':')[0]!]);
    }
    expect(expected.map(([name]) => name)).toEqual(expect.arrayContaining(['goods', 'members', 'purchases']));
    for (const [name, host] of expected) {
      const certificate = new X509Certificate(readFileSync(join(dir, `${name}.crt`)));
      expect(certificate.checkIP(host), `${name}.crt names ${host}`).toBe(host);
    }
  });
});
