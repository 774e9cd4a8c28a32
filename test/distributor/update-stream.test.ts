import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { NodeListFeed } from '../../src/distributor/node-list-feed.js';
import { NodeRegistry } from '../../src/distributor/node-registry.js';
import { MESSAGES_IN_STREAM, UpdateWriter } from '../../src/distributor/update-writer.js';
import { NodeState, RegisterResponse, WatchResponse } from '../../src/gen/distributor.js';
import { gatewayNode, goodsNode } from '../helpers/nodes.js';

/** A stream that takes a message only when the test says so. */
function slowCall() {
  const written: string[] = [];
  const callbacks: Array<() => void> = [];
  return {
    written,
    /** Lets the stream take the oldest message it was given. */
    take: () => callbacks.shift()!(),
    get waiting() {
      return callbacks.length;
    },
    call: {
      write(message: Buffer, callback: () => void) {
        written.push(message.toString());
        callbacks.push(callback);
        return true;
      },
    },
  };
}

describe('UpdateWriter', () => {
  it('sends events in order while the stream takes them', () => {
    const stream = slowCall();
    const writer = new UpdateWriter(stream.call, {
      snapshot: () => Buffer.from('S'),
      backlogLimit: () => 10,
    });
    writer.send(Buffer.from('start'));
    for (const event of ['e1', 'e2', 'e3']) writer.event(Buffer.from(event));
    expect(stream.written).toEqual(['start', 'e1', 'e2', 'e3']);
    expect(writer.behind).toBe(false);
  });

  it('swaps the backlog of a slow stream for one snapshot, taken when it has caught up', () => {
    const stream = slowCall();
    let revision = 0;
    const writer = new UpdateWriter(stream.call, {
      snapshot: () => Buffer.from(`S${revision}`),
      backlogLimit: () => 6,
    });
    for (revision = 1; revision <= 6; revision++) writer.event(Buffer.from(`e${revision}`));
    revision = 6;
    // Three events of two bytes fill the backlog; the rest are dropped.
    expect(stream.written).toEqual(['e1', 'e2', 'e3']);
    expect(writer.behind).toBe(true);
    writer.event(Buffer.from('e7'));
    revision = 7;
    writer.send(Buffer.from('ack'));
    stream.take();
    stream.take();
    stream.take();
    expect(stream.written).toEqual(['e1', 'e2', 'e3', 'ack']);
    stream.take();
    // Everything taken: the list as it is now, then events again.
    expect(stream.written.at(-1)).toBe('S7');
    expect(writer.behind).toBe(false);
    writer.event(Buffer.from('e8'));
    expect(stream.written.slice(-2)).toEqual(['S7', 'e8']);
  });

  it('starts over at once on a resync when the stream is idle, else after it catches up', () => {
    const stream = slowCall();
    const writer = new UpdateWriter(stream.call, {
      snapshot: () => Buffer.from('S'),
      backlogLimit: () => 100,
    });
    writer.resync(() => [Buffer.from('R'), Buffer.from('e1')]);
    expect(stream.written).toEqual(['R', 'e1']);
    writer.event(Buffer.from('e2'));
    writer.resync(() => [Buffer.from('R2')]);
    writer.event(Buffer.from('dropped'));
    expect(stream.written).toEqual(['R', 'e1', 'e2']);
    while (stream.waiting > 0) stream.take();
    expect(stream.written).toEqual(['R', 'e1', 'e2', 'R2']);
  });
});

describe("UpdateWriter: the stream's own buffer", () => {
  it(`hands the stream at most ${MESSAGES_IN_STREAM} messages at once, the rest in order as it takes them`, () => {
    const stream = slowCall();
    const writer = new UpdateWriter(stream.call, {
      snapshot: () => Buffer.from('S'),
      backlogLimit: () => 10_000,
    });
    const events = Array.from({ length: 100 }, (_, index) => `e${index}`);
    for (const event of events) writer.event(Buffer.from(event));
    expect(stream.written).toEqual(events.slice(0, MESSAGES_IN_STREAM));
    while (stream.waiting > 0) {
      expect(stream.waiting).toBeLessThanOrEqual(MESSAGES_IN_STREAM);
      stream.take();
    }
    expect(stream.written).toEqual(events);
    expect(writer.behind).toBe(false);
  });

  // A destroyed stream fails every write in its buffer with an error of its own: a thousand watchers
  // leaving with hundreds each stalled the distributor for seconds.
  it('once a write fails, drops what waits and writes nothing more', () => {
    const written: string[] = [];
    const failures: Array<() => void> = [];
    const call = {
      write(message: Buffer, callback: (error?: Error | null) => void) {
        written.push(message.toString());
        failures.push(() => callback(new Error('stream destroyed')));
        return true;
      },
    };
    const writer = new UpdateWriter(call, { snapshot: () => Buffer.from('S'), backlogLimit: () => 10_000 });
    for (let index = 0; index < 500; index++) writer.event(Buffer.from(`e${index}`));
    for (const fail of failures.splice(0)) fail();
    writer.event(Buffer.from('after'));
    writer.send(Buffer.from('ack'));
    expect(written).toHaveLength(MESSAGES_IN_STREAM);
  });
});

describe('NodeListFeed', () => {
  it('encodes each change once and gives every subscriber the same buffer', () => {
    const registry = new NodeRegistry({ instanceId: 'instance-a' });
    const feed = new NodeListFeed(registry);
    const received: Buffer[][] = [[], [], []];
    for (const sink of received) feed.subscribe((event) => sink.push(event));
    const lease = registry.join(goodsNode(), '127.0.0.1', () => {});
    lease.setState(NodeState.NODE_STATE_DRAINING);
    lease.leave('closed');
    expect(received.map((events) => events.length)).toEqual([3, 3, 3]);
    for (let index = 0; index < 3; index++) {
      expect(received[1]![index]).toBe(received[0]![index]);
      expect(received[2]![index]).toBe(received[0]![index]);
    }
    // The same bytes are a RegisterResponse and a WatchResponse alike.
    const asRegister = RegisterResponse.decode(received[0]![0]!);
    const asWatch = WatchResponse.decode(received[0]![0]!);
    expect(asRegister.update).toEqual(asWatch.update);
    expect(asRegister.nodeId).toBe('');
    expect(asWatch.update).toMatchObject({ instanceId: 'instance-a', revision: 1 });
    expect(asWatch.update!.change).toEqual({
      $case: 'added',
      value: registry.snapshot().nodes[0] ?? expect.anything(),
    });
  });

  it('encodes a snapshot as the generated code would, once per revision', () => {
    const registry = new NodeRegistry({ instanceId: 'instance-a' });
    const feed = new NodeListFeed(registry);
    registry.join(goodsNode(), '127.0.0.1', () => {});
    registry.join(gatewayNode(), '127.0.0.1', () => {});
    const snapshot = feed.snapshot();
    expect(feed.snapshot()).toBe(snapshot);
    expect(WatchResponse.decode(snapshot).update).toEqual({
      instanceId: 'instance-a',
      revision: 2,
      change: { $case: 'snapshot', value: registry.snapshot() },
    });
  });

  it('resumes only while what was missed costs no more than a snapshot, however much history it holds', () => {
    // The README promised a resume for anything within the 4,096 events held: with a small list
    // the events a subscriber missed can cost several times its snapshot, which it gets instead.
    const registry = new NodeRegistry({ instanceId: 'instance-a' });
    const feed = new NodeListFeed(registry);
    for (let round = 0; round < 1_000; round++) {
      registry.join(gatewayNode({ port: 1 + (round % 100) }), '127.0.0.1', () => {}).leave('closed');
    }
    const revision = registry.revision;
    expect(revision).toBe(2_000);
    const first = (missed: number) => {
      const sent = feed.start({ resumeInstanceId: 'instance-a', resumeRevision: revision - missed });
      return WatchResponse.decode(sent[0]!).update!.change!.$case;
    };
    expect(first(100)).toBe('resumed');
    // 1,900 events (held: fewer than 4,096, under 1 MiB) take more than the 64 KiB floor.
    expect(first(1_900)).toBe('snapshot');
  });

  it('takes 70 to 100 bytes a node in a snapshot, as the README says (about 250 KB at 3,000)', () => {
    const registry = new NodeRegistry({ instanceId: 'instance-a' });
    const feed = new NodeListFeed(registry);
    // A tenth of the README's 3,000: the size grows by the node.
    for (let index = 0; index < 300; index++) {
      const host = `10.1.${index >> 8}.${index & 255}`;
      // Two thirds services (with their set's hash), a third without a set, as gateways are.
      const node = index % 3 === 2 ? gatewayNode() : goodsNode();
      registry.join(node, host, () => {});
    }
    const bytes = feed.snapshot().length;
    expect(bytes / 300).toBeGreaterThan(70);
    expect(bytes / 300).toBeLessThan(100);
  });

  it('keeps a bounded history, by events and by bytes', () => {
    const registry = new NodeRegistry({ instanceId: 'instance-a' });
    const feed = new NodeListFeed(registry, { historyEvents: 3 });
    for (let port = 1; port <= 5; port++) registry.join(gatewayNode({ port }), '127.0.0.1', () => {});
    const from = (revision: number) =>
      feed
        .start({ resumeInstanceId: 'instance-a', resumeRevision: revision })
        .map(
          (bytes) =>
            `${WatchResponse.decode(bytes).update!.change!.$case}@${WatchResponse.decode(bytes).update!.revision}`,
        );
    expect(from(2)).toEqual(['resumed@2', 'added@3', 'added@4', 'added@5']);
    expect(from(1)).toEqual(['snapshot@5']);
    const small = new NodeListFeed(new NodeRegistry(), { historyBytes: 1 });
    expect(small.start(undefined)).toHaveLength(1);
  });
});

describe('UpdateWriter: a stream ended with a status', () => {
  it('writes nothing more once the stream is ended, so that the status still goes out', async () => {
    // As a grpc-js server stream does: an 'error' sets the status and ends the stream, which sends
    // the status once the writes in its buffer are done. A write after that destroys the stream
    // (ERR_STREAM_WRITE_AFTER_END), and the status never goes: the call hung for ever.
    let status = '';
    const call = new Writable({
      objectMode: true,
      write(_message: Buffer, _encoding, callback) {
        setImmediate(callback);
      },
      final(callback) {
        status = 'sent';
        callback();
      },
    });
    call.on('error', () => call.end());
    const writer = new UpdateWriter(call, { snapshot: () => Buffer.from('S'), backlogLimit: () => 10_000 });
    for (let index = 0; index < MESSAGES_IN_STREAM + 3; index++) writer.send(Buffer.from(`ack${index}`));
    call.emit('error', new Error('too many state changes'));
    await new Promise((resolve) => call.once('close', resolve));
    expect(status).toBe('sent');
    expect(call.errored).toBeNull();
  });
});

describe('UpdateWriter: ended before a status', () => {
  it('takes nothing more, gives the stream everything it holds in order, and only then says so', () => {
    const stream = slowCall();
    const writer = new UpdateWriter(stream.call, {
      snapshot: () => Buffer.from('S'),
      backlogLimit: () => 10_000,
    });
    const acks = Array.from({ length: MESSAGES_IN_STREAM + 3 }, (_, index) => `ack${index}`);
    for (const ack of acks) writer.send(Buffer.from(ack));
    let ended = 0;
    writer.end(() => ended++);
    writer.send(Buffer.from('late'));
    writer.event(Buffer.from('late event'));
    while (stream.waiting > 0) {
      expect(ended).toBe(0);
      stream.take();
    }
    expect(stream.written).toEqual(acks);
    expect(ended).toBe(1);
    writer.end(() => ended++);
    expect(ended).toBe(1);
  });

  it('says so at once when the stream holds nothing, and gives a stream behind no snapshot', () => {
    const stream = slowCall();
    const writer = new UpdateWriter(stream.call, { snapshot: () => Buffer.from('S'), backlogLimit: () => 2 });
    let ended = false;
    writer.end(() => {
      ended = true;
    });
    expect(ended).toBe(true);

    const behind = slowCall();
    const late = new UpdateWriter(behind.call, { snapshot: () => Buffer.from('S'), backlogLimit: () => 2 });
    late.event(Buffer.from('e1'));
    late.event(Buffer.from('e2'));
    expect(late.behind).toBe(true);
    let lateEnded = false;
    late.end(() => {
      lateEnded = true;
    });
    behind.take();
    expect(behind.written).toEqual(['e1']);
    expect(lateEnded).toBe(true);
  });

  it('says so once a write fails: the stream is gone', () => {
    const failures: Array<() => void> = [];
    const call = {
      write(_message: Buffer, callback: (error?: Error | null) => void) {
        failures.push(() => callback(new Error('stream destroyed')));
        return true;
      },
    };
    const writer = new UpdateWriter(call, { snapshot: () => Buffer.from('S'), backlogLimit: () => 10_000 });
    for (let index = 0; index < MESSAGES_IN_STREAM + 3; index++) writer.send(Buffer.from(`ack${index}`));
    let ended = 0;
    writer.end(() => ended++);
    failures.shift()!();
    expect(ended).toBe(1);
    for (const fail of failures.splice(0)) fail();
    expect(ended).toBe(1);
  });
});
