import { createHash } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { type Node, type NodeListUpdate, NodeState, type Snapshot } from '../../src/gen/distributor.js';
import { RegistryView } from '../../src/registry-client/registry-view.js';
import { captureLog } from '../helpers/log-capture.js';

const INSTANCE = 'instance-a';

const setA = Buffer.from('descriptor set A');
const setB = Buffer.from('descriptor set B');
const setC = Buffer.from('descriptor set C');
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest();

function node(port: number, set: Buffer | null = setA): Node {
  return {
    id: `goods@127.0.0.1:${port}`,
    name: 'goods',
    host: '127.0.0.1',
    port,
    routes: [],
    descriptorSet: Buffer.alloc(0),
    state: NodeState.NODE_STATE_SERVING,
    registeredAt: new Date(1_000),
    descriptorSetSha256: set ? sha(set) : Buffer.alloc(0),
  };
}

const update = (
  revision: number,
  change: NodeListUpdate['change'],
  instanceId = INSTANCE,
): NodeListUpdate => ({
  instanceId,
  revision,
  change,
});
const snapshotOf = (revision: number, nodes: Node[], instanceId = INSTANCE) =>
  update(revision, { $case: 'snapshot', value: { revision, nodes, instanceId } }, instanceId);
const added = (revision: number, value: Node) => update(revision, { $case: 'added', value });
const removed = (revision: number, id: string) => update(revision, { $case: 'removed', value: id });
const drained = (revision: number, nodeId: string) =>
  update(revision, { $case: 'stateChanged', value: { nodeId, state: NodeState.NODE_STATE_DRAINING } });
const resumed = (revision: number, instanceId = INSTANCE) =>
  update(revision, { $case: 'resumed', value: {} }, instanceId);

function recording(view: RegistryView): Snapshot[] {
  const seen: Snapshot[] = [];
  view.on('snapshot', (snapshot) => seen.push(snapshot));
  return seen;
}

const ids = (snapshot: Snapshot | undefined) => snapshot?.nodes.map((entry) => entry.id);

describe('RegistryView', () => {
  it('keeps the list from a snapshot and the events after it, and emits once per turn', async () => {
    const view = new RegistryView();
    const seen = recording(view);
    expect(view.apply(snapshotOf(4, [node(1)]))).toBe('applied');
    expect(view.apply(added(5, node(2)))).toBe('applied');
    expect(view.apply(drained(6, node(1).id))).toBe('applied');
    expect(view.apply(added(7, { ...node(1), port: 1 }))).toBe('applied');
    await vi.waitFor(() => expect(seen).toHaveLength(1));
    expect(seen[0]!.revision).toBe(7);
    expect(seen[0]!.instanceId).toBe(INSTANCE);
    // A node added again under its id comes last, as registered anew.
    expect(ids(seen[0])).toEqual([node(2).id, node(1).id]);
    expect(view.apply(removed(8, node(2).id))).toBe('applied');
    await vi.waitFor(() => expect(ids(view.snapshot)).toEqual([node(1).id]));
    expect(view.resumePoint()).toEqual({ resumeInstanceId: INSTANCE, resumeRevision: 8 });
  });

  it.each([
    ['a gap in revisions', added(7, node(2))],
    ['a revision seen before', added(5, node(2))],
    ['an event of another instance', update(6, { $case: 'added', value: node(2) }, 'instance-b')],
    ['the removal of a node it does not hold', removed(6, node(9).id)],
    ['the state of a node it does not hold', drained(6, node(9).id)],
    ['a resume in the middle of a stream', resumed(5)],
  ])('asks for a resync on %s, and ignores events until a snapshot', async (_label, bad) => {
    const view = new RegistryView();
    const seen = recording(view);
    view.apply(snapshotOf(5, [node(1)]));
    expect(view.apply(bad)).toBe('resync');
    expect(view.apply(added(6, node(3)))).toBe('applied');
    await vi.waitFor(() => expect(seen).toHaveLength(1));
    expect(ids(view.snapshot)).toEqual([node(1).id]);
    expect(view.resumePoint()).toEqual({ resumeInstanceId: INSTANCE, resumeRevision: 5 });
    view.apply(snapshotOf(9, [node(1), node(2)]));
    view.apply(added(10, node(3)));
    await vi.waitFor(() => expect(view.snapshot?.revision).toBe(10));
    expect(ids(view.snapshot)).toEqual([node(1).id, node(2).id, node(3).id]);
  });

  it('accepts a resume only at the point it holds, on a new stream', () => {
    const view = new RegistryView();
    expect(view.resumePoint()).toEqual({ resumeInstanceId: '', resumeRevision: 0 });
    view.apply(snapshotOf(5, [node(1)]));
    view.restart();
    expect(view.apply(added(6, node(2)))).toBe('applied'); // ignored: before the stream's start
    expect(view.apply(resumed(5))).toBe('applied');
    expect(view.apply(added(6, node(2)))).toBe('applied');
    view.restart();
    expect(view.apply(resumed(4))).toBe('resync');
    view.restart();
    expect(view.apply(resumed(6, 'instance-b'))).toBe('resync');
  });

  it('takes the list of a new instance whole, whatever its revisions', async () => {
    const view = new RegistryView();
    view.apply(snapshotOf(40, [node(1), node(2)]));
    view.restart();
    view.apply(snapshotOf(1, [node(3)], 'instance-b'));
    await vi.waitFor(() => expect(view.snapshot?.instanceId).toBe('instance-b'));
    expect(view.snapshot!.revision).toBe(1);
    expect(ids(view.snapshot)).toEqual([node(3).id]);
  });

  it('fetches each distinct descriptor set once and fills it in; a snapshot waits for its sets, a later node does not', async () => {
    const fetches: string[] = [];
    const pending = new Map<string, () => void>();
    const sets = new Map([setA, setB, setC].map((set) => [sha(set).toString('hex'), set]));
    const view = new RegistryView({
      fetchDescriptorSet: (hash) => {
        const key = hash.toString('hex');
        fetches.push(key);
        return new Promise((resolve) => pending.set(key, () => resolve(sets.get(key)!)));
      },
    });
    const seen = recording(view);
    const arrive = (set: Buffer) => pending.get(sha(set).toString('hex'))!();
    const gateway = node(8000, null);
    view.apply(snapshotOf(1, [gateway, node(1), node(2), node(3, setB)]));
    await vi.waitFor(() => expect(fetches).toHaveLength(2));
    arrive(setA);
    await new Promise((resolve) => setTimeout(resolve, 20));
    // The whole list is handed on once every set it needs is here.
    expect(seen).toHaveLength(0);
    arrive(setB);
    await vi.waitFor(() => expect(seen).toHaveLength(1));
    expect(ids(seen[0])).toEqual([gateway.id, node(1).id, node(2).id, node(3).id]);
    // A node added later with a set not seen yet waits for it; the others are handed on at once.
    view.apply(added(2, node(4, setC)));
    view.apply(drained(3, node(1).id));
    await vi.waitFor(() => expect(view.snapshot?.revision).toBe(3));
    expect(ids(view.snapshot)).toEqual([gateway.id, node(1).id, node(2).id, node(3).id]);
    arrive(setC);
    await vi.waitFor(() => expect(view.snapshot!.nodes).toHaveLength(5));
    expect(fetches).toHaveLength(3);
    const filled = view.snapshot!.nodes.filter((entry) => entry.descriptorSetSha256.length > 0);
    expect(filled.map((entry) => entry.descriptorSet.toString())).toEqual([
      'descriptor set A',
      'descriptor set A',
      'descriptor set B',
      'descriptor set C',
    ]);
    // Kept while used: a new instance of a known set costs no fetch.
    view.apply(added(4, node(5)));
    await vi.waitFor(() => expect(view.snapshot!.nodes).toHaveLength(6));
    expect(fetches).toHaveLength(3);
  });

  it('hands a snapshot on without a set that fails to come, and fetches it again only after its delay', async () => {
    // Before, every emit that followed a failure fetched the set again at once, and a snapshot waited
    // for it: a set whose fetch kept failing (a distributor gone right after its snapshot) made
    // thousands of calls a second, a warning each, and the list was never handed on.
    const failing = sha(setB);
    let attempts = 0;
    const view = new RegistryView({
      retryMs: 1_000,
      fetchDescriptorSet: async (hash) => {
        if (!hash.equals(failing)) return setA;
        attempts++;
        throw new Error('unavailable');
      },
    });
    const seen = recording(view);
    view.apply(snapshotOf(1, [node(1), node(2, setB)]));
    await vi.waitFor(() => expect(seen).toHaveLength(1));
    expect(ids(seen[0])).toEqual([node(1).id]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(attempts).toBe(1);
    // A change of the list tries it again, once.
    view.apply(drained(2, node(1).id));
    await vi.waitFor(() => expect(view.snapshot?.revision).toBe(2));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(attempts).toBe(2);
    view.close();
  });

  it('fetches a set again after a failure, while a node still needs it', async () => {
    let attempts = 0;
    const view = new RegistryView({
      retryMs: 20,
      fetchDescriptorSet: async () => {
        attempts++;
        if (attempts === 1) throw new Error('unavailable');
        return setA;
      },
    });
    view.apply(snapshotOf(1, [node(1)]));
    await vi.waitFor(() => expect(view.snapshot?.nodes).toHaveLength(1));
    expect(attempts).toBe(2);
    expect(view.snapshot!.revision).toBe(1);
    view.close();
  });

  it('warns once about a set whose fetch keeps failing for one reason, not at every retry', async () => {
    // As when this host's clock jumped past the registry token's proof window while registered: the
    // node list still comes, every fetch of a new set is refused, and was warned about every second.
    const captured = captureLog('gateway', 'info');
    let attempts = 0;
    const refusal = Object.assign(new Error('16 UNAUTHENTICATED: …'), {
      code: 16,
      details:
        "invalid credentials: the proof of the registry token was made at a time 360 s ahead of the distributor's clock (at most 300 s either way): set the clocks of both hosts right",
    });
    const view = new RegistryView({
      log: captured.log,
      retryMs: 10,
      fetchDescriptorSet: async () => {
        attempts++;
        throw refusal;
      },
    });
    view.apply(snapshotOf(1, [node(1)]));
    await vi.waitFor(() => expect(attempts).toBeGreaterThanOrEqual(10));
    view.close();
    const warnings = captured.lines.filter((line) => line.event === 'descriptor-set-fetch');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toContain(
      "(invalid credentials: the proof of the registry token was made at a time 360 s ahead of the distributor's clock",
    );
  });
});
