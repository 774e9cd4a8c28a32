import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/common/config.js';
import { unusedMetricsAllowedHosts } from '../../src/common/observability-settings.js';
import { loadDistributorConfig } from '../../src/distributor/config.js';
import { loadGatewayConfig } from '../../src/gateway/config.js';
import { loadServiceConfig } from '../../src/services/common/service-config.js';
import { goodsService } from '../../src/services/goods/goods-service.js';

const loadGoodsConfig = (argv: string[], env: NodeJS.ProcessEnv) =>
  loadServiceConfig(goodsService, argv, env);

const TOKEN = { SHOP_REGISTRY_TOKEN: 'a-registry-token-of-enough-length' };

describe('METRICS, REQUEST_IDS and --metrics-port', () => {
  it('puts the admin port 100 above the component port by default: 9100, 9110, ...', () => {
    expect(loadDistributorConfig([], TOKEN).observability).toEqual({
      metrics: true,
      requestIds: true,
      metricsPort: 9100,
      metricsPortGiven: false,
      metricsAllowedHosts: [],
    });
    expect(loadGoodsConfig([], {}).observability?.metricsPort).toBe(9110);
    expect(loadGoodsConfig(['--port', '9011'], {}).observability?.metricsPort).toBe(9111);
  });

  it("takes --metrics-allowed-hosts by flag or the component's variable, and refuses a name it cannot be", () => {
    expect(
      loadGoodsConfig(['--metrics-allowed-hosts', 'Goods.Internal,.shop.internal'], {}).observability
        ?.metricsAllowedHosts,
    ).toEqual(['goods.internal', '.shop.internal']);
    expect(
      loadDistributorConfig([], { ...TOKEN, DISTRIBUTOR_METRICS_ALLOWED_HOSTS: '*' }).observability
        .metricsAllowedHosts,
    ).toEqual(['*']);
    expect(() => loadGoodsConfig([], { GOODS_METRICS_ALLOWED_HOSTS: 'http://goods.internal:9110' })).toThrow(
      /^GOODS_METRICS_ALLOWED_HOSTS: expected host names/,
    );
  });

  it('says when --metrics-allowed-hosts has no admin port to allow names on, and only then', () => {
    const unused = (argv: string[], env: NodeJS.ProcessEnv = {}) =>
      unusedMetricsAllowedHosts(loadGoodsConfig(argv, env).observability!, 'GOODS_METRICS_ALLOWED_HOSTS');
    expect(unused(['--metrics-allowed-hosts', 'scraper.internal,.shop.internal'], { METRICS: 'off' })).toBe(
      'GOODS_METRICS_ALLOWED_HOSTS lists scraper.internal,.shop.internal but this component serves no metrics (METRICS=off turns metrics off): the list has no effect',
    );
    expect(unused(['--metrics-allowed-hosts', '*', '--metrics-port', 'off'])).toBe(
      'GOODS_METRICS_ALLOWED_HOSTS lists * but this component serves no metrics (--metrics-port is off): the list has no effect',
    );
    expect(unused(['--metrics-allowed-hosts', 'scraper.internal'])).toBeUndefined();
    expect(unused(['--metrics-port', 'off'], { METRICS: 'off' })).toBeUndefined();
  });

  it('takes any free port with --port 0, so that instances started alike never collide', () => {
    expect(loadGoodsConfig(['--port', '0'], {}).observability?.metricsPort).toBe(0);
    expect(loadGoodsConfig(['--port', '65500'], {}).observability?.metricsPort).toBe(0);
  });

  it('takes a port given by flag or variable, and "off"', () => {
    expect(loadGoodsConfig(['--metrics-port', '9999'], {}).observability).toMatchObject({
      metricsPort: 9999,
      metricsPortGiven: true,
    });
    expect(loadGoodsConfig([], { GOODS_METRICS_PORT: '0' }).observability?.metricsPort).toBe(0);
    expect(loadGoodsConfig([], { GOODS_METRICS_PORT: 'off' }).observability?.metricsPort).toBeUndefined();
    expect(loadDistributorConfig(['--metrics-port', 'off'], TOKEN).observability.metricsPort).toBeUndefined();
  });

  it('serves no metrics at all with METRICS=off, and no ids with REQUEST_IDS=off', () => {
    expect(loadGoodsConfig([], { METRICS: 'off', REQUEST_IDS: 'off' }).observability).toMatchObject({
      metrics: false,
      requestIds: false,
      metricsPort: undefined,
    });
    expect(loadGatewayConfig([], { METRICS: 'off' }).observability.metrics).toBe(false);
    expect(loadGoodsConfig([], { METRICS: 'OFF', REQUEST_IDS: 'Off' }).observability).toMatchObject({
      metrics: false,
      requestIds: false,
    });
    expect(loadGoodsConfig([], { METRICS: 'ON' }).observability?.metrics).toBe(true);
  });

  it('refuses a metrics port given with METRICS=off, which asks for two things that cannot both hold', () => {
    expect(() => loadGoodsConfig(['--metrics-port', '9999'], { METRICS: 'off' })).toThrow(
      new ConfigError(
        '--metrics-port (GOODS_METRICS_PORT): asks for metrics on port 9999, but METRICS=off turns metrics off; unset one of the two (or give the metrics port as off)',
      ),
    );
    expect(() => loadGoodsConfig([], { METRICS: 'off', GOODS_METRICS_PORT: '0' })).toThrow(
      /^--metrics-port \(GOODS_METRICS_PORT\): asks for metrics on port 0, but METRICS=off/,
    );
    expect(() =>
      loadDistributorConfig([], { ...TOKEN, METRICS: 'off', DISTRIBUTOR_METRICS_PORT: '9101' }),
    ).toThrow(/^--metrics-port \(DISTRIBUTOR_METRICS_PORT\): asks for metrics on port 9101/);
    // Saying off twice is no contradiction; nor is metrics off with the port left to its default.
    expect(
      loadGoodsConfig(['--metrics-port', 'off'], { METRICS: 'off' }).observability?.metricsPort,
    ).toBeUndefined();
    expect(loadDistributorConfig([], { ...TOKEN, METRICS: 'off' }).observability.metricsPort).toBeUndefined();
  });

  it('refuses anything else, saying what it expected', () => {
    expect(() => loadGoodsConfig(['--metrics-port', 'many'], {})).toThrow(
      new ConfigError('--metrics-port: expected a port from 0 to 65535 or "off", got "many"'),
    );
    expect(() => loadGoodsConfig([], { METRICS: 'yes' })).toThrow(/METRICS: expected one of on, off/);
  });

  it("refuses the component's own port, which could only fail once the second of the two binds", () => {
    expect(() => loadGoodsConfig(['--port', '9500', '--metrics-port', '9500'], {})).toThrow(
      new ConfigError(
        "--metrics-port: 9500 is the component's own port (--port); give the metrics another, or off",
      ),
    );
    expect(() => loadDistributorConfig([], { ...TOKEN, DISTRIBUTOR_METRICS_PORT: '9000' })).toThrow(
      ConfigError,
    );
    // Both 0: each gets a free port of its own.
    expect(loadGoodsConfig(['--port', '0', '--metrics-port', '0'], {}).observability?.metricsPort).toBe(0);
  });

  it('has no --metrics-port on the gateway: its /metrics is on its own port', () => {
    expect(() => loadGatewayConfig(['--metrics-port', '1'], {})).toThrow(ConfigError);
  });
});
