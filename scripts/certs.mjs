// Makes a development PKI for mutual TLS between the components: one CA, and per component a
// certificate with the URI SAN spiffe://shop/<name> (its identity, see src/common/identity.ts), the
// DNS SAN localhost, the IP SAN 127.0.0.1 and any extra --host, valid from an hour back (clock skew
// between hosts). Keys are made with node:crypto and
// signed by the openssl CLI. Importable: the tests make throwaway PKIs with the same functions.
//
//   npm run certs -- [--out DIR] [--host NAME_OR_IP]... [--host COMPONENT=NAME_OR_IP]... [--new-ca]
//                    [--ca-name NAME]
//
// An existing CA in DIR is kept and the component certificates are issued again from it, so that a
// re-run renews them and running components pick them up (they re-read their files); --new-ca
// replaces the CA too. A CA this run makes is named "shop development CA" unless --ca-name says
// otherwise: a second CA for some components (a split CA) needs a name of its own, as a component
// refuses to start with a certificate of a CA named as one of its CA file that did not sign it
// (the mistake of mixing two runs' files). For development only: the CA key sits next to the
// certificates.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

/** The components of the shop, each of which gets a certificate by default. */
export const COMPONENTS = ['distributor', 'gateway', 'goods', 'members', 'purchases'];

/**
 * A certificate for people's tools (grpcurl, scripts): spiffe://shop/operator. It is accepted by
 * every mTLS server like any certificate of the CA, but the distributor refuses a node registering
 * under it (OPERATOR_NAME in src/common/identity.ts).
 */
export const OPERATOR = 'operator';

/** The trust domain of the URI SANs; the same as TRUST_DOMAIN in src/common/identity.ts. */
const TRUST_DOMAIN = 'shop';

const CA_DAYS = 3650;
/** The name of a CA unless --ca-name gives another. */
const DEFAULT_CA_NAME = 'shop development CA';
const LEAF_DAYS = 825;

/**
 * Makes a CA: `<dir>/<name>.crt` and `<dir>/<name>.key` (mode 0600). `pathLength` (default 0: it
 * issues the components' certificates itself) is how many intermediate CAs may stand below it:
 * tests make a root that issues through an intermediate, as step-ca, Vault PKI or a corporate PKI do.
 * @param {string} dir
 * @param {{ name?: string, commonName?: string, pathLength?: number }} [options]
 * @returns {{ certFile: string, keyFile: string }}
 */
export function createCa(dir, { name = 'ca', commonName = DEFAULT_CA_NAME, pathLength = 0 } = {}) {
  checkName(name);
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  return withScratch((scratch) => {
    const { config, newKey, csr } = caRequest(scratch, commonName, { pathLength, issued: false });
    const newCert = join(scratch, 'ca.crt');
    sign(scratch, { csr, config, days: CA_DAYS, out: newCert, issuer: { keyFile: newKey } });
    publish(newKey, keyFile);
    publish(newCert, certFile);
    return { certFile, keyFile };
  });
}

/**
 * Makes an intermediate CA signed by `issuer` (a CA whose pathLength allows one): `<dir>/<name>.crt`,
 * `<dir>/<name>.key` (mode 0600), and `chainFile`, `<dir>/<name>-chain.crt`: its certificate then
 * the intermediates above it, which issueCertificate puts after each certificate it issues from it
 * (a component's certificate file holds its certificate then its intermediates; its CA file the root).
 * @param {{ certFile: string, keyFile: string, chainFile?: string }} issuer
 * @param {string} dir
 * @param {{ name: string, commonName: string, days?: number, notBefore?: Date }} options
 * @returns {{ certFile: string, keyFile: string, chainFile: string }}
 */
export function createIntermediateCa(issuer, dir, { name, commonName, days = CA_DAYS, notBefore }) {
  checkName(name);
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  const chainFile = join(dir, `${name}-chain.crt`);
  return withScratch((scratch) => {
    const { config, newKey, csr } = caRequest(scratch, commonName, { pathLength: 0, issued: true });
    const newCert = join(scratch, 'intermediate.crt');
    sign(scratch, { csr, config, days, out: newCert, issuer, notBefore });
    const newChain = join(scratch, 'intermediate-chain.crt');
    writeFileSync(newChain, withChainOf(issuer, readFileSync(newCert)));
    publish(newKey, keyFile);
    publish(newCert, certFile);
    publish(newChain, chainFile);
    return { certFile, keyFile, chainFile };
  });
}

/**
 * A CA's new key and its signing request in `scratch`, with the extensions' configuration to sign
 * it with: a CA that may stand above `pathLength` more CAs, naming the key that signed it when it is
 * `issued` by another CA (an intermediate), as a root names none.
 * @param {string} scratch
 * @param {string} commonName
 * @param {{ pathLength: number, issued: boolean }} options
 */
function caRequest(scratch, commonName, { pathLength, issued }) {
  const config = join(scratch, 'ca.cnf');
  writeFileSync(
    config,
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      '[dn]',
      `CN = ${configValue(commonName)}`,
      '[ext]',
      `basicConstraints = critical, CA:TRUE, pathlen:${pathLength}`,
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      ...(issued ? ['authorityKeyIdentifier = keyid'] : []),
      '',
    ].join('\n'),
  );
  const newKey = join(scratch, 'ca.key');
  writeKey(newKey);
  const csr = join(scratch, 'ca.csr');
  openssl(['req', '-new', '-key', newKey, '-config', config, '-out', csr]);
  return { config, newKey, csr };
}

/** `certificate` (PEM) followed by the chain of `issuer` when it is an intermediate CA. */
function withChainOf(issuer, certificate) {
  return issuer.chainFile ? Buffer.concat([certificate, readFileSync(issuer.chainFile)]) : certificate;
}

/**
 * Issues a certificate signed by `ca`: `<dir>/<name>.crt` and `<dir>/<name>.key` (mode 0600), for
 * server and client authentication, with the URI SAN of `identity` (default: `name`), the DNS SAN
 * localhost, the IP SAN 127.0.0.1 and `hosts` (host names or IP addresses). Issued by an
 * intermediate CA (createIntermediateCa), the certificate file holds the certificate then that CA's chain.
 * @param {{ certFile: string, keyFile: string, chainFile?: string }} ca
 * @param {string} dir
 * `notBefore` (default: NOT_BEFORE_MARGIN_MS ago) lets tests make a certificate far into its life.
 * @param {{ name: string, identity?: string, hosts?: readonly string[], days?: number, notBefore?: Date }} options
 * @returns {{ certFile: string, keyFile: string }}
 */
export function issueCertificate(
  ca,
  dir,
  { name, identity = name, hosts = [], days = LEAF_DAYS, notBefore },
) {
  checkName(name);
  checkName(identity);
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  const { dns, ips } = splitHosts(['localhost', '127.0.0.1', ...hosts]);
  return withScratch((scratch) => {
    const config = join(scratch, 'leaf.cnf');
    writeFileSync(
      config,
      [
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        '[dn]',
        `CN = ${identity}`,
        '[ext]',
        'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature',
        'extendedKeyUsage = serverAuth, clientAuth',
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid',
        'subjectAltName = @alt',
        '[alt]',
        `URI.1 = spiffe://${TRUST_DOMAIN}/${identity}`,
        ...dns.map((host, index) => `DNS.${index + 1} = ${host}`),
        ...ips.map((ip, index) => `IP.${index + 1} = ${ip}`),
        '',
      ].join('\n'),
    );
    const newKey = join(scratch, 'leaf.key');
    writeKey(newKey);
    const csr = join(scratch, 'leaf.csr');
    openssl(['req', '-new', '-key', newKey, '-config', config, '-out', csr]);
    const newCert = join(scratch, 'leaf.crt');
    sign(scratch, { csr, config, days, out: newCert, issuer: ca, notBefore });
    writeFileSync(newCert, withChainOf(ca, readFileSync(newCert)));
    publish(newKey, keyFile);
    publish(newCert, certFile);
    return { certFile, keyFile };
  });
}

/**
 * Makes the development PKI in `dir`: `ca.crt`/`ca.key` (kept if both exist, unless `newCa`) and
 * `<name>.crt`/`<name>.key` for each of `names`, with `hosts` on every certificate and
 * `hostsByName[name]` on that component's only. A CA it makes is named `caName` if given.
 * @param {string} dir
 * @param {{ names?: readonly string[], hosts?: readonly string[], hostsByName?: Readonly<Record<string, readonly string[]>>, newCa?: boolean, caName?: string }} [options]
 * @returns {{ ca: { certFile: string, keyFile: string, created: boolean }, certificates: Record<string, { certFile: string, keyFile: string }> }}
 */
export function makeDevPki(
  dir,
  { names = [...COMPONENTS, OPERATOR], hosts = [], hostsByName = {}, newCa = false, caName } = {},
) {
  if (caName !== undefined) {
    configValue(caName);
    if (caName !== caName.trim()) throw new Error(`--ca-name: "${caName}" has spaces around it`);
    if (caName === DEFAULT_CA_NAME) {
      throw new Error(`--ca-name: "${caName}" is the name every run gives its CA: choose another`);
    }
  }
  for (const name of Object.keys(hostsByName)) {
    if (!names.includes(name))
      throw new Error(`--host ${name}=...: "${name}" is not one of ${names.join(', ')}`);
  }
  // Refuse a bad host before anything is written.
  for (const name of names) splitHosts([...hosts, ...(hostsByName[name] ?? [])]);
  // Never writable by others, whatever the umask (000 made it 0777): it holds the CA key, and a CA
  // put in it would be trusted by the components, which re-read their files, and kept by a re-run.
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const existing = { certFile: join(dir, 'ca.crt'), keyFile: join(dir, 'ca.key') };
  const reuse = !newCa && existsSync(existing.certFile) && existsSync(existing.keyFile);
  if (reuse && caName !== undefined && !namedAs(existing.certFile, caName)) {
    throw new Error(
      `--ca-name: the CA kept, ${existing.certFile}, has another name: drop --ca-name to renew its certificates, or add --new-ca to replace it`,
    );
  }
  const ca = reuse ? existing : createCa(dir, caName === undefined ? {} : { commonName: caName });
  const certificates = {};
  for (const name of names) {
    certificates[name] = issueCertificate(ca, dir, { name, hosts: [...hosts, ...(hostsByName[name] ?? [])] });
  }
  return { ca: { ...ca, created: !reuse }, certificates };
}

/** Whether the CA certificate in `file` is named `commonName` (its subject is that CN alone). */
function namedAs(file, commonName) {
  return new X509Certificate(readFileSync(file)).subject === `CN=${commonName}`;
}

/** A component name: it becomes a file name and the path of a URI, so only [a-z0-9-]. */
function checkName(name) {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) {
    throw new Error(`expected a name of lowercase letters, digits and dashes, got "${name}"`);
  }
}

/**
 * A DNS name's labels, as the components' --host and --advertise-host take them (HOST_NAME in
 * src/common/config.ts; a test holds the two together): underscores too (container and compose
 * service names use them; OpenSSL, Node and Go check a certificate's names with them) and a
 * trailing dot, which the certificate carries without (a DNS SAN is written without one, and
 * checks drop the dot of the name dialled). A wildcard first label (`*.shop.example`) too.
 */
const HOST_NAME =
  /^(?=.{1,253}$)(?:\*\.)?[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/**
 * Sorts hosts into DNS names and IP addresses, refusing anything else (it goes into a config
 * file): the names the components take, written as a certificate carries them (lower case,
 * without a trailing dot).
 *
 * @param {readonly string[]} hosts
 * @returns {{ dns: string[], ips: string[] }}
 */
export function splitHosts(hosts) {
  const dns = [];
  const ips = [];
  for (const given of hosts) {
    // An IPv6 address may come in brackets, as the components' --host takes it.
    const host = /^\[.*\]$/.test(given) && isIP(given.slice(1, -1)) === 6 ? given.slice(1, -1) : given;
    if (host.includes('%') && isIP(host)) {
      // openssl refuses it mid-run, after some certificates were written.
      throw new Error(
        `--host: a zone id (%${host.split('%')[1]}) cannot be in a certificate, got "${given}"`,
      );
    }
    if (isIP(host)) {
      if (!ips.includes(host)) ips.push(host);
    } else if (
      HOST_NAME.test(host) &&
      // Digits and dots alone are a mistyped IPv4 address (10.0.0.999), not a name, as the
      // components' --host and --advertise-host take them: it went in as a DNS name no peer dials.
      !/^[0-9.]+$/.test(host)
    ) {
      const name = host.toLowerCase().replace(/\.$/, '');
      if (!dns.includes(name)) dns.push(name);
    } else {
      throw new Error(`--host: expected a host name or an IP address, got "${host}"`);
    }
  }
  return { dns, ips };
}

function configValue(text) {
  if (!/^[\w .-]+$/.test(text)) throw new Error(`expected a plain common name, got "${text}"`);
  return text;
}

/** A P-256 key in PKCS#8 PEM, readable by its owner only. */
function writeKey(file) {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
}

/**
 * How long before the moment it is made a certificate becomes valid: a machine whose clock is
 * behind the one that made it (the certificates are copied to other hosts) would otherwise refuse
 * it as not yet valid for as long as its clock is behind. An hour, as public CAs backdate theirs.
 */
export const NOT_BEFORE_MARGIN_MS = 60 * 60 * 1000;

/**
 * The config of `openssl ca` as sign() runs it: its database, serial and new certificates in the
 * folder it runs in, the subject's common name required, SHA-256. `extensions`: lines appended after
 * it (a section of extensions of the config's own, as the tests' signer gives them).
 */
export function opensslCaConfig(extensions = []) {
  return [
    '[ca]',
    'default_ca = issuer',
    '[issuer]',
    'database = index.txt',
    'serial = serial',
    'new_certs_dir = .',
    'policy = names',
    'unique_subject = no',
    'default_md = sha256',
    '[names]',
    'commonName = supplied',
    ...extensions,
    '',
  ].join('\n');
}

/**
 * Signs the request `csr` with the [ext] section of `config`: by `issuer` (a CA's certFile and
 * keyFile), or by its own key (`issuer` with a keyFile alone: a CA's own certificate). Valid from
 * `notBefore` (default: NOT_BEFORE_MARGIN_MS ago) for `days` from now, SHA-256, with a random positive serial of up to 127
 * bits (RFC 5280 asks for unpredictable serials). `openssl ca`, since OpenSSL 3.0's x509 and req
 * cannot set the start of the validity; its database and serial files are throwaway ones in
 * `scratch`, named relative to it (a path in its config file could hold characters it expands).
 */
function sign(
  scratch,
  { csr, config, days, out, issuer, notBefore = new Date(Date.now() - NOT_BEFORE_MARGIN_MS) },
) {
  const serial = randomBytes(16);
  serial[0] &= 0x7f;
  writeFileSync(join(scratch, 'serial'), `${serial.toString('hex')}\n`);
  writeFileSync(join(scratch, 'index.txt'), '');
  const caConfig = join(scratch, 'ca-command.cnf');
  writeFileSync(caConfig, opensslCaConfig());
  // YYYYMMDDHHMMSSZ, which openssl writes as UTCTime for the years RFC 5280 wants it for.
  const startDate = `${notBefore.toISOString().slice(0, 19).replace(/[-T:]/g, '')}Z`;
  const signer = issuer.certFile ? ['-cert', issuer.certFile] : ['-selfsign'];
  openssl(
    [
      'ca',
      '-batch',
      '-notext',
      '-config',
      caConfig,
      '-in',
      csr,
      '-out',
      out,
      '-keyfile',
      issuer.keyFile,
      ...signer,
      '-startdate',
      startDate,
      '-days',
      String(days),
      '-md',
      'sha256',
      '-extfile',
      config,
      '-extensions',
      'ext',
      '-preserveDN',
    ],
    scratch,
  );
}

function openssl(args, cwd = undefined) {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'], cwd });
  } catch (error) {
    if (error.code === 'ENOENT') throw new Error('the openssl command is needed to make certificates');
    throw new Error(`openssl ${args[0]} failed: ${String(error.stderr ?? error.message).trim()}`);
  }
}

/** Runs `work` with a private scratch folder, removed afterwards. */
function withScratch(work) {
  const scratch = mkdtempSync(join(tmpdir(), 'shop-certs-'));
  try {
    return work(scratch);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * Moves a finished file into place with a rename, so that a running component re-reading its files
 * never sees half a file. Staged next to the target: a rename does not cross file systems.
 */
function publish(source, target) {
  const mode = target.endsWith('.key') ? 0o600 : 0o644;
  const staged = `${target}.${process.pid}.tmp`;
  writeFileSync(staged, readFileSync(source), { mode });
  chmodSync(staged, mode);
  renameSync(staged, target);
}

/** The errors of a folder that cannot be made or written: this user's rights, a read-only mount, a file in the way. */
const FOLDER_ERRORS = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EEXIST']);

/**
 * Whether `path` is the folder `dir`, in it, or a folder it is made in: an error there is --out's.
 * @param {string} path
 * @param {string} dir
 */
function withinOrAbove(path, dir) {
  const inside = (from, to) => {
    const rest = relative(from, to);
    return !rest.startsWith('..') && !isAbsolute(rest);
  };
  return inside(dir, path) || inside(path, dir);
}

/**
 * Runs `write`, naming --out when it fails to make or write the folder `dir`: run by a user who
 * cannot write the project's folder (installed by another), the default ./certs fails, and node's
 * `EACCES: permission denied, mkdir …` alone did not say which setting gives another folder. Only
 * an error of a path there: the scratch folder (TMPDIR) failing is not --out's to fix.
 * @template T
 * @param {string} dir
 * @param {() => T} write
 * @returns {T}
 */
function withOutFolderNamed(dir, write) {
  try {
    return write();
  } catch (error) {
    const { code, path } = /** @type {NodeJS.ErrnoException} */ (error);
    if (code === undefined || !FOLDER_ERRORS.has(code)) throw error;
    if (path === undefined || !withinOrAbove(resolve(path), dir)) throw error;
    throw new Error(
      `--out: cannot write the certificates in ${dir} (${error instanceof Error ? error.message : String(error)}): give --out a folder this user can write`,
    );
  }
}

function main(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string', default: 'certs' },
      host: { type: 'string', multiple: true, default: [] },
      'new-ca': { type: 'boolean', default: false },
      'ca-name': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(
      'usage: npm run certs -- [--out DIR] [--host NAME_OR_IP]... [--host COMPONENT=NAME_OR_IP]... [--new-ca] [--ca-name NAME]\n',
    );
    return;
  }
  const hosts = [];
  const hostsByName = {};
  for (const value of values.host) {
    const match = /^([a-z0-9-]+)=(.+)$/.exec(value);
    if (match) hostsByName[match[1]] = [...(hostsByName[match[1]] ?? []), match[2]];
    else hosts.push(value);
  }
  const dir = resolve(values.out);
  const { ca, certificates } = withOutFolderNamed(dir, () =>
    makeDevPki(dir, {
      hosts,
      hostsByName,
      newCa: values['new-ca'],
      caName: values['ca-name'],
    }),
  );
  process.stdout.write(`${ca.created ? 'made' : 'kept'} the CA ${ca.certFile}\n`);
  for (const [name, { certFile }] of Object.entries(certificates)) {
    process.stdout.write(`issued ${certFile} (spiffe://${TRUST_DOMAIN}/${name})\n`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    main(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`certs: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  }
}
