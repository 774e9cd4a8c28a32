import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { SimulatedNodes } from '../../src/bench/simulated-nodes.js';

// A connection past a full room, every place with a call open, from the address holding the most,
// is closed at its first call (ConnectionRoom's "refused"), from inside its session's 'stream'
// event. Destroying the session there, while nghttp2 was still taking in the read that brought the
// call, aborted the whole process in Node's HTTP/2 layer (Assertion failed: onread->IsFunction()
// in Http2StreamListener::OnStreamRead): a distributor at --max-connections with many registering
// connections from one host died so. The distributor runs as its own process.

const TOKEN = 'room-refusal-test-token-0123456789';

describe('a distributor at its --max-connections with many registering connections from one host', () => {
  let child: ChildProcess | undefined;
  let nodes: SimulatedNodes | undefined;
  afterAll(async () => {
    nodes?.stop();
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });

  it('refuses the connections past its room and stays up', async () => {
    child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/distributor/main.ts',
        '--port',
        '0',
        '--metrics-port',
        'off',
        '--max-connections',
        '5',
      ],
      {
        env: { ...process.env, SHOP_REGISTRY_TOKEN: TOKEN, LOG_LEVEL: 'info' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout!.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr!.on('data', (chunk) => {
      output += chunk;
    });
    const exited = once(child, 'exit');
    const port = await vi.waitFor(
      () => {
        const found = /"event":"listening","host":"[^"]*","port":(\d+)/.exec(output);
        expect(found, output).not.toBeNull();
        return Number(found![1]);
      },
      { timeout: 20_000, interval: 50 },
    );
    nodes = new SimulatedNodes({ distributor: `127.0.0.1:${port}`, token: TOKEN, connections: 40 });
    nodes.add(400);
    const outcome = await Promise.race([
      exited.then(() => 'exited'),
      new Promise((resolve) => setTimeout(() => resolve('running'), 6_000)),
    ]);
    expect(output).not.toContain('Assertion failed');
    expect(outcome, output).toBe('running');
    expect(output).toContain('"action":"refused"');
  }, 40_000);
});
