import type { ServerResponse } from 'node:http';
import { Gauge } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { GatewayTelemetry, type GatewayView } from '../../src/gateway/gateway-telemetry.js';

const view: GatewayView = {
  routeOf: () => undefined,
  routes: () => [],
  revision: () => undefined,
  stopping: () => false,
  unservedRouteReadyAfterMs: () => 60_000,
  restartGraceMs: () => 10_000,
};

/** A response that resolves with the body it is ended with. */
function fakeResponse(): { response: ServerResponse; body: Promise<string> } {
  let done: (body: string) => void = () => {};
  const body = new Promise<string>((resolve) => {
    done = resolve;
  });
  const response = {
    destroyed: false,
    req: { method: 'GET' },
    setHeader() {},
    writeHead() {},
    end(text: string) {
      done(text);
    },
  } as unknown as ServerResponse;
  return { response, body };
}

describe('GatewayTelemetry /metrics', () => {
  it('renders the metrics once for scrapes that arrive together (its port is public: pipelined and parallel scrapes)', async () => {
    const telemetry = new GatewayTelemetry(view);
    let renders = 0;
    new Gauge({
      name: 'test_renders',
      help: 'renders of the registry',
      registers: [telemetry.registry!],
      collect() {
        renders++;
        this.set(renders);
      },
    });
    const scrapes = Array.from({ length: 16 }, () => fakeResponse());
    for (const { response } of scrapes) telemetry.answerPage(response, '/metrics', undefined);
    const bodies = await Promise.all(scrapes.map((scrape) => scrape.body));
    expect(renders).toBe(1);
    expect(new Set(bodies).size).toBe(1);
    expect(bodies[0]).toContain('test_renders 1');
    // A later scrape renders anew.
    const later = fakeResponse();
    telemetry.answerPage(later.response, '/metrics', undefined);
    expect(await later.body).toContain('test_renders 2');
  });
});
