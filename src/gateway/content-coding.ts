import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

/** The content codings the gateway compresses its own pages in, in its order of preference. */
export type ContentCoding = 'br' | 'gzip';

/**
 * The coding to answer in, of those `available`, by a request's Accept-Encoding (RFC 9110, section
 * 12.5.3): the one of highest weight above 0, a coding not named weighing what `*` does; on a tie,
 * the first available. Undefined (send it as it is) without the header, or when none is acceptable.
 */
export function chooseCoding(
  header: string | undefined,
  available: readonly ContentCoding[],
): ContentCoding | undefined {
  if (!header) return undefined;
  const weights = new Map<string, number>();
  for (const part of header.split(',')) {
    const [coding = '', ...parameters] = part.split(';').map((piece) => piece.trim().toLowerCase());
    if (!coding) continue;
    let weight = 1;
    for (const parameter of parameters) {
      const q = /^q=([01](?:\.[0-9]{0,3})?)$/.exec(parameter);
      // A malformed weight takes the coding as unacceptable rather than guess.
      weight = q ? Math.min(1, Number(q[1])) : parameter.startsWith('q=') ? 0 : weight;
    }
    // A coding named twice: the last one says (as a list header read in order would).
    weights.set(coding, weight);
  }
  let chosen: ContentCoding | undefined;
  let best = 0;
  for (const coding of available) {
    const weight = weights.get(coding) ?? weights.get('*') ?? 0;
    if (weight > best) {
      best = weight;
      chosen = coding;
    }
  }
  return chosen;
}

/**
 * A body in a coding, or undefined when coding does not make it smaller. Brotli at quality 5: a
 * document of megabytes takes tens of milliseconds there, seconds at the default 11, for a few
 * percent less.
 */
export function encode(body: Buffer, coding: ContentCoding): Buffer | undefined {
  const encoded =
    coding === 'gzip'
      ? gzipSync(body)
      : brotliCompressSync(body, {
          params: {
            [constants.BROTLI_PARAM_QUALITY]: 5,
            [constants.BROTLI_PARAM_SIZE_HINT]: body.length,
          },
        });
  return encoded.length < body.length ? encoded : undefined;
}
