import { existsSync } from 'node:fs';
import { ConfigError } from './config.js';
import { nonEmpty } from './settings.js';

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
