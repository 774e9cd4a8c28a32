import type { Logger } from './logger.js';
import type { TlsRefreshOptions } from './tls-files.js';

/**
 * Within this long, the same problem told by another of a component's credentials is the same
 * news: its server and its channels watch the same files, each on its own timer.
 */
const SAME_NEWS_MS = 60_000;

/**
 * The TLS refresh options of one component that log what goes wrong with its files: changed files
 * that cannot be used (the files in use stay in use, so a rotation that failed looked like one that
 * worked until the old certificate expired), a certificate in use that expires within a week, and
 * one that has expired (every handshake fails from then on). Pass the same options to every
 * credentials of the component, so that each problem is logged once.
 */
export function tlsProblemLog(log: Logger): Required<Pick<TlsRefreshOptions, 'onReloadError' | 'onExpiry'>> {
  const toldAt = new Map<string, number>();
  const once = (news: string, tell: () => void): void => {
    const now = performance.now();
    const before = toldAt.get(news);
    if (before !== undefined && now - before < SAME_NEWS_MS) return;
    toldAt.set(news, now);
    tell();
  };
  return {
    onReloadError: (error) =>
      once(error.message, () =>
        log.error(
          { event: 'tls-reload-failed' },
          `${error.message}: the TLS files in use before stay in use`,
        ),
      ),
    onExpiry: ({ file, setting, validTo, expired }) =>
      once(`${file} ${validTo.toISOString()} ${expired}`, () => {
        const fields = {
          event: expired ? 'tls-certificate-expired' : 'tls-certificate-expiring',
          file,
          ...(setting === undefined ? {} : { setting }),
          validTo,
        };
        const named = `TLS certificate file "${file}"${setting === undefined ? '' : ` from ${setting}`}`;
        if (expired) {
          log.error(fields, `${named} expired on ${validTo.toISOString()}: peers refuse it; renew it`);
        } else {
          log.warn(fields, `${named} expires on ${validTo.toISOString()}: renew it before then`);
        }
      }),
  };
}
