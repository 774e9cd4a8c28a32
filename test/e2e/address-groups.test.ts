import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestNetwork, netnsUnavailableReason, type TestNetwork } from './support/netns.js';

// IPv6 peers counted by their /64, on real sockets: a network namespace whose `lo` carries
// addresses of three /64s (documentation addresses, existing only in that namespace), and a probe
// inside it that connects and registers from each (see support/address-group-probe.ts).
const SERVER = '2001:db8:7:9::1';
const SAME = ['2001:db8:7:1::a', '2001:db8:7:1::b', '2001:db8:7:1::c', '2001:db8:7:1:ffff::d'];
const OTHER = ['2001:db8:7:2::1', '2001:db8:7:3::1'];

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') {
  throw new Error(`the IPv6 address-group test must run under CI=true (as root), but ${unavailable}`);
}
if (unavailable) process.stderr.write(`\n[test] the IPv6 address-group test will skip: ${unavailable}.\n`);

interface ProbeOutcome {
  room: { newcomerServed: boolean; newestClosed: boolean; sameAgainClosed: boolean; othersOpen: boolean };
  registrations: {
    outcomes: Array<{ from: string; answered: boolean; status?: { code: number; message: string } }>;
    refusals: Array<{ level: number; msg: string }>;
  };
}

describe.runIf(!unavailable)('IPv6 peers are counted by their /64 (network namespace)', () => {
  let network: TestNetwork | undefined;
  let outcome: ProbeOutcome;

  beforeAll(async () => {
    network = createTestNetwork({ probe: '10.213.58.2' });
    for (const address of [SERVER, ...SAME, ...OTHER]) {
      execFileSync('ip', [
        '-n',
        network.namespace('probe'),
        'addr',
        'add',
        `${address}/64`,
        'dev',
        'lo',
        'nodad',
      ]);
    }
    const run = await network.run(
      'probe',
      process.execPath,
      [
        '--import',
        'tsx',
        'test/e2e/support/address-group-probe.ts',
        '--server',
        SERVER,
        '--same',
        SAME.join(','),
        '--other',
        OTHER.join(','),
      ],
      60_000,
    );
    if (run.code !== 0) throw new Error(`address-group-probe failed (exit ${run.code}): ${run.stderr}`);
    outcome = JSON.parse(run.stdout) as ProbeOutcome;
  }, 90_000);

  afterAll(() => network?.remove());

  it('a gRPC port full of Watches from one /64 gives its newest connection up to another /64, and refuses a new address of the same /64', () => {
    expect(outcome.room).toEqual({
      newcomerServed: true,
      newestClosed: true,
      sameAgainClosed: true,
      othersOpen: true,
    });
  });

  it('the distributor counts registrations per /64: a new address in the same /64 gets no new burst, and its refusals are warned of once', () => {
    const tooMany = {
      code: 8,
      message: 'too many registrations from 2001:db8:7:1::/64: at most 1 a second (bursts of 2)',
    };
    expect(outcome.registrations.outcomes).toEqual([
      { from: SAME[0], answered: true },
      { from: SAME[1], answered: true },
      { from: SAME[2], answered: false, status: tooMany },
      { from: OTHER[1], answered: true },
      { from: SAME[3], answered: false, status: tooMany },
    ]);
    expect(outcome.registrations.refusals).toEqual([
      {
        level: 40,
        msg: `${tooMany.message} (refusals of this kind from 2001:db8:7:1::/64 are now logged at debug)`,
      },
      { level: 20, msg: tooMany.message },
    ]);
  });
});
