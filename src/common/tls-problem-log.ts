import type { Logger } from './logger.js';
import type { ExpiryNotice, TlsRefreshOptions } from './tls-files.js';

/**
 * Whose certificates a component's CA file checks: the shop's components (the shop's CA, which the
 * operator rotates in three steps), or the database server's (its CA is its operator's: a managed
 * database's provider publishes the next one, and the file takes it beside the old one).
 */
export type TlsPeers = 'shop' | 'database';

/**
 * Within this long, the same problem told by another of a component's credentials is the same
 * news: its server and its channels watch the same files, each on its own timer.
 */
const SAME_NEWS_MS = 60_000;

/**
 * The TLS refresh options of one component that log what becomes of its files: changed files taken
 * (info, `tls-reloaded`: a renewal that worked says so), changed files
 * that cannot be used (the files in use stay in use, so a rotation that failed looked like one that
 * worked until the old certificate expired), a certificate that chains to no CA of the CA file at
 * start (warn, `tls-certificate-unanchored`), a certificate in use that nears its end (see
 * expiresSoonWithin), and
 * one that has expired (every handshake fails from then on). Pass the same options to every
 * credentials of the component, so that each problem is logged once.
 */
export function tlsProblemLog(
  log: Logger,
  { peers = 'shop' }: { peers?: TlsPeers } = {},
): Required<Pick<TlsRefreshOptions, 'onReloadError' | 'onExpiry' | 'onReload' | 'onStartWarning'>> {
  const toldAt = new Map<string, number>();
  const once = (news: string, tell: () => void): void => {
    const now = performance.now();
    const before = toldAt.get(news);
    if (before !== undefined && now - before < SAME_NEWS_MS) return;
    // Each renewal is news of its own: older news is forgotten, or the map would grow with every one.
    for (const [old, at] of toldAt) if (now - at >= SAME_NEWS_MS) toldAt.delete(old);
    toldAt.set(news, now);
    tell();
  };
  return {
    // Each of a component's credentials checks the same files at start: one warning for all.
    onStartWarning: (warning) =>
      once(warning, () => log.warn({ event: 'tls-certificate-unanchored' }, warning)),
    onReloadError: (error) =>
      once(error.message, () =>
        log.error(
          { event: 'tls-reload-failed' },
          `${error.message}: the TLS files in use before stay in use`,
        ),
      ),
    onReload: ({ role, file, setting, validTo, fingerprint, certificates }) =>
      once(`reload ${file} ${fingerprint ?? certificates} ${validTo?.toISOString()}`, () => {
        const fields = {
          event: 'tls-reloaded',
          file,
          ...(setting === undefined ? {} : { setting }),
          ...(validTo === undefined ? {} : { validTo }),
        };
        const from = setting === undefined ? '' : ` from ${setting}`;
        const until = validTo === undefined ? '' : ` (valid until ${validTo.toISOString()})`;
        if (role === 'certFile') {
          log.info(
            fields,
            `TLS certificate file "${file}"${from} changed: new connections present its new certificate${until}`,
          );
        } else {
          log.info(
            { ...fields, certificates },
            `TLS CA file "${file}"${from} changed: new connections check peers against its ${certificates} CA certificate${certificates === 1 ? '' : 's'}${validTo === undefined ? '' : ` (the first to end: ${validTo.toISOString()})`}`,
          );
        }
      }),
    onExpiry: ({ file, setting, validTo, expired, intermediate, root, ca }) =>
      once(`${file} ${validTo.toISOString()} ${expired} ${intermediate} ${root} ${ca}`, () => {
        const fields = {
          event: expired ? 'tls-certificate-expired' : 'tls-certificate-expiring',
          file,
          ...(setting === undefined ? {} : { setting }),
          validTo,
          ...(intermediate === undefined ? {} : { intermediate }),
          ...(root === undefined ? {} : { root }),
          ...(ca === undefined ? {} : { ca }),
        };
        const [which, refused, mend] = whatEnds({ file, setting, intermediate, root, ca }, peers);
        if (expired) log.error(fields, `${which} expired on ${validTo.toISOString()}: ${refused}; ${mend}`);
        else log.warn(fields, `${which} expires on ${validTo.toISOString()}: ${mend} before then`);
      }),
  };
}

/**
 * How an ending certificate is told: what ends (a sentence's start, "… which"), what fails once it
 * has, and what mends it.
 */
function whatEnds(
  { file, setting, intermediate, root, ca }: Omit<ExpiryNotice, 'validTo' | 'expired'>,
  peers: TlsPeers,
): [which: string, refused: string, mend: string] {
  const from = setting === undefined ? '' : ` from ${setting}`;
  const named = `TLS certificate file "${file}"${from}`;
  const rotateShopCa = 'rotate the CA, in three steps (docs/operations.md)';
  if (intermediate !== undefined) {
    // The certificate's own end is not this one: renewing it from the same intermediate, as a
    // renewer does, changes nothing, and the chain fails at the intermediate's end all the same.
    return [
      `${named} holds the intermediate CA "${intermediate}" after its certificate, which`,
      'peers refuse the chain',
      'have its PKI renew the intermediate, and renew the certificate with the new chain',
    ];
  }
  if (root !== undefined) {
    // Every certificate of the PKI ends with its root: renewing the certificate changes nothing.
    return [
      `${named} holds the root CA "${root}" after its certificate, which`,
      'peers refuse the chain',
      rotateShopCa,
    ];
  }
  if (ca !== undefined) {
    // The CA file is not renewed as a certificate is: its CA ends every certificate it issued.
    const which = `TLS CA file "${file}"${from} holds the CA "${ca}", which`;
    return peers === 'database'
      ? [
          which,
          "the database server's certificate is refused",
          "put the database server's new CA in the file beside this one",
        ]
      : [which, 'peers it issued are refused', rotateShopCa];
  }
  return [named, 'peers refuse it', 'renew it'];
}
