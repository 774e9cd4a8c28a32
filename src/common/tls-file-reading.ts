import { createPrivateKey, type KeyObject } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats, statSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { clockDifferenceText } from './clock-difference.js';
import { ConfigError } from './config.js';
import { cutShort, leafOf } from './pem-certificates.js';
import { looksLikePemContent } from './pem-file-path.js';
import { caCertificatesProblem, NOT_PEM_CERTIFICATES, rootlessCaProblem } from './tls-certificate-checks.js';
import { LABELS, named, type TlsFileRole, type TlsFiles, type TlsMaterial } from './tls-file-types.js';

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

export type RawMaterial = { -readonly [K in keyof TlsMaterial]: TlsMaterial[K] };

/** What files caught midway through a rotation look like: read again a moment later, it may pass. */
export class UnsettledTlsFilesError extends ConfigError {}

export function checkPairing(files: TlsFiles): void {
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) {
    const [given, missing] =
      files.certFile === undefined ? (['keyFile', 'certFile'] as const) : (['certFile', 'keyFile'] as const);
    throw new ConfigError(`${named(files, given)} needs a ${LABELS[missing]} to go with it`);
  }
}

export function checkTlsMaterial(files: TlsFiles, raw: RawMaterial): TlsMaterial {
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

/**
 * A certificate's date against this host's clock ("23 h after this host's clock"): a host whose
 * clock is off reads a certificate issued elsewhere as expired or not valid yet, and the message says
 * by how much, so that the clock is the first suspect. Coarse, so that the message of a re-read that
 * fails the same way stays the same (a failure is logged once two reads agree).
 */
function clockNote(dateMs: number, nowMs: number): string {
  return `${clockDifferenceText(dateMs - nowMs, true)} ${dateMs > nowMs ? 'after' : 'before'} this host's clock`;
}

export function readSync(files: TlsFiles, role: TlsFileRole, file: string): Buffer {
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

export async function readAsync(files: TlsFiles): Promise<RawMaterial> {
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
