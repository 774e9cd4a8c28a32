import { describe, expect, it } from 'vitest';
import { LruMap } from '../../src/distributor/lru-map.js';
import { PeerRateLimiter } from '../../src/distributor/peer-rate-limiter.js';

function limiter(options: { ratePerSecond?: number; burst?: number; peers?: number } = {}) {
  let now = 0;
  const rateLimiter = new PeerRateLimiter({
    ratePerSecond: options.ratePerSecond ?? 100,
    burst: options.burst ?? 200,
    peers: options.peers ?? 1024,
    now: () => now,
  });
  const takes = (peer: string, count: number) =>
    Array.from({ length: count }, () => rateLimiter.tryTake(peer)).filter(Boolean).length;
  return { rateLimiter, takes, advance: (ms: number) => (now += ms) };
}

describe('PeerRateLimiter', () => {
  it('lets a peer spend exactly its burst at once, then refuses', () => {
    const { rateLimiter, takes } = limiter();
    expect(takes('10.0.0.1', 200)).toBe(200);
    expect(rateLimiter.tryTake('10.0.0.1')).toBe(false);
    // Each peer has its own bucket.
    expect(rateLimiter.tryTake('10.0.0.2')).toBe(true);
  });

  it('gives a token back every 1/rate seconds, up to the burst', () => {
    const { rateLimiter, takes, advance } = limiter();
    takes('10.0.0.1', 200);
    advance(9.9);
    expect(rateLimiter.tryTake('10.0.0.1')).toBe(false);
    advance(0.1);
    expect(rateLimiter.tryTake('10.0.0.1')).toBe(true);
    expect(rateLimiter.tryTake('10.0.0.1')).toBe(false);
    advance(1_000);
    expect(takes('10.0.0.1', 150)).toBe(100);
    advance(60_000);
    expect(takes('10.0.0.1', 250)).toBe(200);
  });

  it('holds a steady flood to the rate', () => {
    const { takes, advance } = limiter();
    let allowed = takes('10.0.0.1', 200);
    for (let second = 0; second < 10; second++) {
      advance(1_000);
      allowed += takes('10.0.0.1', 1_000);
    }
    expect(allowed).toBe(200 + 10 * 100);
  });

  it('remembers a bounded number of peers and forgets buckets that are full again', () => {
    const { rateLimiter, takes, advance } = limiter({ peers: 3 });
    for (const peer of ['a', 'b', 'c', 'd', 'e']) takes(peer, 200);
    expect(rateLimiter.trackedPeers).toBe(3);
    // An empty bucket takes burst/rate = 2 s to fill; until then it is kept.
    advance(1_999);
    takes('f', 200);
    expect(rateLimiter.trackedPeers).toBe(3);
    advance(1);
    takes('g', 200);
    expect(rateLimiter.trackedPeers).toBe(2);
    // A bucket that spent one token is full again after 1/rate = 10 ms.
    advance(2_000);
    takes('h', 1);
    advance(10);
    takes('i', 1);
    expect(rateLimiter.trackedPeers).toBe(1);
  });
});

describe('LruMap', () => {
  it('forgets the least recently used entry when full', () => {
    const map = new LruMap<string, number>(2);
    map.set('a', 1);
    map.set('b', 2);
    expect(map.get('a')).toBe(1);
    map.set('c', 3);
    expect([...map]).toEqual([
      ['a', 1],
      ['c', 3],
    ]);
    expect(map.get('b')).toBeUndefined();
    expect(() => new LruMap(0)).toThrow('expected a positive integer');
  });
});
