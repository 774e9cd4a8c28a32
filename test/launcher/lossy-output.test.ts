import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LossyOutput } from '../../src/launcher/lossy-output.js';

/** A stream that takes each chunk after `delayMs`, far below its buffer: no write finds it full. */
function slowStream(delayMs: number): { stream: NodeJS.WriteStream; written: string[] } {
  const written: string[] = [];
  const stream = new Writable({
    highWaterMark: 64 * 1024,
    write(chunk: Buffer, _encoding, done) {
      setTimeout(() => {
        written.push(chunk.toString());
        done();
      }, delayMs);
    },
  });
  return { stream: stream as unknown as NodeJS.WriteStream, written };
}

describe('LossyOutput.flush', () => {
  it('resolves once the lines written have gone out, not at its time-out', async () => {
    const { stream, written } = slowStream(50);
    const output = new LossyOutput(stream, (dropped) => `${dropped} dropped`);
    output.write('all stopped');
    const started = performance.now();
    await output.flush(2_000);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(written.join('')).toBe('all stopped\n');
  });

  it('resolves at once when the stream has failed (its reader gone)', async () => {
    const { stream } = slowStream(50);
    const output = new LossyOutput(stream, (dropped) => `${dropped} dropped`);
    output.write('a line');
    stream.destroy(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    const started = performance.now();
    await output.flush(2_000);
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});
