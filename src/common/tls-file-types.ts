import { looksLikePemContent } from './pem-file-path.js';

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

export const LABELS = {
  caFile: 'TLS CA file',
  certFile: 'TLS certificate file',
  keyFile: 'TLS key file',
} as const;

/** A file in messages: what it is, where it is and, when known, the setting that gave it. */
export function named(files: TlsFiles, role: TlsFileRole): string {
  const source = files.sources?.[role];
  const file = files[role];
  const where =
    file !== undefined && looksLikePemContent(file)
      ? '(not a path but what looks like the contents of a PEM file: not shown)'
      : `"${file}"`;
  return `${LABELS[role]} ${where}${source === undefined ? '' : ` from ${source}`}`;
}
