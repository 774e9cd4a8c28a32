import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ServiceError } from '../../src/common/service-error.js';
import {
  DEADLINE_TOO_SHORT,
  HashingLimiter,
  TOO_MANY_SIGN_INS,
} from '../../src/services/members/hashing-limiter.js';

/** A task the test finishes by hand, recording when it started. */
function manualTask(started: string[], name: string) {
  let finish!: () => void;
  const done = new Promise<string>((resolve) => {
    finish = () => resolve(name);
  });
  return {
    run: () => {
      started.push(name);
      return done;
    },
    finish: () => finish(),
  };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('HashingLimiter', () => {
  it('runs at most maxConcurrent at once and hands slots over in arrival order', async () => {
    const limiter = new HashingLimiter({ maxConcurrent: 2, maxWaiting: 5 });
    const started: string[] = [];
    const tasks = ['a', 'b', 'c', 'd'].map((name) => manualTask(started, name));
    const results = tasks.map((task) => limiter.run(task.run));
    await flush();
    expect(started).toEqual(['a', 'b']);
    tasks[1]!.finish();
    await flush();
    expect(started).toEqual(['a', 'b', 'c']);
    tasks[0]!.finish();
    await flush();
    expect(started).toEqual(['a', 'b', 'c', 'd']);
    tasks[2]!.finish();
    tasks[3]!.finish();
    expect(await Promise.all(results)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('refuses at once with RESOURCE_EXHAUSTED when the queue is full, and recovers', async () => {
    const limiter = new HashingLimiter({ maxConcurrent: 1, maxWaiting: 1 });
    const started: string[] = [];
    const first = manualTask(started, 'first');
    const second = manualTask(started, 'second');
    const running = limiter.run(first.run);
    const waiting = limiter.run(second.run);
    const refused = limiter.run(async () => 'never');
    await expect(refused).rejects.toEqual(new ServiceError(status.RESOURCE_EXHAUSTED, TOO_MANY_SIGN_INS));
    await expect(refused).rejects.toMatchObject({ code: status.RESOURCE_EXHAUSTED });
    first.finish();
    second.finish();
    expect(await Promise.all([running, waiting])).toEqual(['first', 'second']);
    await expect(limiter.run(async () => 'later')).resolves.toBe('later');
  });

  it('skips a waiting call whose caller went away, and frees its slot', async () => {
    const limiter = new HashingLimiter({ maxConcurrent: 1, maxWaiting: 2 });
    const started: string[] = [];
    const first = manualTask(started, 'first');
    const running = limiter.run(first.run);
    let gone = false;
    const abandoned = limiter.run(async () => 'hashed for nobody', { isCancelled: () => gone });
    const next = limiter.run(async () => 'next');
    gone = true;
    first.finish();
    await expect(abandoned).rejects.toMatchObject({ code: status.CANCELLED });
    await expect(next).resolves.toBe('next');
    await expect(running).resolves.toBe('first');
  });

  it('takes a waiting call whose caller went away out of the queue when a new call comes', async () => {
    const limiter = new HashingLimiter({ maxConcurrent: 1, maxWaiting: 1 });
    const started: string[] = [];
    const first = manualTask(started, 'first');
    const running = limiter.run(first.run);
    let gone = false;
    const abandoned = limiter.run(async () => 'hashed for nobody', { isCancelled: () => gone });
    gone = true;
    // Its place is the new call's, not a refusal as by a full queue.
    const next = limiter.run(async () => 'next');
    await expect(abandoned).rejects.toMatchObject({ code: status.CANCELLED });
    expect(limiter.waiting).toBe(1);
    first.finish();
    await expect(next).resolves.toBe('next');
    await expect(running).resolves.toBe('first');
  });

  it('frees the slot when a task fails', async () => {
    const limiter = new HashingLimiter({ maxConcurrent: 1, maxWaiting: 0 });
    await expect(limiter.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(limiter.run(async () => 'ok')).resolves.toBe('ok');
  });

  it('answers DEADLINE_EXCEEDED, with the time a check needs, to a call whose own deadline is too short even with nobody ahead', async () => {
    const limiter = new HashingLimiter({ maxConcurrent: 1, maxWaiting: 2 });
    const slow = () => new Promise<string>((resolve) => setTimeout(() => resolve('hashed'), 50));
    await expect(limiter.run(slow)).resolves.toBe('hashed');
    // Not RESOURCE_EXHAUSTED: the queue is empty, and a client that retried on it would fail for ever.
    const refused = await limiter.run(slow, { deadline: Date.now() + 10 }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ServiceError);
    expect(refused).toMatchObject({ code: status.DEADLINE_EXCEEDED });
    const neededMs = Number(/allow at least (\d+) ms$/.exec((refused as ServiceError).message)?.[1]);
    expect((refused as ServiceError).message.startsWith(DEADLINE_TOO_SHORT)).toBe(true);
    // The caller's deadline, not the service's fault: logged at debug, not as an error.
    expect((refused as ServiceError).isServerFault).toBe(false);
    // Two typical checks of about 50 ms (a timer may fire a millisecond or two early by Date.now()).
    expect(neededMs).toBeGreaterThanOrEqual(90);
    await expect(limiter.run(slow, { deadline: Date.now() + 5_000 })).resolves.toBe('hashed');
  });

  it('refuses at once a call that the queue ahead of it would make miss its deadline', async () => {
    const limiter = new HashingLimiter({ maxConcurrent: 1, maxWaiting: 10 });
    const slow = () => new Promise<string>((resolve) => setTimeout(() => resolve('hashed'), 40));
    await limiter.run(slow); // now a typical task is known: about 40 ms
    const started: string[] = [];
    const blocking = manualTask(started, 'blocking');
    const running = limiter.run(blocking.run);
    // One turn ahead (the running task), then two tasks' margin: about 120 ms, so 5 s is plenty;
    // a call without a deadline is never refused for time.
    const patient = limiter.run(async () => 'patient', { deadline: Date.now() + 5_000 });
    const timeless = limiter.run(async () => 'timeless');
    // Three turns ahead now, then the margin: about 200 ms, more than the 150 ms it has (alone, the
    // 80 ms of the margin would fit: the queue is why it is refused).
    const hurried = limiter.run(async () => 'hurried', { deadline: Date.now() + 150 });
    await expect(hurried).rejects.toEqual(new ServiceError(status.RESOURCE_EXHAUSTED, TOO_MANY_SIGN_INS));
    expect(started).toEqual(['blocking']); // refused while the queue was still blocked
    blocking.finish();
    await expect(Promise.all([running, patient, timeless])).resolves.toEqual([
      'blocking',
      'patient',
      'timeless',
    ]);
  });

  it('refuses a waiting call before its deadline when the queue stalls, and keeps the others in order', async () => {
    const limiter = new HashingLimiter({ maxConcurrent: 1, maxWaiting: 10 });
    await limiter.run(() => new Promise<string>((resolve) => setTimeout(() => resolve('timed'), 20)));
    const started: string[] = [];
    const stalled = manualTask(started, 'stalled');
    const running = limiter.run(stalled.run);
    const deadline = Date.now() + 300; // admitted: one turn and the margin are about 60 ms
    const hurried = limiter.run(async () => 'hurried', { deadline });
    const patient = limiter.run(async () => 'patient');
    const refusal = await hurried.then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refusal).toEqual(new ServiceError(status.RESOURCE_EXHAUSTED, TOO_MANY_SIGN_INS));
    expect(Date.now()).toBeLessThan(deadline); // told before its deadline, not left to time out
    stalled.finish();
    await expect(Promise.all([running, patient])).resolves.toEqual(['stalled', 'patient']);
    await expect(limiter.run(async () => 'after')).resolves.toBe('after');
  });
});
