import { afterAll, describe, expect, it } from 'vitest';
import { SimulatedNodes } from '../../src/bench/simulated-nodes.js';
import { type ComponentProcess, spawnComponent } from '../e2e/support/processes.js';

// A connection past a full room, every place with a call open, from the address holding the most,
// is closed at its first call (ConnectionRoom's "refused"), from inside its session's 'stream'
// event. Destroying the session there, while nghttp2 was still taking in the read that brought the
// call, aborted the whole process in Node's HTTP/2 layer (Assertion failed: onread->IsFunction()
// in Http2StreamListener::OnStreamRead): a distributor at --max-connections with many registering
// connections from one host died so. The distributor runs as its own process.

const TOKEN = 'room-refusal-test-token-0123456789';

describe('a distributor at its --max-connections with many registering connections from one host', () => {
  let distributor: ComponentProcess | undefined;
  let nodes: SimulatedNodes | undefined;
  afterAll(async () => {
    nodes?.stop();
    if (distributor && distributor.child.exitCode === null && distributor.child.signalCode === null) {
      distributor.child.kill('SIGKILL');
      await distributor.exited();
    }
  });

  it('refuses the connections past its room and stays up', async () => {
    distributor = spawnComponent(
      'src/distributor/main.ts',
      ['--port', '0', '--metrics-port', 'off', '--max-connections', '5'],
      { SHOP_REGISTRY_TOKEN: TOKEN },
    );
    const output = (): string => distributor!.lines.join('\n');
    const listening = await distributor.waitForLine(/"event":"listening"/, 20_000);
    const port = Number(JSON.parse(listening).port);
    nodes = new SimulatedNodes({ distributor: `127.0.0.1:${port}`, token: TOKEN, connections: 40 });
    nodes.add(400);
    // The first refusal comes once every place has a call open: within a few seconds, later on a
    // loaded machine. The process is then watched a while longer, refusing more.
    const refused = await Promise.race([
      distributor.exited().then(() => undefined),
      distributor.waitForLine(/"action":"refused"/, 30_000).catch(() => undefined),
    ]);
    const outcome = await Promise.race([
      distributor.exited().then(() => 'exited'),
      new Promise((resolve) => setTimeout(() => resolve('running'), 3_000)),
    ]);
    expect(output()).not.toContain('Assertion failed');
    expect(outcome, output()).toBe('running');
    expect(refused, output()).toBeDefined();
  }, 60_000);
});
