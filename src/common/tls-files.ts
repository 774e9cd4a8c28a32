import type { X509Certificate } from 'node:crypto';
import { ConfigError } from './config.js';
import { identityForName } from './identity.js';
import { authoritiesOf, certificateBlocks, oneLine, parseCertificate } from './pem-certificates.js';
import {
  checkIssuedByTrustedCa,
  checkSameIdentity,
  checkStarted,
  isRoot,
  shopIdentities,
} from './tls-certificate-checks.js';
import {
  checkPairing,
  checkTlsMaterial,
  type RawMaterial,
  readAsync,
  readSync,
  UnsettledTlsFilesError,
} from './tls-file-reading.js';
import { named, type TlsFileRole, type TlsFiles, type TlsMaterial } from './tls-file-types.js';

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
  /**
   * Told at start, once per credentials made, what the checks of the files cannot refuse but peers
   * may: a certificate that chains to no CA of the CA file (see checkOwnChain), which peers given
   * the same CA file refuse, and peers of another CA file (split CAs) may accept.
   */
  readonly onStartWarning?: (warning: string) => void;
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
  /**
   * The subject of the CA that ends, when it is one of the CA file's: not a certificate to renew
   * either, but the CA to rotate (every peer it issued is refused past its end).
   */
  readonly ca?: string;
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
 * How long readTlsFiles waits for files that read as a rotation leaves them midway (a key that is
 * not the certificate's, a file that is missing, empty or cut short) to settle before it gives up. A renewer
 * that writes the key and then the certificate (Vault Agent's templates, a script's two copies)
 * holds such a pair for a moment; a component started then, or restarted by its supervisor, stopped
 * for good with exit 2, where a moment later it would have started.
 */
export const ROTATION_SETTLE_MS = 2_000;

/** How often files caught midway through a rotation are read again while readTlsFiles waits. */
const SETTLE_STEP_MS = 100;

/**
 * Reads and checks TLS files at startup, so that a wrong path or a mismatched key stops the
 * component with a ConfigError naming the file, not with a stack trace from inside grpc-js or
 * node:tls at the first connection. Files that look caught midway through a rotation are read
 * again for up to `settleMs` (default ROTATION_SETTLE_MS; 0 where the event loop must not wait),
 * blocking, as the component is starting.
 */
export function readTlsFiles(
  files: TlsFiles,
  {
    settleMs = ROTATION_SETTLE_MS,
    checkChain,
  }: {
    readonly settleMs?: number;
    /**
     * A check of the certificate against the CA file (checkOwnChain) whose refusals are read again
     * too: a certificate of one CA beside a CA file of another, or a CA file that holds a new
     * intermediate and not yet its root (`cat old-root.crt new-intermediate.crt new-root.crt`
     * caught between two writes), is what a CA rotation leaves midway as much as a key beside
     * another certificate is.
     */
    readonly checkChain?: (material: TlsMaterial) => void;
  } = {},
): TlsMaterial {
  const deadline = performance.now() + settleMs;
  for (;;) {
    try {
      checkPairing(files);
      const raw: RawMaterial = {};
      if (files.caFile !== undefined) raw.ca = readSync(files, 'caFile', files.caFile);
      if (files.certFile !== undefined) raw.cert = readSync(files, 'certFile', files.certFile);
      if (files.keyFile !== undefined) raw.key = readSync(files, 'keyFile', files.keyFile);
      const material = checkTlsMaterial(files, raw);
      try {
        checkChain?.(material);
      } catch (error) {
        throw error instanceof ConfigError
          ? new UnsettledTlsFilesError(error.message, { showUsage: error.showUsage })
          : error;
      }
      return material;
    } catch (error) {
      if (!(error instanceof UnsettledTlsFilesError) || performance.now() >= deadline) {
        // Each reason names the file and the flag it came from: the usage printed after it, some
        // hundred lines, would bury it.
        throw error instanceof ConfigError && error.showUsage
          ? new ConfigError(error.message, { cause: error.cause, showUsage: false })
          : error;
      }
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
          ...(role === 'caFile'
            ? { ca: oneLine(certificate.subject) }
            : index > 0
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
      checkReplacement(files, current, next, { sameIdentity });
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

/**
 * Checks that files read again (`next`, already through checkTlsMaterial) may replace those in use
 * (`current`): with `sameIdentity` (see watchTlsFiles), a certificate that names the component the
 * one in use names and chains to the CA file as it does; and one whose start has come.
 */
export function checkReplacement(
  files: TlsFiles,
  current: TlsMaterial,
  next: TlsMaterial,
  { sameIdentity = true }: { readonly sameIdentity?: boolean } = {},
): void {
  if (sameIdentity) {
    checkSameIdentity(files, current, next);
    checkIssuedByTrustedCa(files, current, next);
  }
  checkStarted(files, current, next);
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
    { showUsage: false },
  );
}

function sameMaterial(a: TlsMaterial, b: TlsMaterial): boolean {
  const same = (x: Buffer | undefined, y: Buffer | undefined): boolean =>
    x === undefined || y === undefined ? x === y : x.equals(y);
  return same(a.ca, b.ca) && same(a.cert, b.cert) && same(a.key, b.key);
}
