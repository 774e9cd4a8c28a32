import type { ResponseRenderer } from './response-renderer.js';

/** Answers larger than this are rendered each time: the memo holds at most two such buffers per route. */
const MAX_REMEMBERED_BYTES = 64 * 1024;

/**
 * A renderer that remembers its last answer: when a service sends the very bytes it sent last time
 * (concurrent lists of an unchanged catalogue share one read and one encoding in the service, see
 * FreshReadCoalescer), the JSON is copied rather than rendered again, about a microsecond against
 * some seventy for a page of 100 goods. Same bytes, same JSON: the answer cannot differ. Each call
 * gets its own copy, since the gateway writes the envelope into the rendered buffer.
 */
export function rememberingLastAnswer(render: ResponseRenderer): ResponseRenderer {
  let lastBytes: Buffer | undefined;
  let lastRendered: Buffer | undefined;
  return (bytes) => {
    if (lastBytes !== undefined && lastRendered !== undefined && bytes.equals(lastBytes)) {
      return Buffer.from(lastRendered);
    }
    const rendered = render(bytes);
    if (bytes.length <= MAX_REMEMBERED_BYTES && rendered.length <= 4 * MAX_REMEMBERED_BYTES) {
      // Copies: the caller's buffers are theirs to change (the envelope) or to reuse.
      lastBytes = Buffer.from(bytes);
      lastRendered = Buffer.from(rendered);
    } else {
      lastBytes = undefined;
      lastRendered = undefined;
    }
    return rendered;
  };
}
