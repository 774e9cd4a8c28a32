import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  openSync,
  readFileSync,
  type Stats,
  statSync,
} from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { clockDifferenceText } from './clock-difference.js';
import { ConfigError } from './config.js';
import { identityForName, TRUST_DOMAIN, uriSans } from './identity.js';
import { issuedBy } from './issued-by.js';
import { nonEmpty } from './settings.js';

/**
 * Where a component's TLS material is: PEM files. The certificate and the key come together; the
 * CA file holds the certificates a peer's certificate must chain to.
 */
export interface TlsFiles extends TlsFilePaths {
  /**
   * The setting each file came from, as the usage names it ("--tls-cert (TLS_CERT)"), so that a
   * message about a file says what to change; without it, messages name the file alone.
   */
  readonly sources?: TlsFileSources;
}

/** The files alone of TlsFiles. */
export interface TlsFilePaths {
  /** CA certificates (PEM, one or more) that the peer's certificate must be issued by. */
  readonly caFile?: string;
  /** This side's certificate, optionally followed by its intermediates (PEM). */
  readonly certFile?: string;
  /** The private key of `certFile` (PEM, unencrypted). */
  readonly keyFile?: string;
}

/** The files of TlsFiles by their field. */
export type TlsFileRole = keyof TlsFilePaths;

/** By file, the setting it came from. */
export type TlsFileSources = { readonly [Role in TlsFileRole]?: string };

/** The contents of TlsFiles, checked: the key belongs to the certificate, every PEM block parses. */
export interface TlsMaterial {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/**
 * How often the files are read again by default. Rotation tools replace certificates well before
 * they expire, so a few seconds of delay costs nothing, while reading three small files every few
 * seconds costs next to nothing either.
 */
export const DEFAULT_TLS_REFRESH_MS = 5_000;

/** How changed TLS files are picked up. */
export interface TlsRefreshOptions {
  /** How often the files are read again; default DEFAULT_TLS_REFRESH_MS. */
  readonly refreshIntervalMs?: number;
  /**
   * Told when changed files cannot be used (unreadable, or a key that does not belong to the
   * certificate); the last good material stays in use. A failure is reported once it has been seen
   * on two reads in a row, so the torn moment of a rotation that replaces the certificate and then
   * the key is not reported.
   */
  readonly onReloadError?: (error: ConfigError) => void;
  /**
   * Told, once per certificate (the leaf, its intermediates, the CAs), when one in use nears its end
   * (see {@link expiresSoonWithin}), and once it has expired, again every hour: checked after every
   * read, changed or not, since a certificate never renewed would stop every handshake without a word.
   */
  readonly onExpiry?: (notice: ExpiryNotice) => void;
  /**
   * Told when changed files were taken (new connections use them from then on), once per file that
   * changed: the certificate file with the end of its new certificate, the CA file with its count of
   * CAs. A renewal is otherwise silent, and one that was taken looks like one that never happened.
   */
  readonly onReload?: (notice: ReloadNotice) => void;
  /**
   * Told the certificates of the CA file once changed ones were taken, after onReload (and after
   * onCertificateTaken when the certificate changed in the same read): connections
   * already open were checked against the CAs before, and a server that must not keep a peer whose
   * CA was removed (the distributor's registry streams) checks them again (see peer-chain.ts).
   */
  readonly onCaTaken?: (authorities: readonly X509Certificate[]) => void;
  /**
   * Told once a changed certificate (a renewal: a new key pair) was taken, after onReload: only new
   * connections present it, so a connection kept open for long (a registration with the
   * distributor) still rides on the handshake of the certificate before, and is moved to a new one
   * (see RegistrationClient.renewConnection). Not told when only the CA file changed; told before
   * onCaTaken when both changed in one read.
   */
  readonly onCertificateTaken?: () => void;
}

/** What {@link TlsRefreshOptions.onReload} is told. */
export interface ReloadNotice {
  readonly role: 'certFile' | 'caFile';
  readonly file: string;
  /** The setting that gave the file, when known (TlsFiles.sources): "--tls-cert (TLS_CERT)". */
  readonly setting?: string;
  /** The end of the new certificate (certFile), or of the first CA to end (caFile). */
  readonly validTo?: Date;
  /** The new certificate's SHA-256 fingerprint (certFile only). */
  readonly fingerprint?: string;
  /** How many certificates the file holds: the certificate and its intermediates, or the CAs. */
  readonly certificates: number;
}

/** What {@link TlsRefreshOptions.onExpiry} is told. */
export interface ExpiryNotice {
  readonly file: string;
  /** The setting that gave the file, when known (TlsFiles.sources): "--tls-cert (TLS_CERT)". */
  readonly setting?: string;
  readonly validTo: Date;
  readonly expired: boolean;
  /**
   * The subject of the intermediate CA that ends, when it is one after the certificate in the
   * certificate file rather than the certificate itself: a renewal of the certificate from the same
   * intermediate keeps that end, so the intermediate is what must be renewed.
   */
  readonly intermediate?: string;
  /**
   * The subject of the root CA that ends, when the certificate file holds it after the certificate
   * (a chain written whole, root included): not an intermediate to renew, but the CA to rotate.
   */
  readonly root?: string;
}

/** How long before its end a certificate in use is said to expire soon, at most. */
export const EXPIRY_WARNING_MS = 7 * 24 * 60 * 60 * 1000;

/**
 * The share of its life a certificate has left when renewers have replaced it at the latest: a
 * third (step-ca, cert-manager) down to about a tenth (Vault Agent, kubelet). A warning before it
 * would be given at each healthy renewal; after it, the renewal is late.
 */
const RENEWED_BY_SHARE = 1 / 10;

/**
 * How long after the renewers' latest point a certificate is said to expire soon: a renewal a day
 * late is late. Certificates of less than 20 days are told of in the last twentieth of their life
 * instead (EXPIRY_WARNING_SHARE), which leaves a renewal at a tenth time to be read.
 */
const RENEWAL_GRACE_MS = 24 * 60 * 60 * 1000;

/**
 * The share of its life a certificate has left when it is said to expire soon at the latest.
 * Short-lived certificates (minutes to days, from cert-manager, Vault or step-ca) would be called
 * expiring by a week's warning as soon as they are taken, a warning at each renewal that says
 * nothing.
 */
const EXPIRY_WARNING_SHARE = 1 / 20;

/**
 * How long before its end `certificate` is said to expire soon: a week, or less for a certificate
 * of less than 80 days, so that no healthy renewal is warned of (see RENEWED_BY_SHARE): a day
 * into its last tenth, and in its last twentieth at the latest. A 90-day certificate is told of a week
 * before its end (its renewers renewed it 9 to 30 days before), a 30-day one 2 days before, a
 * 24-hour one 72 minutes before, a 3-minute one 9 s before.
 */
export function expiresSoonWithin(certificate: Pick<X509Certificate, 'validFrom' | 'validTo'>): number {
  const life = Math.max(0, Date.parse(certificate.validTo) - Date.parse(certificate.validFrom));
  const beforeRenewers = life * RENEWED_BY_SHARE - RENEWAL_GRACE_MS;
  return Math.min(EXPIRY_WARNING_MS, Math.max(life * EXPIRY_WARNING_SHARE, beforeRenewers));
}

/** How often a certificate in use that has expired is told of again. */
const EXPIRED_REPEAT_MS = 60 * 60 * 1000;

/**
 * The largest TLS file read. A certificate or a key is a few KiB, a bundle of every public CA a few
 * hundred: anything larger is the wrong file, and would be held in memory at every re-read.
 */
export const MAX_TLS_FILE_BYTES = 1024 * 1024;

/**
 * A FIFO opened for reading would wait for a writer, and a process stuck in a synchronous open or
 * read ignores SIGTERM: the path is stat'ed first, which never blocks, and then opened without
 * blocking in case it was replaced in between (what was opened is checked again).
 */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

/** The clock skew between machines a certificate's start date is allowed (Kerberos's default). */
const CLOCK_SKEW_MS = 5 * 60 * 1000;

const LABELS = { caFile: 'TLS CA file', certFile: 'TLS certificate file', keyFile: 'TLS key file' } as const;

/**
 * Whether the value of a setting that names a PEM file is what such a file holds rather than its
 * path: PEM text (a key's, as `?ssl=` took it, or as a secret store hands it over as a variable),
 * the base64 of PEM text (a Kubernetes secret's data), or a base64 body with no file of that name.
 * Such a value may be a private key: it is never put in a message (a file that cannot be read is
 * named by its path, which would have printed the key).
 */
export function looksLikePemContent(value: string): boolean {
  if (/-----(BEGIN|END) |^\s*LS0tLS1/.test(value)) return true;
  // A body's lines, joined or not. A path with a stray line break (a value read from a file that
  // ends in one) has a dot or a dash somewhere: it is named as it is.
  return /^[A-Za-z0-9+/=\s]{64,}$/.test(value) && !existsSync(value);
}

/**
 * Parses a setting that names a PEM file (a CA, a certificate, a private key): a path, not the
 * file's contents, which are refused without being shown (see looksLikePemContent).
 */
export function parsePemFilePath(value: string, source: string): string {
  nonEmpty(value, source);
  if (looksLikePemContent(value)) {
    throw new ConfigError(
      `${source}: expected the path of a PEM file, got what looks like the contents of one (PEM text or its base64, not shown: it may be a private key): put them in a file and give its path`,
    );
  }
  return value;
}

/** A file in messages: what it is, where it is and, when known, the setting that gave it. */
function named(files: TlsFiles, role: TlsFileRole): string {
  const source = files.sources?.[role];
  const file = files[role];
  const where =
    file !== undefined && looksLikePemContent(file)
      ? '(not a path but what looks like the contents of a PEM file: not shown)'
      : `"${file}"`;
  return `${LABELS[role]} ${where}${source === undefined ? '' : ` from ${source}`}`;
}

type RawMaterial = { -readonly [K in keyof TlsMaterial]: TlsMaterial[K] };

/**
 * How long readTlsFiles waits for files that read as a rotation leaves them midway (a key that is
 * not the certificate's, a file that is missing, empty or cut short) to settle before it gives up. A renewer
 * that writes the key and then the certificate (Vault Agent's templates, a script's two copies)
 * holds such a pair for a moment; a component started then, or restarted by its supervisor, stopped
 * for good with exit 2, where a moment later it would have started.
 */
export const ROTATION_SETTLE_MS = 2_000;

/** How often files caught midway through a rotation are read again while readTlsFiles waits. */
const SETTLE_STEP_MS = 100;

/** What files caught midway through a rotation look like: read again a moment later, it may pass. */
class UnsettledTlsFilesError extends ConfigError {}

/**
 * Reads and checks TLS files at startup, so that a wrong path or a mismatched key stops the
 * component with a ConfigError naming the file, not with a stack trace from inside grpc-js or
 * node:tls at the first connection. Files that look caught midway through a rotation are read
 * again for up to `settleMs` (default ROTATION_SETTLE_MS; 0 where the event loop must not wait),
 * blocking, as the component is starting.
 */
export function readTlsFiles(files: TlsFiles, { settleMs = ROTATION_SETTLE_MS } = {}): TlsMaterial {
  const deadline = performance.now() + settleMs;
  for (;;) {
    try {
      checkPairing(files);
      const raw: RawMaterial = {};
      if (files.caFile !== undefined) raw.ca = readSync(files, 'caFile', files.caFile);
      if (files.certFile !== undefined) raw.cert = readSync(files, 'certFile', files.certFile);
      if (files.keyFile !== undefined) raw.key = readSync(files, 'keyFile', files.keyFile);
      return checkTlsMaterial(files, raw);
    } catch (error) {
      if (!(error instanceof UnsettledTlsFilesError) || performance.now() >= deadline) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, SETTLE_STEP_MS);
    }
  }
}

/**
 * Polls TLS files for changes and hands over new material once it checks out; until then, and
 * whenever the files are unreadable or inconsistent, the last good material stays in use. The
 * first read happens at once (the files may have changed while nothing watched them). The timer is
 * unref'd: watching alone keeps no process alive. Returns the function that stops watching.
 */
export function watchTlsFiles(
  files: TlsFiles,
  initial: TlsMaterial,
  onChange: (material: TlsMaterial) => void,
  options: TlsRefreshOptions = {},
  /**
   * Whether a new certificate must name the component the one in use names (see checkSameIdentity)
   * and chain to the CA file as the one in use does (see checkIssuedByTrustedCa): true for gRPC,
   * where the identity is the component's and every peer trusts the same CA; false for the
   * gateway's HTTPS side, whose certificate may come from any CA its REST clients trust.
   */
  { sameIdentity = true }: { readonly sameIdentity?: boolean } = {},
): () => void {
  let current = initial;
  let reading = false;
  let stopped = false;
  let lastFailure: string | undefined;
  let reportedFailure: string | undefined;
  /** When each notice was last given, by certificate and whether it had expired. */
  const told = new Map<string, number>();
  const checkExpiry = (): void => {
    if (!options.onExpiry) return;
    const held: Array<[TlsFileRole, Buffer | undefined]> = [
      ['certFile', current.cert],
      ['caFile', current.ca],
    ];
    const inUse = new Set<string>();
    for (const [role, pem] of held) {
      const file = files[role];
      if (file === undefined || pem === undefined) continue;
      // The leaf, its intermediates and the CAs: any one of them past its end fails the handshake.
      for (const [index, block] of certificateBlocks(pem).entries()) {
        const certificate = parseCertificate(block);
        if (!certificate) continue;
        inUse.add(certificate.fingerprint256);
        const validTo = new Date(certificate.validTo);
        const left = validTo.getTime() - Date.now();
        if (left > expiresSoonWithin(certificate)) continue;
        const expired = left <= 0;
        const key = `${certificate.fingerprint256} ${expired}`;
        const last = told.get(key);
        // Said once; an expired one again every hour, for as long as it is in use.
        if (last !== undefined && (!expired || performance.now() - last < EXPIRED_REPEAT_MS)) continue;
        told.set(key, performance.now());
        const setting = files.sources?.[role];
        options.onExpiry({
          file,
          validTo,
          expired,
          ...(setting === undefined ? {} : { setting }),
          ...(role === 'certFile' && index > 0
            ? isRoot(certificate)
              ? { root: oneLine(certificate.subject) }
              : { intermediate: oneLine(certificate.subject) }
            : {}),
        });
      }
    }
    // Renewed every few minutes, certificates come and go for as long as the process runs: what was
    // told of ones no longer in use is forgotten.
    for (const key of told.keys()) {
      if (!inUse.has(key.slice(0, key.indexOf(' ')))) told.delete(key);
    }
  };
  const poll = async (): Promise<void> => {
    if (reading) return;
    reading = true;
    try {
      const raw = await readAsync(files);
      if (stopped) return;
      if (sameMaterial(raw, current)) {
        // The files are back to those in use: a failure seen before is over, and the next one is
        // news of its own, reported only if the read after it finds it too. Kept, a renewer that
        // rewrites the same files in place (empty for a moment) had a read that caught it empty
        // once reported as tls-reload-failed when another read, hours later, caught it so again.
        lastFailure = reportedFailure = undefined;
        return;
      }
      const next = checkTlsMaterial(files, raw);
      if (sameIdentity) {
        checkSameIdentity(files, current, next);
        checkIssuedByTrustedCa(files, current, next);
      }
      checkStarted(files, current, next);
      onChange(next);
      const before = current;
      current = next;
      tellReload(files, before, next, options.onReload);
      // The renewal first: a registration moves once for both (the CA check finds the renewal's move
      // under way, made against the new CA file, and holds it to the check's bound). The other way
      // round the CA check's move went out first, and the renewal queued a second one after it.
      if (options.onCertificateTaken && next.cert && !before.cert?.equals(next.cert)) {
        options.onCertificateTaken();
      }
      if (options.onCaTaken && next.ca && !before.ca?.equals(next.ca)) {
        options.onCaTaken(authoritiesOf(next.ca));
      }
      lastFailure = reportedFailure = undefined;
    } catch (error) {
      if (stopped) return;
      const failure = error instanceof ConfigError ? error : new ConfigError(String(error));
      if (failure.message === lastFailure && failure.message !== reportedFailure) {
        reportedFailure = failure.message;
        options.onReloadError?.(failure);
      }
      lastFailure = failure.message;
    } finally {
      // After the read: what stays in use is told of, not the certificate a renewal just replaced.
      if (!stopped) checkExpiry();
      reading = false;
    }
  };
  const timer = setInterval(() => void poll(), options.refreshIntervalMs ?? DEFAULT_TLS_REFRESH_MS);
  timer.unref();
  void poll();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

/** Tells `onReload` of the certificate file and the CA file whose contents changed from `before` to `next`. */
function tellReload(
  files: TlsFiles,
  before: TlsMaterial,
  next: TlsMaterial,
  onReload: TlsRefreshOptions['onReload'],
): void {
  if (!onReload) return;
  const changed = (a: Buffer | undefined, b: Buffer | undefined): boolean =>
    a === undefined || b === undefined ? a !== b : !a.equals(b);
  const roles: Array<['certFile' | 'caFile', Buffer | undefined, Buffer | undefined]> = [
    ['certFile', before.cert, next.cert],
    ['caFile', before.ca, next.ca],
  ];
  for (const [role, old, now] of roles) {
    const file = files[role];
    if (file === undefined || now === undefined || !changed(old, now)) continue;
    const certificates = certificateBlocks(now).flatMap((block) => parseCertificate(block) ?? []);
    const ends = (role === 'certFile' ? certificates.slice(0, 1) : certificates).map((c) =>
      Date.parse(c.validTo),
    );
    const setting = files.sources?.[role];
    onReload({
      role,
      file,
      certificates: certificates.length,
      ...(ends.length === 0 ? {} : { validTo: new Date(Math.min(...ends)) }),
      ...(role === 'certFile' && certificates[0] ? { fingerprint: certificates[0].fingerprint256 } : {}),
      ...(setting === undefined ? {} : { setting }),
    });
  }
}

function checkPairing(files: TlsFiles): void {
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) {
    const [given, missing] =
      files.certFile === undefined ? (['keyFile', 'certFile'] as const) : (['certFile', 'keyFile'] as const);
    throw new ConfigError(`${named(files, given)} needs a ${LABELS[missing]} to go with it`);
  }
}

function checkTlsMaterial(files: TlsFiles, raw: RawMaterial): TlsMaterial {
  for (const [role, pem] of [
    ['caFile', raw.ca],
    ['certFile', raw.cert],
  ] as const) {
    if (pem && cutShort(pem)) {
      throw new UnsettledTlsFilesError(
        `${named(files, role)} is cut short: it has a PEM block without its END line`,
      );
    }
  }
  if (raw.ca) {
    const problem = caCertificatesProblem(raw.ca);
    if (problem === NOT_PEM_CERTIFICATES)
      throw new UnsettledTlsFilesError(`${named(files, 'caFile')}${problem}`);
    if (problem) throw new ConfigError(`${named(files, 'caFile')}${problem}`);
    // Read again at start, as a rotation may leave it so: a bundle written a block at a time, its
    // intermediate first (`cat intermediate.crt root.crt > ca.crt`), holds whole blocks without the
    // root for a moment, which cutShort does not see, and a component started then stopped with exit 2.
    const rootless = rootlessCaProblem(raw.ca);
    if (rootless) throw new UnsettledTlsFilesError(`${named(files, 'caFile')}${rootless}`);
  }
  if (raw.cert && raw.key) {
    const certificate = leafOf(raw.cert);
    if (!certificate) {
      throw new UnsettledTlsFilesError(`${named(files, 'certFile')}: expected a PEM certificate`);
    }
    let key: KeyObject;
    try {
      key = createPrivateKey(raw.key);
    } catch {
      throw new UnsettledTlsFilesError(`${named(files, 'keyFile')}: expected an unencrypted PEM private key`);
    }
    if (!certificate.checkPrivateKey(key)) {
      throw new UnsettledTlsFilesError(
        `${named(files, 'keyFile')} is not the key of ${named(files, 'certFile')}`,
      );
    }
    const nowMs = Date.now();
    if (Date.parse(certificate.validTo) < nowMs) {
      throw new ConfigError(
        `${named(files, 'certFile')} expired on ${new Date(certificate.validTo).toISOString()}, ${clockNote(Date.parse(certificate.validTo), nowMs)}: renew it, or, if this host's clock is ahead, set it right (NTP)`,
      );
    }
    // Peers refuse it as they refuse an expired one ("certificate is not yet valid"): taken on a
    // re-read, it would fail every new handshake, where the certificate in use still works. A start
    // within the clock skew machines have is left alone: a certificate just issued on a machine whose
    // clock runs a little ahead is good for peers whose clocks agree with it.
    if (Date.parse(certificate.validFrom) > nowMs + CLOCK_SKEW_MS) {
      throw new ConfigError(
        `${named(files, 'certFile')} is not valid before ${new Date(certificate.validFrom).toISOString()}, ${clockNote(Date.parse(certificate.validFrom), nowMs)}: if it was issued since then, this host's clock is behind the clock of the machine that issued it; set it right (NTP)`,
      );
    }
    checkUsable(files, raw.cert, raw.key);
  }
  return raw;
}

/** What node:tls's refusals of a certificate and key say to do, by OpenSSL's reason. */
const REFUSALS: Readonly<Record<string, string>> = {
  'ee key too small':
    "its key is too small for OpenSSL's security level: issue one with an RSA key of 2048 bits or more, or an EC key",
  'ca md too weak': 'it is signed with a digest too weak (MD5 or SHA-1): issue it again with SHA-256',
};

/**
 * Checks that node:tls takes the certificate and key, as every handshake would build them into a
 * secure context: a pair that matches and is in its dates may still be refused by OpenSSL's
 * security level (a 512-bit RSA key, a certificate signed with SHA-1), and, taken on a re-read, would
 * have failed every new connection while the pair in use still worked. OpenSSL's reason says
 * nothing of the key's text.
 */
function checkUsable(files: TlsFiles, cert: Buffer, key: Buffer): void {
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // "error:0A00018F:SSL routines::ee key too small": the reason alone.
    const reason = /^error:[0-9A-Fa-f]+:[^:]*:[^:]*:(.+)$/.exec(message)?.[1] ?? 'refused';
    throw new ConfigError(
      `${named(files, 'certFile')} and ${named(files, 'keyFile')} cannot be used for TLS (${reason})${REFUSALS[reason] === undefined ? '' : `: ${REFUSALS[reason]}`}`,
    );
  }
}

const NOT_PEM_CERTIFICATES = ': expected PEM certificates';

/**
 * A certificate's date against this host's clock ("23 h after this host's clock"): a host whose
 * clock is off reads a certificate issued elsewhere as expired or not valid yet, and the message says
 * by how much, so that the clock is the first suspect. Coarse, so that the message of a re-read that
 * fails the same way stays the same (a failure is logged once two reads agree).
 */
function clockNote(dateMs: number, nowMs: number): string {
  return `${clockDifferenceText(dateMs - nowMs, true)} ${dateMs > nowMs ? 'after' : 'before'} this host's clock`;
}

/**
 * What is wrong with `pem` as CA certificates, said after the name of where it came from
 * (": expected PEM certificates"), or undefined when every block is a certificate that may issue.
 */
export function caCertificatesProblem(pem: Buffer): string | undefined {
  const certificates = certificateBlocks(pem).map(parseCertificate);
  if (certificates.length === 0 || certificates.includes(undefined)) return NOT_PEM_CERTIFICATES;
  // node:tls takes a component's own certificate given as the CA, and every handshake then fails
  // with an error about the peer's issuer that does not say why: said here instead.
  const notCa = certificates.find((certificate) => certificate !== undefined && !canIssue(certificate));
  if (notCa) {
    return ` holds a certificate that is not a CA (${notCa.subject.replaceAll('\n', ', ')}): give the certificate of the CA that issued the peers' certificates`;
  }
  return undefined;
}

/**
 * What is wrong with CA certificates (every one a CA, see caCertificatesProblem) that hold no root,
 * said as caCertificatesProblem says it, or undefined when one of them is a root (see isRoot).
 * Node verifies a peer's chain only up to a root of its CA file (OpenSSL's partial chains are off):
 * a CA file of an intermediate alone, as an operator whose PKI issues from an intermediate may give
 * it, accepts no peer, even one that sends the root after its intermediate, and every handshake
 * failed with "unable to get issuer certificate" (UNABLE_TO_GET_ISSUER_CERT) while the component
 * itself started. A root beside intermediates whose own root is missing is left alone: it anchors
 * the chains it issued.
 */
export function rootlessCaProblem(pem: Buffer): string | undefined {
  const certificates = authoritiesOf(pem);
  if (certificates.length === 0 || certificates.some(isRoot)) return undefined;
  const [intermediate] = certificates as [X509Certificate];
  return ` holds no root CA, only an intermediate (${oneLine(intermediate.subject)}, issued by ${oneLine(intermediate.issuer)}): a peer's chain is checked up to a root (a self-signed CA) of the CA file, so every peer would be refused; give the root (a certificate file holds the certificate then its intermediates, the CA file the root)`;
}

/**
 * Whether a certificate ends a chain as OpenSSL takes a root: self-issued (its subject is its issuer,
 * and no key identifier says another key signed it), its own signature left unchecked, as OpenSSL
 * leaves it for a trust anchor. A root whose self-signature does not verify (signed by another key
 * of the same name, or broken) anchors chains all the same: refused for it, a CA file that works
 * stopped the component at start.
 */
function isRoot(certificate: X509Certificate): boolean {
  return certificate.checkIssued(certificate);
}

/** A certificate's subject or issuer on one line ("CN=test CA, O=shop"). */
function oneLine(name: string): string {
  return name.replaceAll('\n', ', ');
}

/**
 * A renewed certificate is taken only once it has started. The clock skew allowed at start (when
 * nothing else could be served) is no reason to take it on a re-read: peers check its start against
 * their own clocks, and every new handshake would fail ("certificate is not yet valid") until then,
 * while the certificate in use still works. The next read after its start takes it, as the files
 * still differ from the material in use. Unless the one in use has expired: then nothing works, and
 * the new one works at least for peers whose clocks run ahead.
 */
function checkStarted(files: TlsFiles, current: TlsMaterial, next: TlsMaterial): void {
  const offered = next.cert === undefined ? undefined : leafOf(next.cert);
  if (!offered || Date.parse(offered.validFrom) <= Date.now()) return;
  const held = current.cert === undefined ? undefined : leafOf(current.cert);
  if (!held || Date.parse(held.validTo) < Date.now()) return;
  throw new ConfigError(
    `${named(files, 'certFile')} is not valid before ${new Date(offered.validFrom).toISOString()}: peers would refuse it until then, and it is taken at the first read after`,
  );
}

/** A PEM's first certificate: the component's own, before its intermediates. */
function leafOf(pem: Buffer): X509Certificate | undefined {
  const leaf = certificateBlocks(pem)[0];
  return leaf === undefined ? undefined : parseCertificate(leaf);
}

/**
 * A renewed certificate must name the component the one in use names (`spiffe://shop/<name>`): the
 * name a node registered under and its peers check (secure naming) stays the same while it runs,
 * so a certificate of another component, taken on a re-read, would fail every new handshake with
 * a peer and every registration again (PERMISSION_DENIED).
 */
function checkSameIdentity(files: TlsFiles, current: TlsMaterial, next: TlsMaterial): void {
  if (!current.cert || !next.cert) return;
  const held = shopIdentities(current.cert);
  if (held.length === 0) return;
  const offered = shopIdentities(next.cert);
  if (offered.length === held.length && offered.every((identity) => held.includes(identity))) return;
  throw new ConfigError(
    `${named(files, 'certFile')} names ${offered.join(', ') || 'no identity'}, not ${held.join(', ')} as the certificate in use does: a component keeps its identity while it runs; restart it with a certificate of another name`,
  );
}

/**
 * A renewed certificate must be issued by the CA file (read with it) when the one in use is: every
 * component is given the same ca.crt, so peers trust no other issuer, and a certificate of another
 * CA (say, copied from an `npm run certs --new-ca` run or another shop), taken on a re-read, would
 * fail every new handshake, with peers and with the distributor, while the one in use still works.
 * A CA rotation that first adds the new CA to ca.crt, then renews the certificates, then drops the
 * old CA passes at every step; one that replaces ca.crt first is left alone (the certificate in use
 * no longer chains either).
 */
function checkIssuedByTrustedCa(files: TlsFiles, current: TlsMaterial, next: TlsMaterial): void {
  if (!next.ca || !current.cert || !next.cert) return;
  const authorities = authoritiesOf(next.ca);
  if (!chainsTo(current.cert, authorities) || chainsTo(next.cert, authorities)) return;
  // A renewer that writes the certificate alone, without the intermediate its PKI issued it from
  // (the intermediate handed apart, as a "ca_chain" or "issuing_ca"): the CA is right, the file is not.
  const top = chainOf(next.cert).at(-1);
  const missing = chainOf(current.cert)
    .slice(1)
    .find((held) => held.subject === top?.issuer && !isRoot(held));
  if (missing) {
    throw new ConfigError(
      `${named(files, 'certFile')} lacks the intermediate CA that issued it (${oneLine(missing.subject)}), which the certificate in use has after it: peers would refuse it; put the intermediates after the certificate in the file`,
    );
  }
  throw new ConfigError(
    `${named(files, 'certFile')} is not issued by a CA of ${named(files, 'caFile')}, as the certificate in use is: peers given the same CA would refuse it; issue it with that CA (npm run certs keeps ca.key)`,
  );
}

/**
 * Checks at start that a component's certificate is not the work of another CA of the same name as
 * one of its CA file: a host given the ca.crt of one `npm run certs` run and the certificates of
 * another (every run names its CA alike) listened and dialled, and its peers, given the same
 * ca.crt, refused its every handshake, which the component itself never saw. A certificate whose
 * issuer the CA file does not name at all is left alone: a shop may give its kinds of components
 * certificates of different CAs, each trusting the others' (one CA for the services, another for
 * the gateways), so a component's own issuer need not be among the CAs it checks its peers with.
 */
export function checkIssuedByOwnCa(files: TlsFiles, material: TlsMaterial): void {
  if (!material.ca || !material.cert) return;
  const authorities = authoritiesOf(material.ca);
  if (chainsTo(material.cert, authorities)) return;
  const links = certificateBlocks(material.cert).flatMap((block) => parseCertificate(block) ?? []);
  const claimed = links.find((link) => authorities.some((authority) => authority.subject === link.issuer));
  if (!claimed) return;
  // An intermediate after the certificate, when it is the one that names the CA (another PKI's,
  // named as this one's are).
  const naming = claimed === links[0] ? '' : ` holds an intermediate CA (${oneLine(claimed.subject)}) that`;
  throw new ConfigError(
    `${named(files, 'certFile')}${naming} names as its issuer "${oneLine(claimed.issuer)}", a CA of ${named(files, 'caFile')}, but was not signed by it: peers given the same CA would refuse it; use a certificate and a CA file of the same \`npm run certs\` run`,
  );
}

/** The certificates of a CA file. */
export function authoritiesOf(pem: Buffer): X509Certificate[] {
  return certificateBlocks(pem).flatMap((block) => parseCertificate(block) ?? []);
}

/** Whether a PEM's first certificate, through the intermediates after it, is issued by one of `authorities`. */
function chainsTo(pem: Buffer, authorities: readonly X509Certificate[]): boolean {
  return chainOf(pem).some((link) => authorities.some((authority) => issuedBy(link, authority)));
}

/**
 * A PEM's first certificate, then the intermediate after it that issued it, and so on for as long
 * as one of the file did: the chain a peer can build from the file alone, its top the last.
 */
function chainOf(pem: Buffer): X509Certificate[] {
  const certificates = certificateBlocks(pem).flatMap((block) => parseCertificate(block) ?? []);
  const chain: X509Certificate[] = [];
  let link: X509Certificate | undefined = certificates[0];
  // At most as many links as certificates: a chain that loops ends here, not in an endless walk.
  while (link !== undefined && chain.length < certificates.length) {
    chain.push(link);
    const subject: X509Certificate = link;
    link = certificates
      .slice(1)
      .find((intermediate) => intermediate !== subject && issuedBy(subject, intermediate));
  }
  return chain;
}

/**
 * Checks at start that a component's certificate names it (`spiffe://shop/<name>`): a component
 * whose peers check its name (secure naming: the distributor, whom every service and gateway dials)
 * would otherwise listen and serve nobody, every peer refusing its handshake, with nothing said
 * where it runs.
 */
export function checkOwnIdentity(files: TlsFiles, name: string): void {
  const { cert } = readTlsFiles(files);
  if (!cert) return;
  const expected = identityForName(name);
  const offered = shopIdentities(cert);
  if (offered.includes(expected)) return;
  throw new ConfigError(
    `${named(files, 'certFile')} names ${offered.join(', ') || 'no identity'}, not ${expected}: the ${name} needs its own certificate (${name}.crt of \`npm run certs\`), as its peers accept no other`,
  );
}

/** The `spiffe://shop/…` URI SANs of a PEM's first certificate. */
function shopIdentities(pem: Buffer): string[] {
  return uriSans(leafOf(pem)?.subjectAltName)
    .filter((identity) => identity.startsWith(`spiffe://${TRUST_DOMAIN}/`))
    .sort();
}

function readSync(files: TlsFiles, role: TlsFileRole, file: string): Buffer {
  try {
    checkReadable(statSync(file), files, role);
    const fd = openSync(file, OPEN_FLAGS);
    try {
      checkReadable(fstatSync(fd), files, role);
      return readFileSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    throw error instanceof ConfigError ? error : unreadable(files, role, error);
  }
}

async function readAsync(files: TlsFiles): Promise<RawMaterial> {
  checkPairing(files);
  const read = async (role: TlsFileRole): Promise<Buffer | undefined> => {
    const file = files[role];
    if (file === undefined) return undefined;
    try {
      checkReadable(await stat(file), files, role);
      const handle = await open(file, OPEN_FLAGS);
      try {
        checkReadable(await handle.stat(), files, role);
        return await handle.readFile();
      } finally {
        await handle.close();
      }
    } catch (error) {
      throw error instanceof ConfigError ? error : unreadable(files, role, error);
    }
  };
  const [ca, cert, key] = await Promise.all([read('caFile'), read('certFile'), read('keyFile')]);
  const raw: RawMaterial = {};
  if (ca) raw.ca = ca;
  if (cert) raw.cert = cert;
  if (key) raw.key = key;
  return raw;
}

/**
 * Refuses what is not a regular file (a device such as /dev/zero never ends, a FIFO waits for a
 * writer) and what is too large to be PEM. Stats of the target: a symlink to a regular file, as
 * rotation tools make, is read.
 */
function checkReadable(stats: Stats, files: TlsFiles, role: TlsFileRole): void {
  if (!stats.isFile()) {
    throw new ConfigError(`${named(files, role)} is not a regular file: it is ${fileKind(stats)}`);
  }
  if (stats.size > MAX_TLS_FILE_BYTES) {
    throw new ConfigError(
      `${named(files, role)} is larger than ${MAX_TLS_FILE_BYTES / 1024 / 1024} MiB (${stats.size} bytes): not a PEM file`,
    );
  }
}

function fileKind(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  return 'not a file';
}

function unreadable(files: TlsFiles, role: TlsFileRole, error: unknown): ConfigError {
  const code = (error as NodeJS.ErrnoException).code;
  const file = files[role] ?? '';
  // node:fs's messages repeat the path ("ENAMETOOLONG: name too long, stat '…'"), which named() gives.
  const message = error instanceof Error ? error.message : String(error);
  const reason =
    code === 'ENOENT'
      ? 'no such file'
      : code === 'EACCES'
        ? 'permission denied'
        : code === 'EISDIR'
          ? 'it is a directory'
          : file === ''
            ? message
            : message.replaceAll(file, '…');
  const problem = `${named(files, role)} cannot be read: ${reason}`;
  // A renewer that deletes a file before it writes the new one (`rm` then `cp`, a folder replaced
  // whole) leaves it missing for a moment: read again, as a pair caught midway is. A file's contents
  // given as its path will not appear.
  return code === 'ENOENT' && !looksLikePemContent(file)
    ? new UnsettledTlsFilesError(problem)
    : new ConfigError(problem);
}

function sameMaterial(a: TlsMaterial, b: TlsMaterial): boolean {
  const same = (x: Buffer | undefined, y: Buffer | undefined): boolean =>
    x === undefined || y === undefined ? x === y : x.equals(y);
  return same(a.ca, b.ca) && same(a.cert, b.cert) && same(a.key, b.key);
}

/**
 * Whether `pem` ends in a block without its END line, as a file rewritten in place reads while it
 * is being written: the complete blocks before it parse, so a CA file read so was taken without
 * its last CAs (node:tls drops the broken one too), and a certificate file cut in its intermediate
 * was refused by node:tls at once ("bad end line") instead of read again.
 */
function cutShort(pem: Buffer): boolean {
  const text = pem.toString('utf8');
  const begun = text.match(/-----BEGIN [^-\r\n]*-----/g)?.length ?? 0;
  const ended = text.match(/-----BEGIN ([^-\r\n]*)-----[\s\S]*?-----END \1-----/g)?.length ?? 0;
  return begun > ended;
}

function certificateBlocks(pem: Buffer): string[] {
  return pem.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/**
 * Whether a certificate may issue others: basicConstraints CA:TRUE, or an X.509 version 1 root,
 * which has no extensions to say so and which OpenSSL takes as a CA all the same (old roots are).
 */
function canIssue(certificate: X509Certificate): boolean {
  return certificate.ca || (isVersion1(certificate.raw) && certificate.checkIssued(certificate));
}

/** Whether DER `certificate` is X.509 version 1: its TBSCertificate starts without the [0] version. */
function isVersion1(certificate: Buffer): boolean {
  // Past the headers of the Certificate and TBSCertificate SEQUENCEs: a length byte of 0x8n is
  // followed by n bytes of length.
  let offset = 0;
  for (let header = 0; header < 2; header++) {
    const length = certificate[offset + 1] ?? 0;
    offset += 2 + (length & 0x80 ? length & 0x7f : 0);
  }
  return certificate[offset] !== 0xa0;
}

function parseCertificate(block: string): X509Certificate | undefined {
  try {
    return new X509Certificate(block);
  } catch {
    return undefined;
  }
}
