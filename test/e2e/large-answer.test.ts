import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { COMPONENT_NODE_FLAGS } from '../../src/launcher/node-flags.js';
import { Closer, startDistributor } from '../gateway/support/cluster.js';
import { largeGoods, startFakeGoods, startFakeMembers } from '../gateway/support/fake-shop.js';
import { type HttpResult, send } from '../helpers/http.js';
import { type ComponentProcess, freePort, rssMiB, spawnComponent } from './support/processes.js';

/**
 * docs/rest.md: "An answer over gRPC's message size limit (4 MiB into the gateway) is 502 "The
 * answer is too large", logged once with grpc-js's words, and without Retry-After". Here the gateway
 * is its own process, its distributor real, and goods a stand-in registered with it that answers
 * GET /goods with one 12 MiB message: the gateway keeps serving members meanwhile, and holds none of
 * those answers (grpc-js refuses a message by its length prefix, before its body arrives).
 */
describe('answers over the message size limit, into a gateway process', () => {
  const closer = new Closer();
  let gateway: ComponentProcess;
  let url: string;

  beforeAll(async () => {
    const distributor = (await startDistributor(closer)).address;
    await startFakeGoods(closer, distributor, {}, largeGoods(12, 1024 * 1024));
    await startFakeMembers(closer, distributor);
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    gateway = spawnComponent(
      'src/gateway/main.ts',
      ['--port', String(port)],
      { DISTRIBUTOR_ADDRESS: distributor, GATEWAY_HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
      { nodeFlags: COMPONENT_NODE_FLAGS },
    );
    closer.add(gateway, async (started) => {
      if (started.child.exitCode === null) {
        started.child.kill('SIGTERM');
        await started.exited();
      }
    });
    await vi.waitFor(
      async () => expect((await send(`${url}/members?username=a&password=b`)).status).toBe(200),
      {
        timeout: 30_000,
        interval: 100,
      },
    );
  }, 60_000);
  afterAll(() => closer.closeAll());

  it('are 502 without Retry-After, logged once, while members answers; the gateway holds none of them', async () => {
    const pid = gateway.child.pid!;
    const base = rssMiB(pid);
    let peak = base;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssMiB(pid));
    }, 10);
    const before = gateway.lines.length;
    let big: HttpResult[];
    let others: HttpResult[];
    try {
      [big, others] = await Promise.all([
        Promise.all(Array.from({ length: 8 }, () => send(`${url}/goods`))),
        Promise.all(
          Array.from({ length: 8 }, (_, index) =>
            send(`${url}/members`, {
              method: 'POST',
              headers: { 'Content-Type': 'application/json' },
              body: JSON.stringify({ username: `user${index}`, password: 'secret' }),
            }),
          ),
        ),
      ]);
    } finally {
      clearInterval(sampler);
    }
    const after = rssMiB(pid);
    for (const answer of big) {
      expect(answer.status).toBe(502);
      expect(answer.body).toMatch(/^\{"key":\d+,"errorcode":1,"errormessage":"The answer is too large"\}$/);
      expect(answer.headers['retry-after']).toBeUndefined();
    }
    for (const answer of others) {
      expect(answer.status).toBe(200);
      expect(answer.body).toMatch(/^\{"key":\d+,"errorcode":0,"errormessage":"success"\}$/);
    }
    // One line for the eight (the repeats of one cause are counted, and summed up 10 s later).
    await vi.waitFor(() => expect(gateway.lines.length).toBeGreaterThan(before));
    const logged = gateway.lines.slice(before).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({
      level: 40,
      msg: 'upstream call failed: The answer is too large',
      code: 'RESOURCE_EXHAUSTED',
      details: expect.stringMatching(/^Received message larger than max \(\d+ vs 4194304\)$/),
    });
    // Eight answers of 12 MiB each: had the gateway read one whole, its memory would show it.
    expect(peak - base).toBeLessThan(12);
    expect(after - base).toBeLessThan(12);
  });
});
