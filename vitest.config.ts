import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    // vi.waitFor (test/helpers/patient-waits.ts) and expect.poll wait 10 s when a test gives no
    // bound of its own: 1 s, their default, is not enough for a loaded run of two files at once.
    // test/helpers/no-proxy-env.ts: no proxy of the environment between the suite and its servers.
    setupFiles: ['test/helpers/patient-waits.ts', 'test/helpers/no-proxy-env.ts'],
    expect: { poll: { timeout: 10_000 } },
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Test files start real servers and hash passwords: two cores, so at most two files at once.
    maxWorkers: 2,
  },
});
