import type { SecureContextOptions } from 'node:tls';
import { ConfigError } from './config.js';
import type { TlsFiles, TlsMaterial } from './tls-file-types.js';
import { readTlsFiles, type TlsRefreshOptions, watchTlsFiles } from './tls-files.js';

/** What `https.createServer` needs for TLS, as the gRPC servers do it (see serverCredentials). */
export interface HttpsServerOptions {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  /** True with a CA file: clients must present a certificate issued by it. */
  requestCert: boolean;
  rejectUnauthorized: boolean;
}

/**
 * Options for a node:https server from TLS files, checked now (ConfigError naming the file). With a
 * CA file the server requires client certificates from that CA (mutual TLS), as the gRPC servers
 * do; a listener for browsers and curl should be given no CA file.
 */
export function httpsServerOptions(tls: TlsFiles): HttpsServerOptions {
  const { ca, cert, key } = readTlsFiles(tls);
  if (!cert || !key) throw new ConfigError('an HTTPS server needs a certificate file and a key file');
  const requireClientCertificate = ca !== undefined;
  return {
    cert,
    key,
    ...(ca ? { ca } : {}),
    requestCert: requireClientCertificate,
    rejectUnauthorized: requireClientCertificate,
  };
}

/** A server whose certificate can be replaced while it runs, such as node:https's. */
export interface SecureContextTarget {
  setSecureContext(options: SecureContextOptions): void;
}

/**
 * Keeps a running HTTPS server on the current TLS files: they are read again every
 * `refreshIntervalMs` and, when they changed and check out, given to `server.setSecureContext`,
 * so new connections get a renewed certificate without a restart (established ones keep theirs).
 * Whether client certificates are required stays as the server was created. The polling timer is
 * unref'd. Returns the function that stops watching; call it when the server closes.
 */
export function watchHttpsCertificates(
  server: SecureContextTarget,
  tls: TlsFiles,
  options: TlsRefreshOptions = {},
  /**
   * What the server was made with (httpsServerOptions' result). Read again here instead, files
   * renewed between the two reads were taken as in use and never given to the server, which
   * served the old certificate until the next renewal, or until it expired.
   */
  initial: TlsMaterial = readTlsFiles(tls),
): () => void {
  return watchTlsFiles(
    tls,
    initial,
    ({ ca, cert, key }) => server.setSecureContext({ cert, key, ...(ca ? { ca } : {}) }),
    options,
    // Browsers and curl check host names: an HTTPS certificate may name any component, or none.
    { sameIdentity: false },
  );
}
