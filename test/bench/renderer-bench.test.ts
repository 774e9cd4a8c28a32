import { describe, expect, it, vi } from 'vitest';

/** Answers rendered by the gateway's response renderer, counted through its factory. */
const rendered = vi.hoisted(() => ({ count: 0 }));
vi.mock('../../src/gateway/response-renderer.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/gateway/response-renderer.js')>();
  return {
    ...original,
    compileResponseRenderer: (...args: Parameters<typeof original.compileResponseRenderer>) => {
      const render = original.compileResponseRenderer(...args);
      return (bytes: Buffer) => {
        rendered.count++;
        return render(bytes);
      };
    },
  };
});

const { SUBJECTS } = await import('../../src/bench/render-subjects.js');

describe('npm run bench:render', () => {
  it('renders every answer it times, not the memo of the last answer that the call plan keeps in front of the renderer', () => {
    // Through the call plan, the same bytes rendered again and again were a copy of its memo
    // (repeat-answer-memo.ts) for every answer under 64 KiB: the bench timed that copy.
    for (const { answer, handWritten } of SUBJECTS) {
      const bytes = answer(100);
      rendered.count = 0;
      const first = handWritten(bytes, 1);
      for (let key = 2; key <= 5; key++) expect(handWritten(bytes, key).length).toBe(first.length);
      expect(rendered.count).toBe(5);
    }
  });

  it('renders the same JSON both ways, envelope and rows', () => {
    for (const { answer, handWritten, generic } of SUBJECTS) {
      const bytes = answer(3);
      const ours = JSON.parse(handWritten(bytes, 7).toString());
      const theirs = JSON.parse(generic(bytes, 7).toString());
      expect(ours.results).toHaveLength(3);
      expect(Object.keys(ours)).toEqual(Object.keys(theirs));
      expect(ours.key).toBe(theirs.key);
    }
  });
});
