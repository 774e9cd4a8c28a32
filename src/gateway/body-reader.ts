import type { IncomingMessage } from 'node:http';

/** The body grew past the limit; reading stopped there. */
export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
}

/** The bodies being read at once hold the whole {@link BodyBudget}; reading stopped there. */
export class BodyBudgetError extends Error {
  override readonly name = 'BodyBudgetError';
}

/**
 * The bytes of request bodies held at once, across every request of a gateway. Each body is bounded
 * by the body limit, but a thousand clients that each send all but the last byte of a 1 MiB body
 * and wait held a gigabyte until their request timeout.
 */
export class BodyBudget {
  #available: number;

  constructor(readonly limitBytes: number) {
    this.#available = limitBytes;
  }

  /** Takes `bytes` if they are free; says whether it did. */
  take(bytes: number): boolean {
    if (bytes > this.#available) return false;
    this.#available -= bytes;
    return true;
  }

  give(bytes: number): void {
    this.#available += bytes;
  }

  /** Whether nothing is left: a body is then refused before a byte of it is read. */
  get exhausted(): boolean {
    return this.#available <= 0;
  }
}

/** The client went away before the body ended. */
export class BodyAbortedError extends Error {
  override readonly name = 'BodyAbortedError';
}

/**
 * The declared size of a request's body: a number from Content-Length, `'chunked'` for a body of
 * unknown length, or 0 for none. A request with neither header has no body (RFC 9112 §6.3).
 */
export function declaredBodySize(request: IncomingMessage): number | 'chunked' {
  if (request.headers['transfer-encoding'] !== undefined) return 'chunked';
  const length = request.headers['content-length'];
  // Node's parser has already refused a malformed Content-Length.
  return length === undefined ? 0 : Number(length);
}

/**
 * The request's transfer coding when it is one the gateway cannot read (anything but a plain
 * `chunked`, e.g. `gzip, chunked` or an unknown `xchunked`), else undefined. Such a request is
 * answered 501 and its connection closed: its body's length cannot be known (RFC 9112 §6.1).
 */
export function unsupportedTransferCoding(request: IncomingMessage): string | undefined {
  const coding = request.headers['transfer-encoding'];
  if (coding === undefined || coding.trim().toLowerCase() === 'chunked') return undefined;
  return coding;
}

/**
 * Reads a request body of at most `limitBytes`. Past the limit it stops at once: it removes its
 * listeners and pauses the request, so nothing more is buffered, and rejects with
 * {@link BodyTooLargeError}; the caller answers 413 and closes the connection. A client that goes
 * away mid-body rejects with {@link BodyAbortedError}. Aborting `signal` stops reading the same way
 * and rejects with the signal's reason (the parser has failed: the body will never end). With a
 * `budget`, a body that does not fit in what it has left is not read on: {@link BodyBudgetError}.
 *
 * A Content-Length over the limit should be refused before calling this, without reading at all.
 */
export function readBody(
  request: IncomingMessage,
  limitBytes: number,
  signal?: AbortSignal,
  budget?: BodyBudget,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // Bytes are taken from the budget as they arrive: a declared length that never comes holds nothing.
    let held = 0;
    const cleanup = (): void => {
      budget?.give(held);
      held = 0;
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('close', onClose);
      // Errors after this point (a reset while the 413 is being sent) must not go unhandled.
      request.off('error', onClose);
      request.on('error', ignore);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      cleanup();
      request.pause();
      reject(signal!.reason);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limitBytes) {
        cleanup();
        request.pause();
        chunks.length = 0;
        reject(new BodyTooLargeError(`body larger than ${limitBytes} bytes`));
        return;
      }
      if (budget && size > held) {
        if (!budget.take(size - held)) {
          cleanup();
          request.pause();
          chunks.length = 0;
          reject(new BodyBudgetError('the bodies being read hold the whole budget'));
          return;
        }
        held = size;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onClose = (): void => {
      // 'close' also follows a normal 'end'; only a close before it means the client left.
      if (request.complete) return;
      cleanup();
      reject(new BodyAbortedError('the client closed the connection before the body ended'));
    };
    request.on('data', onData);
    request.on('end', onEnd);
    request.on('close', onClose);
    request.on('error', onClose);
    signal?.addEventListener('abort', onAbort);
  });
}

function ignore(): void {}
