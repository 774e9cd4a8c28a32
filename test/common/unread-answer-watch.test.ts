import { constants, type ServerHttp2Stream } from 'node:http2';
import { afterEach, expect, it } from 'vitest';
import { UnreadAnswerWatch } from '../../src/common/unread-answer-watch.js';

// The watch's own timer looks every quarter of the timeout (at most 5 s); here the looks are made
// by hand, at times a fraction of a millisecond short of the timer's, as the event loop's clock
// can make them (see look-slack.ts).

let watch: UnreadAnswerWatch | undefined;
afterEach(() => watch?.stop());

/** An open call whose answer waits unread, on a connection that passes nothing on. */
function unreadCall(): { stream: ServerHttp2Stream; resets: number[] } {
  const resets: number[] = [];
  const fake = {
    writableLength: 4_096,
    destroyed: false,
    closed: false,
    session: { socket: { bytesWritten: 1_000, writableLength: 0, remoteAddress: '127.0.0.1' } },
    _write() {},
    close(code: number) {
      resets.push(code);
      fake.closed = true;
    },
  };
  return { stream: fake as unknown as ServerHttp2Stream, resets };
}

it('resets a call at the look that finds its answer unread for the timeout, though the clock made it a fraction short', () => {
  const { stream, resets } = unreadCall();
  const stalled: number[] = [];
  watch = new UnreadAnswerWatch(
    () => [stream],
    20_000,
    (_peer, stalledMs) => stalled.push(stalledMs),
  );
  // First seen, then four looks 4,999.75 ms apart: 19,999 ms after it was first seen. Without the
  // slack it waited for a fifth look, 5 s later than the documented "up to a quarter after".
  for (const at of [1_000, 5_999.75, 10_999.5, 15_999.25]) watch.look(at);
  expect(resets).toEqual([]);
  watch.look(20_999);
  expect(resets).toEqual([constants.NGHTTP2_CANCEL]);
  expect(stalled).toEqual([20_000]);
});

it('leaves a call alone at the look before the timeout', () => {
  const { stream, resets } = unreadCall();
  watch = new UnreadAnswerWatch(
    () => [stream],
    20_000,
    () => {},
  );
  for (const at of [0, 5_000, 10_000, 15_000, 19_900]) watch.look(at);
  expect(resets).toEqual([]);
});
