import { afterEach, describe, expect, it, vi } from 'vitest';

/** What the fake stdout took, and what it does with each write: a count of bytes taken, or an error. */
const fake = vi.hoisted(() => ({
  taken: [] as Buffer[],
  next: [] as Array<(bytes: Buffer, offset: number) => number>,
}));

vi.mock('node:fs', async (importOriginal) => ({
  ...(await importOriginal<typeof import('node:fs')>()),
  writeSync: (_fd: number, bytes: Buffer, offset = 0) => {
    const take = fake.next.shift() ?? ((all: Buffer, from: number) => all.length - from);
    const count = take(bytes, offset);
    fake.taken.push(bytes.subarray(offset, offset + count));
    return count;
  },
}));

const { LossyStdout } = await import('../../src/common/lossy-stdout.js');

afterEach(() => {
  vi.restoreAllMocks();
  fake.taken.length = 0;
  fake.next.length = 0;
});

describe('LossyStdout', () => {
  it('ends a line cut short half written before the next one, so that one stays a JSON line', () => {
    let now = 1_000_000;
    vi.spyOn(Date, 'now').mockImplementation(() => now);
    const blocked = (): number => {
      now += 600;
      throw Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' });
    };
    // The first line's first 10 bytes go, then the pipe stays full past the patience: cut short.
    fake.next.push(() => 10, ...Array.from({ length: 10 }, () => blocked));
    const out = new LossyStdout('probe', 99);
    out.write(`${JSON.stringify({ msg: 'first', pad: 'x'.repeat(100) })}\n`);
    // The pipe moves again: the count of dropped lines, then the next line.
    fake.next.length = 0;
    out.write(`${JSON.stringify({ msg: 'second' })}\n`);
    const lines = Buffer.concat(fake.taken).toString().split('\n');
    expect(lines[0]).toBe('{"msg":"fi');
    expect(lines.slice(1, -1).map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({ event: 'log-lines-dropped', dropped: 1 }),
      { msg: 'second' },
    ]);
  });

  // The gateway writes its answers to the launcher's status question with a LossyStdout of its
  // own beside its log's: after a log line cut short, the answer went on that line, and the
  // launcher took neither for what it was.
  it("starts another writer's line on a line of its own after a line cut short on the same output", () => {
    let now = 2_000_000;
    vi.spyOn(Date, 'now').mockImplementation(() => now);
    const blocked = (): number => {
      now += 600;
      throw Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' });
    };
    fake.next.push(() => 10, ...Array.from({ length: 10 }, () => blocked));
    const log = new LossyStdout('gateway', 98);
    const answers = new LossyStdout('gateway', 98);
    log.write(`${JSON.stringify({ msg: 'first', pad: 'x'.repeat(100) })}\n`);
    fake.next.length = 0;
    answers.write('shop-supervisor: status {"registered":true}\n');
    const lines = Buffer.concat(fake.taken).toString().split('\n');
    expect(lines).toEqual(['{"msg":"fi', 'shop-supervisor: status {"registered":true}', '']);
  });
});
