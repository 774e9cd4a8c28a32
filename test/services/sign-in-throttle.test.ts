import { describe, expect, it } from 'vitest';
import type { RecordedFailures, SignInFailureLedger } from '../../src/services/members/members-store.js';
import {
  DEFAULT_SIGN_IN_THROTTLE,
  type SignInAttempt,
  type SignInCall,
  SignInThrottle,
  type SignInThrottleLimits,
} from '../../src/services/members/sign-in-throttle.js';

/** A throttle on a clock the test moves. */
function throttleAt(limits: Partial<SignInThrottleLimits> = {}) {
  const clock = { now: 1_000_000 };
  const throttle = new SignInThrottle({ ...DEFAULT_SIGN_IN_THROTTLE, ...limits }, () => clock.now);
  /** Begins a sign-in of `username`; its attempt, or the wait it was refused with. */
  const begin = async (username: string, call?: SignInCall): Promise<SignInAttempt | number> => {
    const turn = await throttle.begin(username, call);
    return turn.allowed ? turn.attempt : turn.waitMs;
  };
  /** Begins a sign-in that must be let through at once. */
  const admit = async (username: string): Promise<SignInAttempt> => {
    const turn = await begin(username);
    if (typeof turn === 'number') throw new Error(`${username} was refused for ${turn} ms`);
    return turn;
  };
  /** One sign-in of `username` that fails; the wait it was refused with instead, if it was. */
  const fail = async (username: string): Promise<number | undefined> => {
    const turn = await begin(username);
    if (typeof turn === 'number') return turn;
    turn.failed();
    return undefined;
  };
  return { clock, throttle, begin, admit, fail };
}

/**
 * Ends each attempt let through with `end`, one at a time as they come (the others wait for it),
 * until none is left running; `watch` sees how many ran at once before each end. What each turn
 * came to: 'ended', or the wait it was refused with.
 */
async function endAsTheyCome(
  turns: Promise<SignInAttempt | number>[],
  end: (attempt: SignInAttempt) => void,
  watch: (running: number) => void = () => {},
): Promise<(number | 'ended')[]> {
  const outcomes: (SignInAttempt | number | 'ended' | undefined)[] = turns.map(() => undefined);
  turns.forEach((turn, index) => {
    void turn.then((outcome) => {
      outcomes[index] = outcome;
    });
  });
  for (;;) {
    await new Promise((resolve) => setImmediate(resolve));
    const running = outcomes.filter((outcome) => typeof outcome === 'object');
    const next = outcomes.findIndex((outcome) => typeof outcome === 'object');
    if (next < 0) break;
    watch(running.length);
    end(outcomes[next] as SignInAttempt);
    outcomes[next] = 'ended';
  }
  await Promise.all(turns);
  return outcomes.map((outcome) => {
    if (outcome === undefined || typeof outcome === 'object') throw new Error('a turn was left undecided');
    return outcome;
  });
}

describe('SignInThrottle', () => {
  it('lets the free failures through, then doubles the wait after each failure up to its cap', async () => {
    const { clock, fail } = throttleAt({ freeFailures: 3, firstWaitMs: 1_000, maxWaitMs: 10_000 });
    for (let failure = 0; failure < 4; failure++) expect(await fail('eve')).toBeUndefined();
    const waits: number[] = [];
    for (let round = 0; round < 6; round++) {
      const wait = await fail('eve');
      if (wait === undefined) throw new Error('not throttled');
      waits.push(wait);
      clock.now += wait;
      expect(await fail('eve')).toBeUndefined();
    }
    expect(waits).toEqual([1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
  });

  it('counts each account on its own', async () => {
    const { fail, begin } = throttleAt({ freeFailures: 1 });
    await fail('eve');
    await fail('eve');
    expect(await begin('eve')).toBe(1_000);
    expect(typeof (await begin('bob'))).toBe('object');
  });

  it('a match forgets the failures, a check that never answered is not counted', async () => {
    const { clock, fail, begin, admit } = throttleAt({ freeFailures: 2 });
    await fail('eve');
    await fail('eve');
    (await admit('eve')).undecided();
    // Still two failures: the next one is allowed and sets the first wait.
    expect(await fail('eve')).toBeUndefined();
    expect(await begin('eve')).toBe(1_000);
    clock.now += 1_000;
    (await admit('eve')).matched();
    for (let failure = 0; failure < 3; failure++) expect(await fail('eve')).toBeUndefined();
    expect(await begin('eve')).toBe(1_000);
  });

  it('an attempt ends once: a second end of the same attempt changes nothing', async () => {
    const { fail, begin, admit } = throttleAt({ freeFailures: 1 });
    const attempt = await admit('eve');
    attempt.failed();
    attempt.failed();
    attempt.undecided();
    // One failure (free), not two: the next failure is allowed and sets the first wait.
    expect(await fail('eve')).toBeUndefined();
    expect(await begin('eve')).toBe(1_000);
  });

  it('a burst of guesses at a fresh account: the free failures and one more are checked, the rest refused', async () => {
    const { begin } = throttleAt({ freeFailures: 5, firstWaitMs: 60_000 });
    const outcomes = await endAsTheyCome(
      Array.from({ length: 40 }, () => begin('target')),
      (attempt) => attempt.failed(),
    );
    expect(outcomes.filter((outcome) => outcome === 'ended')).toHaveLength(6);
    expect(outcomes.filter((outcome) => outcome === 60_000)).toHaveLength(34);
  });

  it('at most as many checks at once as free failures are left; the others wait their turn, in order', async () => {
    const { begin, admit, fail } = throttleAt({ freeFailures: 3 });
    await fail('eve');
    const running = [await admit('eve'), await admit('eve')];
    let decided = 0;
    const third = begin('eve').finally(() => decided++);
    const fourth = begin('eve').finally(() => decided++);
    await new Promise((resolve) => setImmediate(resolve));
    expect(decided).toBe(0);
    running[0]!.matched();
    // A match: no failures left to count, so both waiting sign-ins go.
    expect(typeof (await third)).toBe('object');
    expect(typeof (await fourth)).toBe('object');
  });

  it('the right password sent many times at once is never refused: the sign-ins wait their turn, five at a time', async () => {
    const { begin } = throttleAt({ freeFailures: 5 });
    let mostAtOnce = 0;
    const outcomes = await endAsTheyCome(
      Array.from({ length: 50 }, () => begin('service-account')),
      (attempt) => attempt.matched(),
      (running) => {
        mostAtOnce = Math.max(mostAtOnce, running);
      },
    );
    expect(outcomes).toEqual(Array(50).fill('ended'));
    expect(mostAtOnce).toBe(5);
  });

  it('a sign-in waiting for its turn is refused shortly before its deadline, and one whose caller left is dropped', async () => {
    const { begin, admit, throttle } = throttleAt({ freeFailures: 1 });
    const running = await admit('eve');
    const timed = throttle.begin('eve', { deadline: Date.now() + 120 });
    expect(await timed).toEqual({ allowed: false, reason: 'busy', waitMs: 0 });
    // Not a refusal for failures: not counted as one.
    expect(throttle.throttled).toBe(0);
    let gone = false;
    const left = begin('eve', { isCancelled: () => gone });
    gone = true;
    running.failed();
    expect(await left).toBe(0);
  });

  it('forgets an account a while after its last failure', async () => {
    const { clock, throttle, fail, begin } = throttleAt({ freeFailures: 1, forgetAfterMs: 60_000 });
    await fail('eve');
    await fail('eve');
    expect(throttle.accounts).toBe(1);
    clock.now += 60_000;
    expect(throttle.accounts).toBe(0);
    expect(typeof (await begin('bob'))).toBe('object');
    expect(await fail('eve')).toBeUndefined();
    expect(await fail('eve')).toBeUndefined();
  });

  it('when full, forgets an account still within its free failures before one past them', async () => {
    const { throttle, fail, begin } = throttleAt({ freeFailures: 1, maxAccounts: 3 });
    // "target" is the oldest and past its free failure; the rest are names made up once each.
    await fail('target');
    await fail('target');
    for (const username of ['a', 'b', 'c', 'd', 'e']) await fail(username);
    expect(throttle.accounts).toBe(3);
    expect(await begin('target')).toBe(1_000);
  });

  it('when full of accounts past their free failures, forgets the oldest', async () => {
    const { throttle, fail, begin } = throttleAt({ freeFailures: 0, maxAccounts: 2 });
    for (const username of ['x', 'y', 'z']) await fail(username);
    expect(throttle.accounts).toBe(2);
    expect(typeof (await begin('x'))).toBe('object');
    expect(await begin('y')).toBe(1_000);
  });

  it('counts its refusals', async () => {
    const { throttle, fail, begin } = throttleAt({ freeFailures: 0 });
    await fail('eve');
    await begin('eve');
    await begin('eve');
    expect(throttle.throttled).toBe(2);
  });
});

/**
 * A ledger in memory, as the members store keeps one in its database: a record per key with a
 * version that grows with every change. `hold` makes the next read of a key wait until released,
 * to overtake it with a write.
 */
function memoryLedger(clock: { now: number }) {
  const records = new Map<
    string,
    { count: number; lastAt: number; version: number; turnUntil?: number; holder?: string }
  >();
  let version = 0;
  const recordOf = (key: string): RecordedFailures | undefined => {
    const record = records.get(key);
    return record && { count: record.count, sinceLastMs: clock.now - record.lastAt, version: record.version };
  };
  const held: Array<() => void> = [];
  const ledger: SignInFailureLedger = {
    async signInFailures(key) {
      const read = recordOf(key);
      if (holdNext) {
        holdNext = false;
        await new Promise<void>((resolve) => held.push(resolve));
      }
      return read;
    },
    async recordSignInFailure(key, forgetAfterMs) {
      const record = records.get(key);
      const count = record && clock.now - record.lastAt < forgetAfterMs ? record.count + 1 : 1;
      records.set(key, { count, lastAt: clock.now, version: ++version, turnUntil: 0 });
      return recordOf(key)!;
    },
    async forgetSignInFailures(key) {
      const record = records.get(key);
      if (!record) return undefined;
      records.set(key, { ...record, count: 0, version: ++version, turnUntil: 0 });
      return recordOf(key);
    },
    async claimSignInTurn(key, at, holder, holdMs) {
      const record = records.get(key);
      if (!record || record.version !== at || (record.turnUntil ?? 0) > clock.now) return false;
      record.turnUntil = clock.now + holdMs;
      record.holder = holder;
      return true;
    },
    async releaseSignInTurn(key, holder) {
      const record = records.get(key);
      if (record?.holder === holder) record.turnUntil = 0;
    },
  };
  let holdNext = false;
  return {
    ledger,
    records,
    /** The next read answers what it read only once `release` is called. */
    holdNextRead: () => {
      holdNext = true;
    },
    release: () => {
      for (const resolve of held.splice(0)) resolve();
    },
  };
}

/** `times` failed sign-ins of `username` in a row, each let through. */
async function failInARow(throttle: SignInThrottle, username: string, times: number): Promise<void> {
  for (let failure = 0; failure < times; failure++) {
    const turn = await throttle.begin(username);
    if (!turn.allowed) throw new Error(`${username} was refused`);
    await turn.attempt.failed();
  }
}

describe('SignInThrottle with a ledger (the members store, shared by every instance)', () => {
  const limits = { ...DEFAULT_SIGN_IN_THROTTLE, freeFailures: 2 };

  it('two throttles on one ledger count one account together, and a success on one forgets it on the other', async () => {
    const clock = { now: 1_000_000 };
    const { ledger } = memoryLedger(clock);
    const [one, two] = [0, 1].map(() => new SignInThrottle(limits, () => clock.now, ledger)) as [
      SignInThrottle,
      SignInThrottle,
    ];
    const failOn = async (throttle: SignInThrottle) => {
      const turn = await throttle.begin('eve');
      if (!turn.allowed) return turn.waitMs;
      await turn.attempt.failed();
      return undefined;
    };
    expect(await failOn(one)).toBeUndefined();
    expect(await failOn(two)).toBeUndefined();
    expect(await failOn(one)).toBeUndefined();
    // Three failures in all, one past the two free ones: both wait, the one that saw none of it too.
    expect(await failOn(two)).toBe(1_000);
    expect(await failOn(one)).toBe(1_000);

    clock.now += 1_000;
    const right = await two.begin('eve');
    if (!right.allowed) throw new Error('refused after the wait');
    await right.attempt.matched();
    // "one" learnt three failures; the ledger now says none, and "one" reads it before deciding.
    expect(await failOn(one)).toBeUndefined();
    expect(await failOn(one)).toBeUndefined();
    expect(await failOn(one)).toBeUndefined();
    expect(await failOn(two)).toBe(1_000);
  });

  it('when a wait ends, one sign-in of all the instances gets the turn; one that never answers gives it back', async () => {
    const clock = { now: 1_000_000 };
    const { ledger, records } = memoryLedger(clock);
    const throttles = [0, 1, 2].map(() => new SignInThrottle(limits, () => clock.now, ledger));
    await failInARow(throttles[0]!, 'eve', 3);
    clock.now += 1_000;
    const turns = await Promise.all(throttles.map((throttle) => throttle.begin('eve')));
    const allowed = turns.filter((turn) => turn.allowed);
    expect(allowed).toHaveLength(1);
    // The others hear to come back in a second: the turn's check decides what follows.
    expect(turns.filter((turn) => !turn.allowed)).toEqual([
      { allowed: false, reason: 'failures', waitMs: 1_000 },
      { allowed: false, reason: 'failures', waitMs: 1_000 },
    ]);
    // Its check never answered: the turn is given back, and another instance's sign-in takes it.
    allowed[0]!.allowed && allowed[0]!.attempt.undecided();
    await new Promise((resolve) => setImmediate(resolve));
    const next = await throttles[2]!.begin('eve');
    if (!next.allowed) throw new Error('the turn was not given back');
    await next.attempt.failed();
    expect(records.get('eve')?.count).toBe(4);
    for (const throttle of throttles) {
      expect(await throttle.begin('eve')).toMatchObject({ allowed: false, waitMs: 2_000 });
    }
  });

  it("a check that gives its turn back after its hold ended does not take away another instance's turn", async () => {
    const clock = { now: 1_000_000 };
    const { ledger } = memoryLedger(clock);
    const throttles = [0, 1, 2].map(() => new SignInThrottle(limits, () => clock.now, ledger));
    await failInARow(throttles[0]!, 'eve', 3);
    clock.now += 1_000;
    const slow = await throttles[0]!.begin('eve');
    if (!slow.allowed) throw new Error('refused after the wait');
    // Its check outlives its hold (11 s without a deadline): the turn is another instance's now.
    clock.now += 11_000;
    const second = await throttles[1]!.begin('eve');
    if (!second.allowed) throw new Error('the ended hold was not taken over');
    slow.attempt.undecided();
    await new Promise((resolve) => setImmediate(resolve));
    expect(await throttles[2]!.begin('eve')).toMatchObject({ allowed: false, waitMs: 1_000 });
    second.attempt.undecided();
  });

  it('an account learnt from the ledger with an old last failure is forgotten when that failure is forgetAfterMs old, though learnt after younger ones', async () => {
    const clock = { now: 1_000_000_000 };
    const { ledger, records } = memoryLedger(clock);
    const throttle = new SignInThrottle(limits, () => clock.now, ledger);
    records.set('young', { count: 1, lastAt: clock.now, version: 1 });
    records.set('old', { count: 10, lastAt: clock.now - limits.forgetAfterMs + 1_000, version: 2 });
    for (const username of ['young', 'old']) {
      const turn = await throttle.begin(username);
      if (turn.allowed) turn.attempt.undecided();
    }
    expect(throttle.accounts).toBe(2);
    clock.now += 2_000;
    // "old" failed last more than forgetAfterMs ago: it counts as none, here as in the ledger.
    expect(throttle.accounts).toBe(1);
    const both = await Promise.all([
      throttle.begin('old'),
      throttle.begin('old', { deadline: Date.now() + 200 }),
    ]);
    expect(both.map((turn) => turn.allowed)).toEqual([true, true]);
  });

  it('a success whose record the ledger no longer has (forgotten elsewhere, then swept) forgets the failures known here too', async () => {
    const clock = { now: 1_000_000 };
    const { ledger, records } = memoryLedger(clock);
    const throttle = new SignInThrottle(limits, () => clock.now, ledger);
    const first = await throttle.begin('eve');
    if (!first.allowed) throw new Error('refused');
    await first.attempt.failed();
    // Another instance's success forgot it, and a sweep deleted the forgotten record.
    records.delete('eve');
    const right = await throttle.begin('eve');
    if (!right.allowed) throw new Error('refused');
    await right.attempt.matched();
    // No failure left: both free failures' checks may run at once, as for an account never guessed.
    const both = await Promise.all([
      throttle.begin('eve'),
      throttle.begin('eve', { deadline: Date.now() + 200 }),
    ]);
    expect(both.map((turn) => turn.allowed)).toEqual([true, true]);
  });

  it('an account whose record the ledger no longer has (forgotten on another instance, then swept) is not refused for ever after its wait', async () => {
    const clock = { now: 1_000_000 };
    const { ledger, records } = memoryLedger(clock);
    const [one, two] = [0, 1].map(() => new SignInThrottle(limits, () => clock.now, ledger)) as [
      SignInThrottle,
      SignInThrottle,
    ];
    await failInARow(one, 'eve', 3);
    clock.now += 1_000;
    // The owner signs in on the other instance; a sweep then deletes the forgotten record.
    const right = await two.begin('eve');
    if (!right.allowed) throw new Error('refused after the wait');
    await right.attempt.matched();
    records.delete('eve');
    // "one" still knows three failures at a version the ledger no longer has: no turn to claim.
    for (let retry = 0; retry < 3; retry++) {
      const turn = await one.begin('eve');
      expect(turn.allowed).toBe(true);
      if (turn.allowed) await turn.attempt.matched();
      clock.now += 1_000;
    }
  });

  it('a read overtaken by a failure written meanwhile is not learnt: the newer count stands', async () => {
    const clock = { now: 1_000_000 };
    const { ledger, holdNextRead, release } = memoryLedger(clock);
    const throttle = new SignInThrottle({ ...limits, freeFailures: 1 }, () => clock.now, ledger);
    const failOnce = async () => {
      const turn = await throttle.begin('eve');
      if (!turn.allowed) throw new Error('refused');
      await turn.attempt.failed();
    };
    await failOnce();
    // A read of that one failure, held back...
    holdNextRead();
    const late = throttle.begin('eve');
    // ...while another sign-in's failure, the first past the free one, is written and learnt.
    await failOnce();
    release();
    // The late read's one failure would let it through; the wait the second set stands.
    expect(await late).toMatchObject({ allowed: false, reason: 'failures', waitMs: 1_000 });
  });

  it('a success forgets the failures in the ledger even when this process let go of the account during its check', async () => {
    const clock = { now: 1_000_000 };
    const { ledger, records } = memoryLedger(clock);
    const throttle = new SignInThrottle({ ...limits, maxAccounts: 2 }, () => clock.now, ledger);
    const failOnce = async (username: string) => {
      const turn = await throttle.begin(username);
      if (!turn.allowed) throw new Error('refused');
      await turn.attempt.failed();
    };
    await failOnce('eve');
    const checking = await throttle.begin('eve');
    if (!checking.allowed) throw new Error('refused');
    // Names made up meanwhile push "eve" out of this process's table.
    for (const username of ['a', 'b', 'c']) await failOnce(username);
    await checking.attempt.matched();
    expect(records.get('eve')?.count).toBe(0);
  });

  it('a success on another instance between the read and the turn lets the sign-in through, not refused', async () => {
    const clock = { now: 1_000_000 };
    const { ledger, records } = memoryLedger(clock);
    const one = new SignInThrottle(limits, () => clock.now, ledger);
    await failInARow(one, 'eve', 3);
    clock.now += 1_000;
    // Another instance reads three failures; before it takes the turn, the owner signs in elsewhere.
    const racing: SignInFailureLedger = {
      ...ledger,
      claimSignInTurn: async (key, version, holder, holdMs, parent) => {
        await ledger.forgetSignInFailures(key, parent);
        return ledger.claimSignInTurn(key, version, holder, holdMs, parent);
      },
    };
    const another = new SignInThrottle(limits, () => clock.now, racing);
    expect((await another.begin('eve')).allowed).toBe(true);
    expect(records.get('eve')?.count).toBe(0);
  });

  it('a failure the ledger could not take is counted in the process, and the caller hears why', async () => {
    const clock = { now: 1_000_000 };
    const { ledger } = memoryLedger(clock);
    const broken: SignInFailureLedger = {
      ...ledger,
      recordSignInFailure: () => Promise.reject(new Error('database away')),
    };
    const throttle = new SignInThrottle({ ...limits, freeFailures: 0 }, () => clock.now, broken);
    const turn = await throttle.begin('eve');
    if (!turn.allowed) throw new Error('refused');
    await expect(turn.attempt.failed()).rejects.toThrow('database away');
    expect(await throttle.begin('eve')).toMatchObject({ allowed: false, waitMs: 1_000 });
  });

  it('a wait this process knows of is refused without reading the ledger', async () => {
    const clock = { now: 1_000_000 };
    const { ledger } = memoryLedger(clock);
    let reads = 0;
    const counting: SignInFailureLedger = {
      ...ledger,
      signInFailures: (key, parent) => {
        reads++;
        return ledger.signInFailures(key, parent);
      },
    };
    const throttle = new SignInThrottle({ ...limits, freeFailures: 0 }, () => clock.now, counting);
    const turn = await throttle.begin('eve');
    if (!turn.allowed) throw new Error('refused');
    await turn.attempt.failed();
    expect(reads).toBe(1);
    for (let refused = 0; refused < 5; refused++) {
      expect(await throttle.begin('eve')).toMatchObject({ allowed: false });
    }
    expect(reads).toBe(1);
  });
});

describe('SignInThrottle with a ledger whose writes may land out of order (a pool of connections)', () => {
  it('a check that never answered gives its turn back before the sign-in waiting behind it claims it', async () => {
    const clock = { now: 1_000_000 };
    const { ledger } = memoryLedger(clock);
    // The release goes out first but lands after a claim sent just behind it, as on two connections.
    const slowRelease: SignInFailureLedger = {
      ...ledger,
      releaseSignInTurn: (key, holder, parent) =>
        new Promise((resolve) => setTimeout(resolve, 5)).then(() =>
          ledger.releaseSignInTurn(key, holder, parent),
        ),
    };
    const throttle = new SignInThrottle(
      { ...DEFAULT_SIGN_IN_THROTTLE, freeFailures: 2 },
      () => clock.now,
      slowRelease,
    );
    await failInARow(throttle, 'eve', 3);
    clock.now += 1_000;
    const first = await throttle.begin('eve');
    if (!first.allowed) throw new Error('refused after the wait');
    // Past its free failures the account has one check at a time: the second waits behind the first.
    const second = throttle.begin('eve');
    first.attempt.undecided();
    expect(await second).toMatchObject({ allowed: true });
  });
});
