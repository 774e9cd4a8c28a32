import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type Node, NodeState, type Snapshot } from '../../src/gen/distributor.js';
import { RestartGrace } from '../../src/registry-client/restart-grace.js';

function node(
  name: string,
  port: number,
  state = NodeState.NODE_STATE_SERVING,
  registeredAt: Date | undefined = undefined,
): Node {
  return {
    id: `${name}@127.0.0.1:${port}`,
    name,
    host: '127.0.0.1',
    port,
    routes: [],
    descriptorSet: Buffer.alloc(0),
    state,
    registeredAt,
  } as unknown as Node;
}

const snapshot = (revision: number, ...nodes: Node[]): Snapshot => ({ revision, nodes }) as Snapshot;
const names = (applied: Snapshot) => applied.nodes.map((each) => `${each.name}:${each.port}`).sort();

describe('RestartGrace', () => {
  let applied: Snapshot[];
  let kept: string[][];
  let grace: RestartGrace;
  beforeEach(() => {
    vi.useFakeTimers();
    applied = [];
    kept = [];
    grace = new RestartGrace({
      graceMs: 3_000,
      apply: (next, keptNodes) => {
        applied.push(next);
        kept.push(keptNodes.map((each) => `${each.name}:${each.port}`));
      },
    });
  });
  afterEach(() => {
    grace.stop();
    vi.useRealTimers();
  });

  it('applies snapshots as they are while the distributor stays up', () => {
    grace.snapshot(snapshot(1, node('goods', 1)));
    grace.snapshot(snapshot(2, node('goods', 1), node('members', 2)));
    grace.snapshot(snapshot(3, node('members', 2)));
    expect(applied.map(names)).toEqual([['goods:1'], ['goods:1', 'members:2'], ['members:2']]);
  });

  it('keeps the missing nodes after a restart or a lost stream, even resumed on the same instance', () => {
    const from = (instanceId: string, revision: number, ...nodes: Node[]): Snapshot => ({
      ...snapshot(revision, ...nodes),
      instanceId,
    });
    grace.snapshot(from('a', 4, node('goods', 1), node('members', 2)));
    // The stream was lost and resumed on the same instance, which lost every node too (frozen, or
    // cut off) and lists members as gone until it registers again: members is kept meanwhile.
    grace.disconnected();
    grace.snapshot(from('a', 7, node('goods', 1)));
    grace.snapshot(from('a', 8, node('goods', 1), node('members', 2)));
    // A stream lost by this component alone resumes whole: nothing is kept.
    grace.disconnected();
    grace.snapshot(from('a', 9, node('goods', 1), node('members', 2)));
    // Without a lost stream, the same instance's lists are applied as they are.
    grace.snapshot(from('a', 10, node('goods', 1)));
    // Another instance: a restart, whatever its revision.
    grace.snapshot(from('b', 9, node('gateway', 3)));
    expect(applied.map(names)).toEqual([
      ['goods:1', 'members:2'],
      ['goods:1', 'members:2'],
      ['goods:1', 'members:2'],
      ['goods:1', 'members:2'],
      ['goods:1'],
      ['gateway:3', 'goods:1'],
    ]);
    expect(kept).toEqual([[], ['members:2'], [], [], [], ['goods:1']]);
  });

  it('after a revision that goes back, keeps the missing nodes until they are back', () => {
    grace.snapshot(snapshot(7, node('goods', 1), node('members', 2)));
    grace.snapshot(snapshot(1, node('gateway', 3)));
    grace.snapshot(snapshot(2, node('gateway', 3), node('goods', 1, NodeState.NODE_STATE_DRAINING)));
    grace.snapshot(snapshot(3, node('gateway', 3), node('goods', 1), node('members', 2)));
    expect(applied.map(names)).toEqual([
      ['goods:1', 'members:2'],
      ['gateway:3', 'goods:1', 'members:2'],
      ['gateway:3', 'goods:1', 'members:2'],
      ['gateway:3', 'goods:1', 'members:2'],
    ]);
    // A node back in a new snapshot is taken as it is registered now.
    expect(applied[2]!.nodes.find((each) => each.name === 'goods')!.state).toBe(
      NodeState.NODE_STATE_DRAINING,
    );
    expect(applied.map((each) => each.revision)).toEqual([7, 1, 2, 3]);
    // Each list says which of its nodes are kept rather than listed (for the status page).
    expect(kept).toEqual([[], ['goods:1', 'members:2'], ['members:2'], []]);
  });

  it('does not bring back, as it was before the restart, a node that came back and left again during the grace', () => {
    const [before, again] = [new Date(1_000), new Date(2_000)];
    const serving = NodeState.NODE_STATE_SERVING;
    grace.snapshot(snapshot(7, node('goods', 1, serving, before), node('members', 2)));
    grace.snapshot(snapshot(1, node('gateway', 3)));
    // goods comes back, drains, and leaves (a rolling restart of goods) while members is still away.
    grace.snapshot(snapshot(2, node('gateway', 3), node('goods', 1, serving, again)));
    grace.snapshot(snapshot(3, node('gateway', 3), node('goods', 1, NodeState.NODE_STATE_DRAINING, again)));
    grace.snapshot(snapshot(4, node('gateway', 3)));
    // The distributor listed it again and then saw it leave: it is gone, not a node yet to come back
    // (kept, it would be routed to as SERVING, its state from before the restart).
    expect(names(applied.at(-1)!)).toEqual(['gateway:3', 'members:2']);
    expect(kept.at(-1)).toEqual(['members:2']);
  });

  it('keeps a node still listed under its old registration after a lost stream, and then gone', () => {
    const registered = new Date(1_000);
    grace.snapshot(
      snapshot(2, node('goods', 1, NodeState.NODE_STATE_SERVING, registered), node('gateway', 3)),
    );
    grace.disconnected();
    // Every stream was cut at once: the distributor, still running, lists goods until it sees its
    // stream end, then not until goods registers again.
    grace.snapshot(snapshot(3, node('goods', 1, NodeState.NODE_STATE_SERVING, registered)));
    grace.snapshot(snapshot(5, node('gateway', 3)));
    expect(names(applied.at(-1)!)).toEqual(['gateway:3', 'goods:1']);
    expect(kept.at(-1)).toEqual(['goods:1']);
  });

  it('takes a change that comes more than the grace period after a lost stream came back as it is', () => {
    grace.snapshot(snapshot(2, node('goods', 1), node('goods', 2)));
    // Lost and resumed with nothing missed: no list comes with the return.
    grace.disconnected();
    grace.connected();
    vi.advanceTimersByTime(3_001);
    // An hour later, say, goods:2 crashes: gone, not kept as if the lost stream explained it.
    grace.snapshot(snapshot(3, node('goods', 1)));
    expect(names(applied.at(-1)!)).toEqual(['goods:1']);
    expect(kept.at(-1)).toEqual([]);
    // Within the grace period of the return, a missing node is kept, as before.
    grace.disconnected();
    grace.connected();
    vi.advanceTimersByTime(2_000);
    grace.snapshot(snapshot(4));
    expect(kept.at(-1)).toEqual(['goods:1']);
  });

  it('after a reconnection, drops the nodes that did not come back when the grace period ends', () => {
    grace.snapshot(snapshot(4, node('goods', 1), node('goods', 2)));
    grace.disconnected();
    grace.snapshot(snapshot(9, node('goods', 1)));
    expect(names(applied.at(-1)!)).toEqual(['goods:1', 'goods:2']);
    vi.advanceTimersByTime(2_999);
    expect(applied).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(names(applied.at(-1)!)).toEqual(['goods:1']);
    // Settled: the next snapshots are applied as they are.
    grace.snapshot(snapshot(10));
    expect(names(applied.at(-1)!)).toEqual([]);
  });

  it('a second lost stream during a grace keeps the nodes seen since as well, and starts the grace again', () => {
    grace.snapshot(snapshot(1, node('goods', 1), node('members', 2)));
    grace.disconnected();
    grace.snapshot(snapshot(2, node('goods', 1)));
    expect(kept.at(-1)).toEqual(['members:2']);
    // purchases joins; 2 s into the grace, every stream is lost again and comes back with goods alone.
    grace.snapshot(snapshot(3, node('goods', 1), node('purchases', 3)));
    vi.advanceTimersByTime(2_000);
    grace.disconnected();
    grace.snapshot(snapshot(4, node('goods', 1)));
    expect(names(applied.at(-1)!)).toEqual(['goods:1', 'members:2', 'purchases:3']);
    expect(kept.at(-1)!.sort()).toEqual(['members:2', 'purchases:3']);
    // The first grace would have ended 1 s later: the second runs its own 3 s.
    vi.advanceTimersByTime(2_000);
    expect(names(applied.at(-1)!)).toEqual(['goods:1', 'members:2', 'purchases:3']);
    vi.advanceTimersByTime(1_000);
    expect(names(applied.at(-1)!)).toEqual(['goods:1']);
  });

  it('does nothing with a grace of 0', () => {
    const none = new RestartGrace({ graceMs: 0, apply: (next) => applied.push(next) });
    none.snapshot(snapshot(5, node('goods', 1)));
    none.snapshot(snapshot(1));
    expect(applied.map(names)).toEqual([['goods:1'], []]);
  });
});
