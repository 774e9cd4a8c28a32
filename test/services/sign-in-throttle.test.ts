import { describe, expect, it } from 'vitest';
import {
  DEFAULT_SIGN_IN_THROTTLE,
  type SignInAttempt,
  SignInThrottle,
  type SignInThrottleLimits,
} from '../../src/services/members/sign-in-throttle.js';

/** A throttle on a clock the test moves. */
function throttleAt(limits: Partial<SignInThrottleLimits> = {}) {
  const clock = { now: 1_000_000 };
  const throttle = new SignInThrottle({ ...DEFAULT_SIGN_IN_THROTTLE, ...limits }, () => clock.now);
  /** Begins a sign-in of `username`; its attempt, or the wait it was refused with. */
  const begin = (username: string): SignInAttempt | number => {
    const turn = throttle.begin(username);
    return turn.allowed ? turn.attempt : turn.waitMs;
  };
  /** One sign-in of `username` that fails; the wait it was refused with instead, if it was. */
  const fail = (username: string): number | undefined => {
    const turn = begin(username);
    if (typeof turn === 'number') return turn;
    turn.failed();
    return undefined;
  };
  return { clock, throttle, begin, fail };
}

describe('SignInThrottle', () => {
  it('lets the free failures through, then doubles the wait after each failure up to its cap', () => {
    const { clock, fail } = throttleAt({ freeFailures: 3, firstWaitMs: 1_000, maxWaitMs: 10_000 });
    for (let failure = 0; failure < 4; failure++) expect(fail('eve')).toBeUndefined();
    const waits: number[] = [];
    for (let round = 0; round < 6; round++) {
      const wait = fail('eve');
      if (wait === undefined) throw new Error('not throttled');
      waits.push(wait);
      clock.now += wait;
      expect(fail('eve')).toBeUndefined();
    }
    expect(waits).toEqual([1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
  });

  it('counts each account on its own', () => {
    const { fail, begin } = throttleAt({ freeFailures: 1 });
    fail('eve');
    fail('eve');
    expect(begin('eve')).toBe(1_000);
    expect(typeof begin('bob')).toBe('object');
  });

  it('a match forgets the failures, a check that never answered is not counted', () => {
    const { clock, fail, begin } = throttleAt({ freeFailures: 2 });
    fail('eve');
    fail('eve');
    const undecided = begin('eve');
    if (typeof undecided === 'number') throw new Error('throttled');
    undecided.undecided();
    // Still two failures: the next one is free-less but allowed, and sets the first wait.
    expect(fail('eve')).toBeUndefined();
    expect(begin('eve')).toBe(1_000);
    clock.now += 1_000;
    const right = begin('eve');
    if (typeof right === 'number') throw new Error('throttled');
    right.matched();
    expect(fail('eve')).toBeUndefined();
    expect(fail('eve')).toBeUndefined();
    expect(fail('eve')).toBeUndefined();
    expect(begin('eve')).toBe(1_000);
  });

  it('an attempt ends once: a second end of the same attempt changes nothing', () => {
    const { fail, begin } = throttleAt({ freeFailures: 1 });
    const attempt = begin('eve');
    if (typeof attempt === 'number') throw new Error('throttled');
    attempt.failed();
    attempt.failed();
    attempt.undecided();
    // One failure (free), not two: the next failure is allowed and sets the first wait.
    expect(fail('eve')).toBeUndefined();
    expect(begin('eve')).toBe(1_000);
  });

  it('once an account has failed, no more checks run at once than its free failures left, and one past them', () => {
    const { begin, fail } = throttleAt({ freeFailures: 3 });
    fail('eve');
    const running = [begin('eve'), begin('eve')];
    expect(running.every((attempt) => typeof attempt === 'object')).toBe(true);
    expect(begin('eve')).toBe(1_000);
    for (const attempt of running) if (typeof attempt === 'object') attempt.failed();
    // Three failures: one check at a time.
    const one = begin('eve');
    expect(typeof one).toBe('object');
    expect(begin('eve')).toBe(1_000);
  });

  it('an account that never failed has no bound on its checks at once', () => {
    const { begin } = throttleAt({ freeFailures: 1 });
    const attempts = Array.from({ length: 50 }, () => begin('service-account'));
    expect(attempts.every((attempt) => typeof attempt === 'object')).toBe(true);
    for (const attempt of attempts) if (typeof attempt === 'object') attempt.matched();
  });

  it('forgets an account a while after its last failure', () => {
    const { clock, throttle, fail, begin } = throttleAt({ freeFailures: 1, forgetAfterMs: 60_000 });
    fail('eve');
    fail('eve');
    expect(throttle.accounts).toBe(1);
    clock.now += 60_000;
    expect(typeof begin('bob')).toBe('object');
    expect(throttle.accounts).toBe(0);
    expect(fail('eve')).toBeUndefined();
    expect(fail('eve')).toBeUndefined();
  });

  it('remembers at most maxAccounts, forgetting the one whose last failure is oldest', () => {
    const { throttle, fail, begin } = throttleAt({ freeFailures: 0, maxAccounts: 3 });
    for (const username of ['a', 'b', 'c']) fail(username);
    fail('d');
    expect(throttle.accounts).toBe(3);
    expect(typeof begin('a')).toBe('object');
    for (const username of ['b', 'c', 'd']) expect(begin(username)).toBe(1_000);
  });

  it('counts its refusals', () => {
    const { throttle, fail, begin } = throttleAt({ freeFailures: 0 });
    fail('eve');
    begin('eve');
    begin('eve');
    expect(throttle.throttled).toBe(2);
  });
});
