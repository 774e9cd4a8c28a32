import { constants, type ServerHttp2Stream } from 'node:http2';
import { afterEach, expect, it } from 'vitest';
import { type OpenCall, WholeRequestWatch } from '../../src/common/whole-request-watch.js';

// The watch's own timer looks every quarter of the timeout; here the looks are made by hand, at
// the times the timer's were measured at in a goods service under `npm start`.

let watch: WholeRequestWatch | undefined;
afterEach(() => watch?.stop());

/** An open call whose client never half-closes, on a connection that brings nothing more. */
function waitingCall(): { stream: ServerHttp2Stream; resets: number[] } {
  const resets: number[] = [];
  const fake = {
    readableEnded: false,
    destroyed: false,
    closed: false,
    state: { remoteClose: false },
    session: { socket: { bytesRead: 128, remoteAddress: '127.0.0.1' } },
    close(code: number) {
      resets.push(code);
      fake.closed = true;
    },
  };
  const stream = fake as unknown as ServerHttp2Stream;
  return { stream, resets };
}

/** One such call under a watch of `timeoutMs`: the watch, and the resets the call gets. */
function watchedCall(timeoutMs: number): { watcher: WholeRequestWatch; resets: number[] } {
  const { stream, resets } = waitingCall();
  const calls: OpenCall[] = [[stream, '/shop.v1.GoodsService/ListGoods']];
  const watcher = new WholeRequestWatch(
    () => calls,
    () => false,
    timeoutMs,
    () => {},
  );
  watch = watcher;
  return { watcher, resets };
}

it('resets a call at the look that finds it waiting the timeout, though the clock made it a fraction short', () => {
  const { watcher, resets } = watchedCall(10_000);
  // First seen, then four looks 2,499.75 ms apart: 9,999 ms after it was first seen. Before, it
  // waited for a fifth look, 2.5 s later than the 10 to 12.5 s after opening that the docs give.
  for (const at of [1_000, 3_499.75, 5_999.5, 8_499.25]) watcher.look(at);
  expect(resets).toEqual([]);
  watcher.look(10_999);
  expect(resets).toEqual([constants.NGHTTP2_CANCEL]);
});

it('leaves a call alone at the look before the timeout', () => {
  const { watcher, resets } = watchedCall(10_000);
  for (const at of [0, 2_500, 5_000, 7_500, 9_900]) watcher.look(at);
  expect(resets).toEqual([]);
});

it('does not reset a call one look early when its timeout is a few tens of milliseconds', () => {
  // Looks 15 ms apart: a slack of 20 ms reset the call at 45 ms of a 60 ms timeout.
  const { watcher, resets } = watchedCall(60);
  for (const at of [0, 15, 30, 45]) watcher.look(at);
  expect(resets).toEqual([]);
  watcher.look(60);
  expect(resets).toEqual([constants.NGHTTP2_CANCEL]);
});
