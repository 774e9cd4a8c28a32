import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ipv6Layout, readmeMultiHostLayout } from './support/readme-multi-host.js';

// The README's layout across machines, followed literally: its `npm run certs` line, then a
// component started with `--advertise-host` is dialled there by tools such as grpcurl, which check
// that the address is in the certificate. A component missing from the certs line (members and
// purchases beside goods were) registered and served the gateway, but every grpcurl call to it
// failed ("IP: 10.0.0.2 is not in the cert's list").
const layouts = { IPv4: readmeMultiHostLayout(), IPv6: ipv6Layout(readmeMultiHostLayout()) };
const script = new URL('../../scripts/certs.mjs', import.meta.url).pathname;

describe("the README's certificates for the hosts of its layout across machines", () => {
  const dir = mkdtempSync(join(tmpdir(), 'readme-multi-host-certs-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(Object.entries(layouts))(
    'cover the address every component of the layout is advertised or dialled at, on %s',
    (family, layout) => {
      const out = join(dir, family);
      execFileSync(process.execPath, [script, '--out', out, ...layout.certsArgs], { stdio: 'pipe' });

      expect(layout.starts.length).toBeGreaterThanOrEqual(5);
      const expected: Array<[string, string]> = [];
      for (const { component: name, args: words } of layout.starts) {
        const advertised = words[words.indexOf('--advertise-host') + 1];
        if (words.includes('--advertise-host')) expected.push([name, advertised!]);
        const distributor = words[words.indexOf('--distributor') + 1];
        const distributorHost = distributor?.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
        if (words.includes('--distributor')) expected.push(['distributor', distributorHost!]);
      }
      expect(expected.map(([name]) => name)).toEqual(
        expect.arrayContaining(['goods', 'members', 'purchases']),
      );
      for (const [name, host] of expected) {
        const certificate = new X509Certificate(readFileSync(join(out, `${name}.crt`)));
        expect(certificate.checkIP(host), `${name}.crt names ${host}`).toBe(host);
      }
    },
  );
});
