import type { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import {
  type ChannelCredentials,
  type ChannelOptions,
  credentials,
  experimental,
  ServerCredentials,
} from '@grpc/grpc-js';
import { ConfigError } from './config.js';
import { identityForName, uriSans } from './identity.js';
import { checkOwnChain } from './tls-certificate-checks.js';
import type { TlsFiles, TlsMaterial } from './tls-file-types.js';
import { checkReplacement, readTlsFiles, type TlsRefreshOptions, watchTlsFiles } from './tls-files.js';

export type { TlsFilePaths, TlsFiles } from './tls-file-types.js';
export { DEFAULT_TLS_REFRESH_MS, type TlsRefreshOptions } from './tls-files.js';

/** How a client checks the server it dials. */
export interface ChannelTlsOptions extends TlsRefreshOptions {
  /**
   * Secure naming: the component the server must be, by its certificate's URI SAN
   * `spiffe://shop/<expectedName>`, instead of the usual check of the dialled host name. Components
   * dial each other by the address they registered, which need not be in any certificate, while
   * the name is what the distributor routed by; a certificate for another component is refused.
   */
  readonly expectedName?: string;
}

/**
 * Credentials for a component's gRPC server. Plaintext without `tls`; with it, TLS with the
 * certificate and key, and with a CA file also mutual TLS: a client must present a certificate
 * issued by that CA, or the handshake fails. The files are checked now (ConfigError) and read
 * again every `refreshIntervalMs`, so renewed certificates (or a new CA bundle) serve new
 * connections without a restart; established connections keep the certificate they started with.
 */
export function serverCredentials(
  tls: TlsFiles | undefined,
  options: TlsRefreshOptions & { readonly handshakeTimeoutMs?: number } = {},
): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  if (tls.certFile === undefined || tls.keyFile === undefined) {
    throw new ConfigError('a TLS server needs a certificate file and a key file');
  }
  const material = readTlsFiles(tls, {
    checkChain: (read) => checkOwnChain(tls, read, options.onStartWarning),
  });
  const provider = new TlsFileProvider(tls, material, options);
  // grpc-js 1.14 passes the FIRST argument on as the identity provider and the second as the CA
  // provider, whatever its typings call them: one provider for both is right either way, and
  // without a CA the provider goes first. No CA provider means no client certificate is requested.
  const credentials =
    tls.caFile === undefined
      ? experimental.createCertificateProviderServerCredentials(provider, null, false)
      : experimental.createCertificateProviderServerCredentials(provider, provider, true);
  // grpc-js hands these options to the TLS server it makes for each port and has no setting of its
  // own for the handshake: with Node's default, a socket that never finishes its handshake holds a
  // connection, counted against --max-connections, for 120 s; keepalive starts only after it.
  const constructorOptions = credentials._getConstructorOptions();
  if (!constructorOptions) throw new Error('grpc-js made TLS server credentials without server options');
  constructorOptions.handshakeTimeout = options.handshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS;
  return credentials;
}

/** How long a client may take over its TLS handshake (gRPC ports and the gateway's HTTPS side). */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Credentials for a channel to another component. Plaintext without `tls`; with it, TLS that
 * verifies the server against the CA file (the system's roots without one) and presents the client
 * certificate when one is given (for servers that require mutual TLS). With `expectedName` the
 * server must carry that component's identity (secure naming); otherwise its certificate must
 * match the dialled host name. A server that fails the check fails the call with UNAVAILABLE.
 *
 * With a CA file, all files are read again every `refreshIntervalMs` for new connections, as on
 * the server. Without one they are read once: grpc-js rotates only through a CA provider, and a CA
 * read from the system would drop Node's own root handling (NODE_EXTRA_CA_CERTS, --use-openssl-ca).
 */
export function channelCredentials(
  tls: TlsFiles | undefined,
  options: ChannelTlsOptions = {},
): ChannelCredentials {
  if (!tls) return credentials.createInsecure();
  return credentialsOfFiles(tls, options)(options.expectedName);
}

/**
 * Channel credentials for each component name, checking its server's identity (secure naming), as
 * channelCredentials with `expectedName` gives them, from files read and checked once, now: a
 * component that learns the names it dials as it runs (the gateway, from the node list) must not
 * read them again then, where files caught in the middle of a rotation (a ca.crt replaced before
 * the certificates) would throw past its start. With a CA file every name shares one provider,
 * which reads the files again for new connections. Undefined without `tls`.
 */
export function channelCredentialsByName(
  tls: TlsFiles | undefined,
  options: TlsRefreshOptions = {},
): ((expectedName: string) => ChannelCredentials) | undefined {
  if (!tls) return undefined;
  const forName = credentialsOfFiles(tls, options);
  const byName = new Map<string, ChannelCredentials>();
  return (expectedName) => {
    let named = byName.get(expectedName);
    if (!named) {
      named = forName(expectedName);
      byName.set(expectedName, named);
    }
    return named;
  };
}

/** Reads and checks `tls` once; then makes channel credentials that check the server's name, if given. */
function credentialsOfFiles(
  tls: TlsFiles,
  options: TlsRefreshOptions,
): (expectedName: string | undefined) => ChannelCredentials {
  const material = readTlsFiles(tls, {
    checkChain: (read) => checkOwnChain(tls, read, options.onStartWarning),
  });
  const provider = material.ca === undefined ? undefined : new TlsFileProvider(tls, material, options);
  return (expectedName) => {
    const verify = expectedName === undefined ? {} : { checkServerIdentity: secureNaming(expectedName) };
    if (!provider) return credentials.createSsl(null, material.key ?? null, material.cert ?? null, verify);
    const made = experimental.createCertificateProviderChannelCredentials(
      provider,
      material.cert === undefined ? null : provider,
      verify,
    );
    providers.set(made, provider);
    return made;
  };
}

/**
 * The file provider behind channel credentials made here with a CA file. Kept beside the
 * credentials rather than on them: grpc-js's objects are its own, and a client handed credentials
 * (the distributor:/// resolver's Watch, a RegistryWatcher) can so follow their CA file with no
 * option of its own, which a program would have to remember to set.
 */
const providers = new WeakMap<ChannelCredentials, TlsFileProvider>();

/**
 * Follows the CA file behind `channel` when channelCredentials or channelCredentialsByName made
 * them with one: `listener` is told the CAs of each changed CA file taken, as
 * TlsRefreshOptions.onCaTaken is (after it, and after new connections took the file), while a
 * channel made with them has a connection or an attempt under way (the files are read only then;
 * with none, there is nothing made before a change to check). Returns the function that stops
 * following; undefined for credentials made otherwise (plaintext, no CA file, or not made here),
 * which tell of no file.
 */
export function followCaFile(
  channel: ChannelCredentials,
  listener: (authorities: readonly X509Certificate[]) => void,
): (() => void) | undefined {
  return providers.get(channel)?.followCaTaken(listener);
}

/**
 * Channel options to go with secure naming: the TLS server name becomes the component's name. The
 * name check ignores it either way, but without it grpc-js sends the dialled IP address as the
 * server name, which Node warns about (DEP0123) and RFC 6066 forbids.
 */
export function secureNamingChannelOptions(tls: TlsFiles | undefined, expectedName: string): ChannelOptions {
  return tls ? { 'grpc.ssl_target_name_override': expectedName } : {};
}

/** Anything that knows the TLS peer of a call, as a grpc-js server call does. */
export interface CallWithAuthContext {
  getAuthContext():
    | { readonly sslPeerCertificate?: Pick<PeerCertificate, 'subjectaltname'> }
    | null
    | undefined;
}

/**
 * The identities (URI SANs, e.g. `spiffe://shop/goods`) of the client certificate of a server
 * call; [] over plaintext or when the client presented no certificate. grpc-js reports only a
 * certificate that the server verified against its CA.
 */
export function peerIdentities(call: CallWithAuthContext): string[] {
  return uriSans(call.getAuthContext()?.sslPeerCertificate?.subjectaltname);
}

/** Accepts a server certificate carrying the URI SAN of `expectedName`, whatever its host names. */
function secureNaming(expectedName: string): (hostname: string, cert: PeerCertificate) => Error | undefined {
  const expected = identityForName(expectedName);
  return (_hostname, cert) => {
    const found = uriSans(cert.subjectaltname);
    if (found.includes(expected)) return undefined;
    const error: Error & { code?: string } = new Error(
      `the server's certificate is not for ${expected} (it names ${found.join(', ') || 'no identity'})`,
    );
    error.code = 'ERR_TLS_CERT_ALTNAME_INVALID';
    return error;
  };
}

/**
 * Hands grpc-js the material of TlsFiles, read again while anything listens. grpc-js's own
 * FileWatcherCertificateProvider is not used, because in 1.14 it delivers nothing before its first
 * asynchronous read, and a server drops every connection until then (the first call right after
 * bindAsync fails with UNAVAILABLE); and a file that is missing or torn for a moment (mid-rotation)
 * withdraws the credentials, so the server drops every new connection until the next good read.
 * This provider starts
 * from the material checked at construction, delivered on the next tick (grpc-js reads a server's
 * credentials before it subscribes), and keeps the last good material when a read fails.
 */
class TlsFileProvider implements experimental.CertificateProvider {
  private readonly caListeners = new Set<experimental.CaCertificateUpdateListener>();
  private readonly identityListeners = new Set<experimental.IdentityCertificateUpdateListener>();
  /** Told the CAs of each changed CA file taken, beside options.onCaTaken (see followCaFile). */
  private readonly caTakenListeners = new Set<(authorities: readonly X509Certificate[]) => void>();
  private stopWatching: (() => void) | undefined;
  private watchedBefore = false;

  constructor(
    private readonly files: TlsFiles,
    private material: TlsMaterial,
    private readonly options: TlsRefreshOptions,
  ) {}

  addCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    this.caListeners.add(listener);
    this.watch();
    process.nextTick(() => {
      if (this.caListeners.has(listener)) listener(this.caUpdate());
    });
  }

  removeCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(listener);
    this.unwatchIfUnused();
  }

  addIdentityCertificateListener(listener: experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.add(listener);
    this.watch();
    process.nextTick(() => {
      if (this.identityListeners.has(listener)) listener(this.identityUpdate());
    });
  }

  removeIdentityCertificateListener(listener: experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.delete(listener);
    this.unwatchIfUnused();
  }

  /** Tells `listener` of each changed CA file taken, until the function returned is called. */
  followCaTaken(listener: (authorities: readonly X509Certificate[]) => void): () => void {
    // A listener of its own each time: one client following twice stops each in its turn.
    const own = (authorities: readonly X509Certificate[]) => listener(authorities);
    this.caTakenListeners.add(own);
    return () => this.caTakenListeners.delete(own);
  }

  private watch(): void {
    if (this.stopWatching) return;
    if (this.watchedBefore) {
      // Nothing watched for a while (a channel that was closed, then dialled again): read the files
      // now, so that the next connection does not start from stale material. A failure keeps the
      // last good material, and the watcher reports it. Taken only as the watcher takes files: read
      // unchecked, a certificate it refuses (another component's, one of a CA the CA file does not
      // root) was presented at the first dial after an idle spell, and then watched as the one in use.
      try {
        const read = readTlsFiles(this.files, { settleMs: 0 });
        checkReplacement(this.files, this.material, read);
        this.material = read;
      } catch {}
    }
    this.watchedBefore = true;
    this.stopWatching = watchTlsFiles(
      this.files,
      this.material,
      (material) => {
        this.material = material;
        for (const listener of this.caListeners) listener(this.caUpdate());
        for (const listener of this.identityListeners) listener(this.identityUpdate());
      },
      {
        ...this.options,
        onCaTaken: (authorities) => {
          this.options.onCaTaken?.(authorities);
          for (const listener of this.caTakenListeners) listener(authorities);
        },
      },
    );
  }

  private unwatchIfUnused(): void {
    if (this.caListeners.size > 0 || this.identityListeners.size > 0) return;
    this.stopWatching?.();
    this.stopWatching = undefined;
  }

  private caUpdate(): experimental.CaCertificateUpdate | null {
    return this.material.ca ? { caCertificate: this.material.ca } : null;
  }

  private identityUpdate(): experimental.IdentityCertificateUpdate | null {
    const { cert, key } = this.material;
    return cert && key ? { certificate: cert, privateKey: key } : null;
  }
}
