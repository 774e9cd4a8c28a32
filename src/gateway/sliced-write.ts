import type { Writable } from 'node:stream';

/** Bodies longer than this are written a slice at a time (see endInSlices). */
export const SLICE_BYTES = 64 * 1024;

/** What endInSlices writes to: a ServerResponse, in the gateway. */
type Answer = Pick<Writable, 'write' | 'end' | 'destroyed'>;

/**
 * Ends an answer with `body`: at once when it is short, else a slice of SLICE_BYTES at a time, each
 * once the one before has gone to the kernel. A write completes only when all of it has, and
 * completed writes are how the connection tracker tells a client that takes its answer slowly
 * from one that takes nothing (unreadAnswerTimeoutMs): over a 160 kbit/s link, a 1 MB answer
 * written whole completed nothing for 18 s and was cut off at a limit of 10 s; in slices it arrived
 * whole in 56 s.
 */
export function endInSlices(answer: Answer, body: Buffer): void {
  if (body.length <= SLICE_BYTES) {
    answer.end(body);
    return;
  }
  let offset = 0;
  const next = (error?: Error | null): void => {
    if (error || answer.destroyed) return;
    const end = Math.min(offset + SLICE_BYTES, body.length);
    const slice = body.subarray(offset, end);
    offset = end;
    if (offset < body.length) answer.write(slice, next);
    else answer.end(slice);
  };
  next();
}
