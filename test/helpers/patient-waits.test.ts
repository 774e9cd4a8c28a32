// The suite's setup (patient-waits.ts) lengthens vi.waitFor's default wait, and leaves a wait's own timeout alone.
import { expect, it, vi } from 'vitest';

it('waits past 1 s by default', async () => {
  const start = Date.now();
  await vi.waitFor(() => expect(Date.now() - start).toBeGreaterThan(2_500));
});
it('keeps a given timeout', async () => {
  const start = Date.now();
  await expect(
    vi.waitFor(() => expect(Date.now() - start).toBeGreaterThan(2_500), { timeout: 300 }),
  ).rejects.toThrow();
});

it('gives expect.poll the same default (vitest.config.ts)', async () => {
  const start = Date.now();
  await expect.poll(() => Date.now() - start).toBeGreaterThan(2_500);
});
