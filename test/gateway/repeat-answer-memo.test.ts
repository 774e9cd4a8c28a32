import { describe, expect, it } from 'vitest';
import { rememberingLastAnswer } from '../../src/gateway/repeat-answer-memo.js';

describe('rememberingLastAnswer', () => {
  const counting = () => {
    const calls: Buffer[] = [];
    const render = (bytes: Buffer): Buffer => {
      calls.push(bytes);
      return Buffer.concat([Buffer.from('{"n":'), Buffer.from(String(bytes.length)), Buffer.from('}')]);
    };
    return { calls, render: rememberingLastAnswer(render) };
  };

  it('renders the same bytes once, and hands each caller a copy of its own', () => {
    const { calls, render } = counting();
    const first = render(Buffer.from('abc'));
    // The gateway writes the envelope into the buffer it gets: that must not reach the next answer.
    first.fill(0x20);
    const second = render(Buffer.from('abc'));
    expect(second.toString()).toBe('{"n":3}');
    expect(calls).toHaveLength(1);
    second.fill(0x20);
    expect(render(Buffer.from('abc')).toString()).toBe('{"n":3}');
  });

  it('renders other bytes afresh, and does not mistake a changed input buffer for the last one', () => {
    const { calls, render } = counting();
    const input = Buffer.from('abc');
    render(input);
    // The caller reuses its buffer: the memo kept its own copy of what it rendered.
    input.write('xyz');
    expect(render(input).toString()).toBe('{"n":3}');
    expect(calls).toHaveLength(2);
    expect(render(Buffer.from('abcd')).toString()).toBe('{"n":4}');
    expect(calls).toHaveLength(3);
  });

  it('does not hold on to large answers', () => {
    const { calls, render } = counting();
    const large = Buffer.alloc(65 * 1024, 1);
    render(large);
    render(large);
    expect(calls).toHaveLength(2);
  });
});
