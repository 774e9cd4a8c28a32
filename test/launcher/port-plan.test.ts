import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/common/config.js';
import { SHOP_COMPONENTS } from '../../src/launcher/components.js';
import { planPorts } from '../../src/launcher/port-plan.js';

describe('the ports of one npm start', () => {
  it.each<[string, NodeJS.ProcessEnv, RegExp]>([
    [
      'two services on one port',
      { GOODS_PORT: '9300', MEMBERS_PORT: '9300' },
      /^port 9300 would be both goods's port and members's port: give one of them another port$/,
    ],
    [
      'a metrics port given on another component',
      { PURCHASES_METRICS_PORT: '8000' },
      /^port 8000 would be both purchases's metrics port and gateway's port/,
    ],
    [
      'the gateway, on every interface, on a service port',
      { GATEWAY_PORT: '9010' },
      /^port 9010 would be both goods's port and gateway's port/,
    ],
    // One address in another spelling takes the same port: the second to bind failed (exit 1) and was
    // started again for ever.
    [
      'a service on localhost, on the port of the distributor on 127.0.0.1',
      { SERVICE_HOST: 'localhost', GOODS_PORT: '9000' },
      /^port 9000 would be both distributor's port and goods's port/,
    ],
    [
      'one IPv6 address spelled two ways',
      { DISTRIBUTOR_HOST: '::1', SERVICE_HOST: '0:0:0:0:0:0:0:1', GOODS_PORT: '9000' },
      /^port 9000 would be both distributor's port and goods's port/,
    ],
    [
      'the gateway on every interface in a long spelling, on a service port',
      { GATEWAY_HOST: '0:0:0:0:0:0:0:0', GATEWAY_PORT: '9010' },
      /^port 9010 would be both goods's port and gateway's port/,
    ],
  ])('refuses %s', (_label, env, message) => {
    expect(() => planPorts(SHOP_COMPONENTS, env)).toThrow(message);
    expect(() => planPorts(SHOP_COMPONENTS, env)).toThrow(ConfigError);
  });

  it("moves a derived metrics port that another component's port takes to any free port, and says so", () => {
    expect(planPorts(SHOP_COMPONENTS, { GOODS_PORT: '9100' })).toMatchObject({
      env: { DISTRIBUTOR_METRICS_PORT: '0' },
      notes: [
        "distributor's metrics port would be goods's port, 9100: it takes any free port instead (DISTRIBUTOR_METRICS_PORT sets one)",
      ],
    });
  });

  it.each<[string, NodeJS.ProcessEnv]>([
    ['the defaults', {}],
    [
      'every port picked by the system',
      { DISTRIBUTOR_PORT: '0', GOODS_PORT: '0', MEMBERS_PORT: '0', GATEWAY_PORT: '0' },
    ],
    ['metrics off where a port would clash', { GOODS_PORT: '9100', DISTRIBUTOR_METRICS_PORT: 'off' }],
    ['METRICS=off: no metrics ports at all', { GOODS_PORT: '9100', METRICS: 'off' }],
    ['one port on two different addresses', { GOODS_PORT: '9000', SERVICE_HOST: '127.0.0.2' }],
    ["a component's own bad setting, left for it to report", { GOODS_PORT: 'abc' }],
  ])('leaves %s as it is', (_label, env) => {
    const { env: moved, notes } = planPorts(SHOP_COMPONENTS, env);
    expect({ env: moved, notes }).toEqual({ env: {}, notes: [] });
  });

  it('lists the ports to find free before anything starts: each fixed port of a component, a metrics port only when set', () => {
    const port = (what: string, env: string, number: number, host = '127.0.0.1') => ({
      what,
      env,
      port: number,
      host,
    });
    expect(planPorts(SHOP_COMPONENTS, {}).required).toEqual([
      port("distributor's port", 'DISTRIBUTOR_PORT', 9000),
      port("goods's port", 'GOODS_PORT', 9010),
      port("members's port", 'MEMBERS_PORT', 9020),
      port("purchases's port", 'PURCHASES_PORT', 9030),
      port("gateway's port", 'GATEWAY_PORT', 8000, '0.0.0.0'),
    ]);
    // Port 0 is any free one; a derived metrics port that is taken moves (a warning), so is not required;
    // a bad setting is the component's to report.
    expect(
      planPorts(SHOP_COMPONENTS, { GOODS_PORT: '0', GOODS_METRICS_PORT: '9110', MEMBERS_PORT: 'abc' })
        .required,
    ).toEqual([
      port("distributor's port", 'DISTRIBUTOR_PORT', 9000),
      port("goods's metrics port", 'GOODS_METRICS_PORT', 9110),
      port("purchases's port", 'PURCHASES_PORT', 9030),
      port("gateway's port", 'GATEWAY_PORT', 8000, '0.0.0.0'),
    ]);
  });
});
