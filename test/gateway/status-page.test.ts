import { Script } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { NodeHistory } from '../../src/gateway/node-history.js';
import { RouteRates } from '../../src/gateway/route-rates.js';
import { STATUS_PAGE_HTML, STATUS_PAGE_SCRIPT } from '../../src/gateway/status-page.js';
import { NodeState } from '../../src/gen/distributor.js';
import { goodsNode } from '../helpers/nodes.js';

describe('the status page', () => {
  it('has a script that compiles, loaded from the page itself (no CDN, no inline script)', () => {
    expect(() => new Script(STATUS_PAGE_SCRIPT)).not.toThrow();
    expect(STATUS_PAGE_HTML).toContain('<script src="status.js"></script>');
    expect(STATUS_PAGE_HTML).not.toMatch(/https?:\/\//);
    // Registry values are written as text, never as markup.
    expect(STATUS_PAGE_SCRIPT).not.toContain('innerHTML');
  });
});

describe('RouteRates', () => {
  it('counts requests and 5xx errors per route over the last minute', () => {
    const rates = new RouteRates(60);
    const start = 1_000_000_000;
    rates.record('GET /goods', false, start);
    rates.record('GET /goods', true, start + 500);
    rates.record('GET /goods', false, start + 30_000);
    rates.record('POST /goods', false, start + 59_000);
    expect(rates.totals(start + 59_000)).toEqual(
      new Map([
        ['GET /goods', { requests: 3, errors: 1 }],
        ['POST /goods', { requests: 1, errors: 0 }],
      ]),
    );
    // A minute on, the first second has left the window; later, everything has.
    expect(rates.totals(start + 60_000).get('GET /goods')).toEqual({ requests: 1, errors: 0 });
    expect(rates.totals(start + 200_000)).toEqual(new Map());
  });

  it('counts past January 2038, when the seconds since 1970 no longer fit in 31 bits', () => {
    const rates = new RouteRates(60);
    const at = Date.UTC(2038, 0, 19, 3, 14, 10);
    rates.record('GET /goods', false, at);
    rates.record('GET /goods', true, at + 1_000);
    expect(rates.totals(at + 2_000).get('GET /goods')).toEqual({ requests: 2, errors: 1 });
  });

  it('gives the time its totals count over: the window up to now, or since it began when shorter', () => {
    const start = 1_000_000_000;
    const rates = new RouteRates(60, start);
    // A steady 10 a second for two minutes: each total counts 59 whole seconds and part of this one.
    const now = start + 119_450;
    for (let ms = 0; ms <= now - start; ms += 100) rates.record('GET /goods', false, start + ms);
    const rate = rates.totals(now).get('GET /goods')!.requests / rates.coveredSeconds(now);
    expect(rate).toBeCloseTo(10, 1);
    // Ten seconds after it began, ten seconds, not a minute.
    expect(rates.coveredSeconds(start + 10_000)).toBe(10);
    expect(rates.coveredSeconds(start + 200)).toBe(1);
  });

  it('reuses a slot a minute later without adding the old counts', () => {
    const rates = new RouteRates(60);
    rates.record('GET /goods', true, 0);
    rates.record('GET /goods', false, 60_000);
    expect(rates.totals(60_000).get('GET /goods')).toEqual({ requests: 1, errors: 0 });
  });
});

describe('NodeHistory', () => {
  const at = (seconds: number) => new Date(1_700_000_000_000 + seconds * 1000);
  const node = (port: number, state = NodeState.NODE_STATE_SERVING) => ({
    ...goodsNode({ port }),
    id: `goods@127.0.0.1:${port}`,
    host: '127.0.0.1',
    state,
    registeredAt: at(0),
  });

  it('lists a node that left as gone for a minute, then forgets it', () => {
    const history = new NodeHistory();
    const [one, two] = [node(1), node(2, NodeState.NODE_STATE_DRAINING)];
    history.update([one, two], at(1).getTime());
    history.update([one], at(5).getTime());
    expect(history.describe(at(10).getTime())).toEqual([
      {
        id: one.id,
        name: 'goods',
        state: 'serving',
        address: '127.0.0.1:1',
        registeredAt: at(0).toISOString(),
        ageSeconds: 10,
      },
      {
        id: two.id,
        name: 'goods',
        state: 'gone',
        address: '127.0.0.1:2',
        registeredAt: at(0).toISOString(),
        ageSeconds: 5,
        goneAt: at(5).toISOString(),
      },
    ]);
    expect(history.describe(at(70).getTime()).map((entry) => entry.state)).toEqual(['serving']);
  });

  it('forgets that a node was gone when it comes back', () => {
    const history = new NodeHistory();
    history.update([node(1)], 0);
    history.update([], 1_000);
    history.update([node(1)], 2_000);
    expect(history.describe(3_000).map((entry) => entry.state)).toEqual(['serving']);
  });

  it('marks the nodes kept through a distributor restart, and lists one that did not come back as gone', () => {
    const history = new NodeHistory();
    const [one, two] = [node(1), node(2)];
    history.update([one, two], 0);
    history.update([one, two], 1_000, [two]);
    expect(history.describe(2_000).map(({ id, state, kept }) => ({ id, state, kept }))).toEqual([
      { id: one.id, state: 'serving', kept: undefined },
      { id: two.id, state: 'serving', kept: true },
    ]);
    history.update([one], 3_000);
    expect(history.describe(4_000).map(({ id, state, kept }) => ({ id, state, kept }))).toEqual([
      { id: one.id, state: 'serving', kept: undefined },
      { id: two.id, state: 'gone', kept: undefined },
    ]);
  });
});
