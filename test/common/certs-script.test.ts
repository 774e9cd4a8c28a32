import { spawnSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkServerIdentity } from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { COMPONENTS as CERTIFIED, NOT_BEFORE_MARGIN_MS, splitHosts } from '../../scripts/certs.mjs';
import { isHostNameOrAddress } from '../../src/common/config.js';
import { SHOP_COMPONENTS } from '../../src/launcher/components.js';

const COMPONENTS = ['distributor', 'gateway', 'goods', 'members', 'purchases', 'operator'];

function certs(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['scripts/certs.mjs', ...args], { encoding: 'utf8', env });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function certificate(file: string): X509Certificate {
  return new X509Certificate(readFileSync(file));
}

describe("npm run certs' components", () => {
  it('are every component npm start runs: a service added to the list needs its name in certs.mjs', () => {
    // Without its certificate, a component given TLS_DIR exits 2 at start, and npm start with it.
    const started = SHOP_COMPONENTS.map((component) => component.name);
    expect([...CERTIFIED].sort()).toEqual([...started].sort());
  });
});

describe('npm run certs', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'certs-script-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('makes a CA and one certificate per component, with its identity and the extra hosts', () => {
    const out = join(dir, 'certs');
    const result = certs(['--out', out, '--host', 'shop.example', '--host', 'goods=10.0.0.2']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);

    const ca = certificate(join(out, 'ca.crt'));
    expect(ca.ca).toBe(true);
    for (const name of ['ca', ...COMPONENTS]) {
      expect(statSync(join(out, `${name}.key`)).mode & 0o777).toBe(0o600);
    }
    for (const name of COMPONENTS) {
      const leaf = certificate(join(out, `${name}.crt`));
      expect(leaf.verify(ca.publicKey)).toBe(true);
      expect(leaf.ca).toBe(false);
      expect(leaf.checkPrivateKey(createPrivateKey(readFileSync(join(out, `${name}.key`))))).toBe(true);
      expect(leaf.subjectAltName).toContain(`URI:spiffe://shop/${name}`);
      expect(leaf.subjectAltName).toContain('DNS:localhost');
      expect(leaf.subjectAltName).toContain('DNS:shop.example');
      expect(leaf.subjectAltName).toContain('IP Address:127.0.0.1');
      expect(leaf.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));
    }
    expect(certificate(join(out, 'goods.crt')).subjectAltName).toContain('IP Address:10.0.0.2');
    expect(certificate(join(out, 'members.crt')).subjectAltName).not.toContain('10.0.0.2');
  });

  it('makes its folder writable by this user only, whatever the umask: it holds the CA key', () => {
    // Under umask 000 the folder was 0777: any local user could put a CA of their own in it, which
    // the running components took at once (they re-read their files) and the next run kept.
    const out = join(dir, 'nested', 'certs');
    const result = spawnSync(
      'sh',
      ['-c', 'umask 000 && exec "$0" scripts/certs.mjs --out "$1"', process.execPath, out],
      {
        encoding: 'utf8',
      },
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    for (const folder of [out, join(dir, 'nested')]) expect(statSync(folder).mode & 0o777).toBe(0o755);
    expect(statSync(join(out, 'ca.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(out, 'ca.crt')).mode & 0o777).toBe(0o644);
  });

  it('makes certificates valid from an hour before, so that a host whose clock is behind takes them', () => {
    // A second machine's clock a few minutes behind refused certificates made now as not yet valid.
    const before = Date.now();
    expect(certs(['--out', dir]).status).toBe(0);
    const after = Date.now();
    expect(NOT_BEFORE_MARGIN_MS).toBe(60 * 60 * 1000);
    for (const name of ['ca', ...COMPONENTS]) {
      const made = certificate(join(dir, `${name}.crt`));
      const validFrom = Date.parse(made.validFrom);
      expect(validFrom).toBeLessThanOrEqual(after - NOT_BEFORE_MARGIN_MS);
      // To the second (the certificate holds no less), and no earlier than the margin.
      expect(validFrom).toBeGreaterThanOrEqual(before - NOT_BEFORE_MARGIN_MS - 1_000);
      // Its end is counted from now, as before: the margin takes nothing of its days.
      const days = name === 'ca' ? 3650 : 825;
      expect(Date.parse(made.validTo)).toBeGreaterThanOrEqual(before + days * 86_400_000 - 1_000);
    }
  });

  it('takes IPv6 addresses bare or in brackets, as the components take them', () => {
    const out = join(dir, 'certs');
    const result = certs([
      '--out',
      out,
      '--host',
      'distributor=fd63:163::1',
      '--host',
      'goods=[fd63:163::2]',
    ]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(certificate(join(out, 'distributor.crt')).subjectAltName).toContain(
      'IP Address:FD63:163:0:0:0:0:0:1',
    );
    expect(certificate(join(out, 'goods.crt')).subjectAltName).toContain('IP Address:FD63:163:0:0:0:0:0:2');
  });

  it('keeps an existing CA and issues the certificates again from it', () => {
    expect(certs(['--out', dir]).status).toBe(0);
    const before = certificate(join(dir, 'ca.crt')).fingerprint256;
    const goodsBefore = certificate(join(dir, 'goods.crt')).serialNumber;

    const again = certs(['--out', dir]);
    expect(again.stdout).toContain('kept the CA');
    expect(certificate(join(dir, 'ca.crt')).fingerprint256).toBe(before);
    expect(certificate(join(dir, 'goods.crt')).serialNumber).not.toBe(goodsBefore);
  });

  it('names a CA it makes as --ca-name says, for a second CA beside the first (a split CA)', () => {
    expect(certs(['--out', join(dir, 'first')]).status).toBe(0);
    expect(certificate(join(dir, 'first', 'ca.crt')).subject).toBe('CN=shop development CA');
    const second = certs(['--out', join(dir, 'second'), '--ca-name', 'shop gateways CA']);
    expect(second.stderr).toBe('');
    const ca = certificate(join(dir, 'second', 'ca.crt'));
    expect(ca.subject).toBe('CN=shop gateways CA');
    expect(certificate(join(dir, 'second', 'gateway.crt')).issuer).toBe('CN=shop gateways CA');
    // The same command again renews the certificates from the CA it keeps.
    const renewed = certs(['--out', join(dir, 'second'), '--ca-name', 'shop gateways CA']);
    expect([renewed.status, renewed.stderr]).toEqual([0, '']);
    expect(renewed.stdout).toContain('kept the CA');
    expect(certificate(join(dir, 'second', 'ca.crt')).fingerprint256).toBe(ca.fingerprint256);
    // A CA kept is not renamed: the name would say one thing and the certificate another.
    const kept = certs(['--out', join(dir, 'second'), '--ca-name', 'another CA']);
    expect(kept.status).toBe(2);
    expect(kept.stderr).toContain('drop --ca-name to renew its certificates, or add --new-ca to replace it');
    expect(certificate(join(dir, 'second', 'ca.crt')).fingerprint256).toBe(ca.fingerprint256);
    // The name every run gives, spaces and all, would defeat the option's purpose.
    const same = certs(['--out', join(dir, 'third'), '--ca-name', 'shop development CA']);
    expect([same.status, same.stderr]).toEqual([
      2,
      'certs: --ca-name: "shop development CA" is the name every run gives its CA: choose another\n',
    ]);
    const spaced = certs(['--out', join(dir, 'third'), '--ca-name', ' shop development CA']);
    expect([spaced.status, spaced.stderr]).toEqual([
      2,
      'certs: --ca-name: " shop development CA" has spaces around it\n',
    ]);
  });

  it('takes the host names the components take: a trailing dot (left out of the certificate), underscores', () => {
    // Found giving it names the components took: `shop.test.` and `my_svc.shop.internal` were
    // refused ("expected a host name or an IP address"), so no certificate could name them.
    const out = join(dir, 'certs');
    const result = certs(['--out', out, '--host', 'Shop.Test.', '--host', 'goods=my_svc.shop.internal']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const goods = certificate(join(out, 'goods.crt'));
    expect(goods.subjectAltName).toContain('DNS:shop.test,');
    expect(goods.subjectAltName).toContain('DNS:my_svc.shop.internal');
    // As a client dialling the name checks it (Node drops the dot of a name dialled with one).
    expect(checkServerIdentity('shop.test.', goods.toLegacyObject())).toBeUndefined();
    expect(checkServerIdentity('my_svc.shop.internal', goods.toLegacyObject())).toBeUndefined();
  });

  it('takes a host name exactly when the components take it', () => {
    const takes = (host: string): boolean => {
      try {
        splitHosts([host]);
        return true;
      } catch {
        return false;
      }
    };
    for (const host of [
      'shop.test',
      'shop.test.',
      'my_svc',
      'svc_1.shop.internal',
      `${'a'.repeat(63)}.test`,
      `${'a'.repeat(64)}.test`,
      `${'a.'.repeat(126)}b`,
      `${'a.'.repeat(127)}b`,
      '-shop.test',
      'shop-.test',
      'shop..test',
      '.shop.test',
      'shop test',
      '10.0.0.999',
      '10.0.0.2',
      'fd00::2',
    ]) {
      expect({ host, certs: takes(host) }).toEqual({ host, certs: isHostNameOrAddress(host) });
    }
  });

  it('names --out when it cannot make or write its folder, as a user who did not install the project meets it', () => {
    // Run by a user who cannot write the project's folder, the default ./certs failed with node's
    // words alone (EACCES … mkdir), which did not say that --out gives another folder. A file in
    // the way fails the same way as a folder of another user, and is testable as root.
    const inTheWay = join(dir, 'a-file');
    writeFileSync(inTheWay, '');
    for (const out of [join(inTheWay, 'certs'), inTheWay]) {
      const result = certs(['--out', out]);
      expect(result.status).toBe(2);
      expect(result.stderr).toMatch(
        new RegExp(
          `^certs: --out: cannot write the certificates in ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(E[A-Z]+: .*\\): give --out a folder this user can write\\n$`,
        ),
      );
    }
  });

  it('does not name --out when what fails is elsewhere: its scratch folder under TMPDIR', () => {
    // A TMPDIR it cannot make its scratch folder in failed as '--out: cannot write the
    // certificates in …', while --out was fine and another --out would fail the same way.
    const inTheWay = join(dir, 'a-file');
    writeFileSync(inTheWay, '');
    const result = certs(['--out', join(dir, 'certs')], { ...process.env, TMPDIR: inTheWay });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/^certs: ENOTDIR: not a directory, mkdtemp /);
    expect(result.stderr).not.toContain('--out');
  });

  it('refuses a bad host or an unknown component before writing anything', () => {
    for (const host of [
      'not a host',
      'shop=10.0.0.2',
      'goods=fe80::1%eth0',
      'fe80::1%2',
      'goods=10.0.0.999',
    ]) {
      const result = certs(['--out', join(dir, 'out'), '--host', host]);
      expect(result.status).toBe(2);
      expect(result.stderr).toMatch(/^certs: /);
    }
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });
});
