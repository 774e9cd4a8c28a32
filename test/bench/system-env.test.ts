import { describe, expect, it } from 'vitest';
import { systemEnv } from '../../src/bench/system-under-test.js';
import { loadDistributorConfig } from '../../src/distributor/config.js';

const TOKEN = 'a-registry-token-of-enough-length';

describe("the bench's shop environment", () => {
  it('gives the distributor a free metrics port when metrics are on', () => {
    const env = systemEnv(undefined, TOKEN, 9000);
    expect(loadDistributorConfig([], env).observability).toMatchObject({ metrics: true, metricsPort: 0 });
  });

  it('gives it none with METRICS=off (the observability-cost twin), which it would refuse: exit 2', () => {
    const env = systemEnv({ METRICS: 'off', REQUEST_IDS: 'off' }, TOKEN, 9000);
    expect(env.DISTRIBUTOR_METRICS_PORT).toBeUndefined();
    expect(loadDistributorConfig([], env).observability).toMatchObject({
      metrics: false,
      metricsPort: undefined,
    });
  });
});
