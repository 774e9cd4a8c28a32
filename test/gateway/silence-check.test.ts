import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { connectivityState, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { asIs } from '../../src/common/bytes-method.js';
import { keepaliveChannelOptions } from '../../src/common/grpc-server.js';
import { InstancePool } from '../../src/gateway/instance-pool.js';
import type { InstancePoolOptions } from '../../src/gateway/instance-pool-options.js';
import { outOfReach, type Upstream } from '../../src/gateway/upstream.js';

const FIXTURE = new URL('./fixtures/busy-server.mjs', import.meta.url).pathname;

async function startBusyServer(children: ChildProcess[]): Promise<string> {
  const child = spawn(process.execPath, [FIXTURE], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
  return `127.0.0.1:${chunk.toString().trim()}`;
}

function call(pool: InstancePool, upstream: Upstream, path: string, request: Buffer, timeoutMs: number) {
  return new Promise<ServiceError | null>((resolve) =>
    pool.call(upstream, path, asIs, request, new Metadata(), Date.now() + timeoutMs, (error) =>
      resolve(error),
    ),
  );
}

describe("InstancePool's silence check", () => {
  const children: ChildProcess[] = [];
  const pools: InstancePool[] = [];
  afterEach(() => {
    for (const pool of pools.splice(0)) pool.close();
    for (const child of children.splice(0)) child.kill();
  });

  /**
   * A pool on a busy-server child process, connected, recording the instances it passes over and
   * the connections it cuts.
   */
  async function connectedPool(options: InstancePoolOptions = {}) {
    const address = await startBusyServer(children);
    const child = children.at(-1)!;
    const passedOver: string[] = [];
    const silent: string[] = [];
    const pool = new InstancePool({
      onUnansweredCheck: (upstream) => passedOver.push(upstream.key),
      onSilentConnection: (upstream) => silent.push(upstream.key),
      ...options,
    });
    pools.push(pool);
    const upstream = pool.get('goods', address);
    while (upstream.channel.getConnectivityState(false) !== connectivityState.READY)
      await new Promise((resolve) => setTimeout(resolve, 20));
    return { child, pool, upstream, passedOver, silent };
  }

  it('does not cut a connection whose health check answered while the gateway itself was stalled', async () => {
    const { pool, upstream, passedOver, silent } = await connectedPool();

    const inFlight = call(pool, upstream, '/t.T/Wait', Buffer.from([0]), 5_000);
    // A call past its (short) deadline on a healthy instance: its health check goes out, and is
    // answered within a millisecond; this process then stalls for 1.2 s (a large render, a GC).
    const late = await new Promise<ServiceError | null>((resolve) =>
      pool.call(upstream, '/t.T/Wait', asIs, Buffer.from([0]), new Metadata(), Date.now() + 200, (error) => {
        setImmediate(() => {
          const until = Date.now() + 1_200;
          while (Date.now() < until);
          resolve(error);
        });
      }),
    );
    expect(late?.code).toBe(status.DEADLINE_EXCEEDED);
    const error = await inFlight;
    expect({ error: error && `${status[error.code]} ${error.details}`, passedOver, silent }).toEqual({
      error: null,
      passedOver: [],
      silent: [],
    });
  }, 15_000);

  // An instance whose event loop is blocked past the check's second (a synchronous SQLite statement
  // waiting out its 2 s busy timeout on a file another instance writes, a large page encoded at once)
  // answers no health check either: it is passed over, but its connection, which brings its answers
  // once the loop is free, is not cut, and the calls on it complete.
  it('passes over an instance blocked past the check, and cuts none of its calls when it answers before the cut', async () => {
    const { pool, upstream, passedOver, silent } = await connectedPool();

    // A write in flight, that answers after 2.5 s with a 5 s deadline.
    const inFlight = call(pool, upstream, '/t.T/Wait', Buffer.from([0]), 5_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    // A call whose handler blocks the instance's event loop for 2.5 s; its 300 ms deadline passes.
    const busy = await call(pool, upstream, '/t.T/Busy', Buffer.from([25]), 300);
    expect(busy?.code).toBe(status.DEADLINE_EXCEEDED);
    const error = await inFlight;
    // Past the cut time too: the connection brought the answers, so it was never cut.
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    expect({ error: error && `${status[error.code]} ${error.details}`, passedOver, silent }).toEqual({
      error: null,
      passedOver: [upstream.key],
      silent: [],
    });
  }, 15_000);
  // The cut is judged on the bytes read, so, like the check itself, once what arrived meanwhile has
  // been read: a gateway whose own event loop was held up over the cut time (a large render, a long
  // GC) runs the due timer before it polls its sockets, and would take the instance's answers still
  // waiting in the kernel for silence, cutting calls that had answered.
  it('does not cut a connection whose answers arrived while the gateway itself was stalled past the cut time', async () => {
    const { pool, upstream, passedOver, silent } = await connectedPool();

    // A call that answers after 2.5 s; then one that blocks the instance for 2 s, past its 300 ms
    // deadline: the check goes out at 0.3 s, is unanswered at 1.3 s (passed over), the cut is due at
    // 3.3 s. The instance answers the check at 2 s and the first call at 2.5 s, while this process
    // is held from 1.6 s to 3.7 s.
    const inFlight = call(pool, upstream, '/t.T/Wait', Buffer.from([0]), 6_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const stall = setTimeout(
      () =>
        setImmediate(() => {
          const until = Date.now() + 2_100;
          while (Date.now() < until);
        }),
      1_600,
    );
    const busy = await call(pool, upstream, '/t.T/Busy', Buffer.from([20]), 300);
    expect(busy?.code).toBe(status.DEADLINE_EXCEEDED);
    const error = await inFlight;
    clearTimeout(stall);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect({ error: error && `${status[error.code]} ${error.details}`, passedOver, silent }).toEqual({
      error: null,
      passedOver: [upstream.key],
      silent: [],
    });
  }, 15_000);
  // The channel made to pass over a silent instance replaces one that had connected: its first
  // connect timeout is news (a warning in the gateway: "no connection … within"), not the quiet
  // "still no connection" of a channel that replaced one that never connected either.
  it('reports the first connect timeout of the channel that replaced a silent one as the first', async () => {
    const again: boolean[] = [];
    const { child, pool, upstream } = await connectedPool({
      connectTimeoutMs: 1_000,
      silenceCheckTimeoutMs: 300,
      silentConnectionCutMs: 600,
      onConnectTimeout: (_upstream, _timeoutMs, repeated) => again.push(repeated),
    });

    // The instance stops (a frozen VM): its kernel still accepts connections, nothing answers.
    child.kill('SIGSTOP');
    try {
      const error = await call(pool, upstream, '/t.T/Busy', Buffer.from([0]), 200);
      expect(error?.code).toBe(status.DEADLINE_EXCEEDED);
      await vi.waitFor(() => expect(again.length).toBeGreaterThanOrEqual(2), { timeout: 5_000 });
      expect(again.slice(0, 2)).toEqual([false, true]);
    } finally {
      child.kill('SIGCONT');
    }
  }, 15_000);
  // A passed-over instance's old connection keeps its calls until the cut; a pool closed meanwhile
  // closes it too ("calls still running on them fail"), and reports no cut after it closed.
  it('fails the calls held on a passed-over connection when the pool closes, and reports no cut after', async () => {
    const { child, pool, upstream, passedOver, silent } = await connectedPool({
      silenceCheckTimeoutMs: 300,
      silentConnectionCutMs: 2_300,
    });

    child.kill('SIGSTOP');
    try {
      const held = call(pool, upstream, '/t.T/Wait', Buffer.from([0]), 8_000);
      const error = await call(pool, upstream, '/t.T/Busy', Buffer.from([0]), 200);
      expect(error?.code).toBe(status.DEADLINE_EXCEEDED);
      await vi.waitFor(() => expect(passedOver).toEqual([upstream.key]), { timeout: 2_000 });
      // What the status page says of it: its new channel still connecting, within its connect timeout.
      expect(pool.unreachableReason(upstream.key)).toBe('check-unanswered');
      pool.close();
      const closedAt = Date.now();
      const heldError = await held;
      const endedAfterMs = Date.now() - closedAt;
      // Past the cut time.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      expect({ held: heldError && status[heldError.code], fast: endedAfterMs < 500, silent }).toEqual({
        held: 'UNAVAILABLE',
        fast: true,
        silent: [],
      });
    } finally {
      child.kill('SIGCONT');
    }
  }, 15_000);

  /** Pings every 300 ms, each unanswered after 300 ms more: keepalive gives up within a second. */
  const QUICK_KEEPALIVE = keepaliveChannelOptions({ timeMs: 300, timeoutMs: 300 });

  // A host that goes silent while the gateway is idle on it: keepalive closes the connection and the
  // next attempt hangs (a stopped process's kernel still takes the TCP connection; a host that
  // drops packets does not even answer it). The instance counted as unreachable only once that
  // attempt had outlasted the connect timeout, and out of reach (answered 503 at once) only a
  // connect timeout later: 25 s into a partition with the defaults, each request meanwhile held to
  // its deadline.
  it('takes an instance for out of reach once keepalive gives up on its silent connection, and back once it connects', async () => {
    const losses: string[] = [];
    const { child, upstream } = await connectedPool({
      channelOptions: QUICK_KEEPALIVE,
      // Connected again at once (the pool's pause between two reconnections of an idle channel is
      // for a peer that closes every connection at once).
      idleReconnectIntervalMs: 100,
      onKeepaliveLoss: (lost) => losses.push(lost.key),
    });

    child.kill('SIGSTOP');
    try {
      // Keepalive's second, and the one its end has for an answer; the connect timeout is 10 s.
      await vi.waitFor(() => expect(outOfReach(upstream, performance.now())).toBe(true), {
        timeout: 4_000,
        interval: 20,
      });
      expect({ wentSilent: upstream.wentSilent, reason: upstream.unreachableReason, losses }).toEqual({
        wentSilent: true,
        reason: 'went-silent',
        losses: [upstream.key],
      });
    } finally {
      child.kill('SIGCONT');
    }
    await vi.waitFor(
      () => expect(upstream.channel.getConnectivityState(false)).toBe(connectivityState.READY),
      { timeout: 5_000, interval: 20 },
    );
    expect({
      outOfReach: outOfReach(upstream, performance.now()),
      wentSilent: upstream.wentSilent,
      unreachableSince: upstream.unreachableSince,
      reason: upstream.unreachableReason,
    }).toEqual({ outOfReach: false, wentSilent: false, unreachableSince: undefined, reason: undefined });
  }, 15_000);

  // Lost within the pause between two reconnections of an idle channel (a connection made a moment
  // before): the channel waits idle, not replaced, and the instance is marked by the loss alone.
  it('says why an instance is unreachable when keepalive gives up on it while its channel waits to connect again', async () => {
    const { child, pool, upstream } = await connectedPool({
      channelOptions: QUICK_KEEPALIVE,
      idleReconnectIntervalMs: 60_000,
    });

    child.kill('SIGSTOP');
    try {
      await vi.waitFor(() => expect(upstream.wentSilent).toBe(true), { timeout: 4_000, interval: 20 });
      expect({
        state: connectivityState[upstream.channel.getConnectivityState(false)],
        reason: pool.unreachableReason(upstream.key),
      }).toEqual({ state: 'IDLE', reason: 'went-silent' });
    } finally {
      child.kill('SIGCONT');
    }
  }, 15_000);

  // A restart closes the connection (its kernel ends it): no silence, and the instance, refusing
  // connections a moment, keeps the connect timeout's grace, so that it is served once it is back.
  it('keeps the grace for an instance that closed its connection itself (a restart)', async () => {
    const losses: string[] = [];
    const { child, upstream } = await connectedPool({
      channelOptions: QUICK_KEEPALIVE,
      // Connected again at once (the pool's pause between two reconnections of an idle channel is
      // for a peer that closes every connection at once).
      idleReconnectIntervalMs: 100,
      onKeepaliveLoss: (lost) => losses.push(lost.key),
    });

    child.kill('SIGKILL');
    await vi.waitFor(() => expect(upstream.unreachableSince).toBeDefined(), { timeout: 3_000, interval: 20 });
    // Past the second a peer has to answer a close, and past keepalive's.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect({
      outOfReach: outOfReach(upstream, performance.now()),
      wentSilent: upstream.wentSilent,
      reason: upstream.unreachableReason,
      losses,
    }).toEqual({ outOfReach: false, wentSilent: false, reason: 'attempts-fail', losses: [] });
  });
});
