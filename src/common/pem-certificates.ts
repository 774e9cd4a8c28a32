import { X509Certificate } from 'node:crypto';

/** A certificate's subject or issuer on one line ("CN=test CA, O=shop"). */
export function oneLine(name: string): string {
  return name.replaceAll('\n', ', ');
}

/** A PEM's first certificate: the component's own, before its intermediates. */
export function leafOf(pem: Buffer): X509Certificate | undefined {
  const leaf = certificateBlocks(pem)[0];
  return leaf === undefined ? undefined : parseCertificate(leaf);
}

/** The certificates of a CA file. */
export function authoritiesOf(pem: Buffer): X509Certificate[] {
  return certificateBlocks(pem).flatMap((block) => parseCertificate(block) ?? []);
}

/**
 * Whether `pem` ends in a block without its END line, as a file rewritten in place reads while it
 * is being written: the complete blocks before it parse, so a CA file read so was taken without
 * its last CAs (node:tls drops the broken one too), and a certificate file cut in its intermediate
 * was refused by node:tls at once ("bad end line") instead of read again.
 */
export function cutShort(pem: Buffer): boolean {
  const text = pem.toString('utf8');
  const begun = text.match(/-----BEGIN [^-\r\n]*-----/g)?.length ?? 0;
  const ended = text.match(/-----BEGIN ([^-\r\n]*)-----(?:(?!-----)[\s\S])*-----END \1-----/g)?.length ?? 0;
  return begun > ended;
}

/**
 * The certificate blocks of a PEM. A block's body stops at the first "-----", as no PEM body holds
 * one: searched up to any END line, each BEGIN without its own read on to the end of the file, and
 * a CA file of 1 MiB of such lines (a file being written, or one made to stall) took seconds at
 * every read, on the event loop (cutShort likewise).
 */
export function certificateBlocks(pem: Buffer): string[] {
  return (
    pem.toString('utf8').match(/-----BEGIN CERTIFICATE-----(?:(?!-----)[\s\S])+-----END CERTIFICATE-----/g) ??
    []
  );
}

export function parseCertificate(block: string): X509Certificate | undefined {
  try {
    return new X509Certificate(block);
  } catch {
    return undefined;
  }
}
