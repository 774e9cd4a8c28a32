import { type ClientHttp2Stream, connect as connectHttp2, constants } from 'node:http2';
import { status } from '@grpc/grpc-js';
import { describe, expect, it, vi } from 'vitest';
import { DistributorTelemetry } from '../../src/distributor/distributor-telemetry.js';
import { REGISTRATION_LIMITS } from '../../src/distributor/registration-limits.js';
import { NodeState, RegisterRequest, RegisterResponse } from '../../src/gen/distributor.js';
import { gatewayNode } from '../helpers/nodes.js';
import { grpcFrame, openRawCall } from '../helpers/raw-grpc.js';
import {
  describeNode,
  describeNodeWith,
  stateMessage,
  useDistributorHarness,
} from './support/distributor-harness.js';

// A Register stream refused after its node was listed (a state change past the rate limit, a
// malformed later message) first gets every acknowledgement of what was applied, in order, then the
// status: a node must learn that its last accepted change took effect before it was refused.

const { cleanups, startDistributor, openRegistration, list } = useDistributorHarness();

const REGISTER = '/shop.v1.DistributorService/Register';

/** What a raw Register stream received: its responses, and how it ended (grpc-status, or RST_STREAM). */
function received(stream: ClientHttp2Stream) {
  const responses: RegisterResponse[] = [];
  let bytes = Buffer.alloc(0);
  stream.on('data', (chunk: Buffer) => {
    bytes = Buffer.concat([bytes, chunk]);
    while (bytes.length >= 5 && bytes.length >= 5 + bytes.readUInt32BE(1)) {
      const length = bytes.readUInt32BE(1);
      responses.push(RegisterResponse.decode(bytes.subarray(5, 5 + length)));
      bytes = bytes.subarray(5 + length);
    }
  });
  // The status comes in the trailers, or in the headers of a trailers-only answer; a stream reset
  // (by the distributor's watch on unread answers) has neither.
  const ended = new Promise<{ grpcStatus?: number; grpcMessage?: string; rstCode?: number }>((resolve) => {
    const read = (headers: Record<string, unknown>): void => {
      if (headers['grpc-status'] === undefined) return;
      resolve({
        grpcStatus: Number(headers['grpc-status']),
        grpcMessage: decodeURIComponent(String(headers['grpc-message'] ?? '')),
      });
    };
    stream.on('response', read);
    stream.on('trailers', read);
    stream.once('close', () => resolve({ rstCode: stream.rstCode }));
  });
  return { responses, ended };
}

/**
 * A connection whose streams the server may send nothing on (a flow-control window of 0) until
 * `open()`: every answer waits in the distributor meanwhile, as for a node that reads slowly.
 */
function closedWindowSession(port: number) {
  const session = connectHttp2(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 0 } });
  session.on('error', () => {});
  cleanups.push(() => void session.destroy());
  return { session, open: () => session.settings({ initialWindowSize: 65_535 }) };
}

const ackStates = (responses: RegisterResponse[]) =>
  responses.filter((response) => response.ack).map((response) => NodeState[response.ack!.state]);

/** DRAINING, SERVING, DRAINING, …: `count` state changes. */
const flips = (count: number) =>
  Array.from({ length: count }, (_, index) =>
    index % 2 === 0 ? NodeState.NODE_STATE_DRAINING : NodeState.NODE_STATE_SERVING,
  );

/**
 * A Register stream on a connection of a closed window (see closedWindowSession): `first`, a state
 * message for each of `states`, then `after`. Its answers wait in the distributor until `open()`.
 */
function registerUnread(port: number, first: RegisterRequest, states: NodeState[], after?: RegisterRequest) {
  const { session, open } = closedWindowSession(port);
  const stream = openRawCall(session, REGISTER);
  const { responses, ended } = received(stream);
  for (const message of [first, ...states.map(stateMessage), ...(after ? [after] : [])]) {
    stream.write(grpcFrame(RegisterRequest.encode(message).finish()));
  }
  return { stream, responses, ended, open };
}

/** Resolves once the distributor lists no node: a refused node leaves at its refusal. */
const offTheList = (address: string) =>
  vi.waitFor(async () => expect((await list(address)).snapshot!.nodes).toEqual([]));

describe('a Register stream refused after its node was listed', () => {
  it('of a node that reads as it goes, gets every acknowledgement of its burst before the refusal', async () => {
    const { address } = await startDistributor();
    const burst = REGISTRATION_LIMITS.stateChangeBurst;
    const states = flips(burst + 1);
    const node = openRegistration(address, [
      describeNodeWith(gatewayNode()),
      ...states.map((state) => stateMessage(state)),
    ]);
    expect(await node.ended).toMatchObject({ code: status.RESOURCE_EXHAUSTED });
    expect(ackStates(node.responses)).toEqual([
      'NODE_STATE_SERVING',
      ...states.slice(0, burst).map((state) => NodeState[state]),
    ]);
  });

  it('gets the acknowledgement of every change applied before the refusal, in order, then the status', async () => {
    const { port, address } = await startDistributor();
    const burst = REGISTRATION_LIMITS.stateChangeBurst;
    // The burst is applied, the one after it refused.
    const states = flips(burst + 1);
    const { responses, ended, open } = registerUnread(port, describeNodeWith(gatewayNode()), states);
    // The node leaves the list at the refusal, not once its answers are read.
    await offTheList(address);
    open();
    expect(await ended).toEqual({
      grpcStatus: status.RESOURCE_EXHAUSTED,
      grpcMessage: `too many state changes: at most ${REGISTRATION_LIMITS.stateChangesPerSecond} a second (bursts of ${burst})`,
    });
    expect(ackStates(responses)).toEqual([
      'NODE_STATE_SERVING',
      ...states.slice(0, burst).map((state) => NodeState[state]),
    ]);
    const revisions = responses.map((response) => Number(response.ack!.revision));
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
  });

  it('gets them before an INVALID_ARGUMENT for a malformed later message too', async () => {
    const { port, address } = await startDistributor({ limits: { stateChangeBurst: 20 } });
    const states = flips(15);
    const { responses, ended, open } = registerUnread(
      port,
      describeNodeWith(gatewayNode()),
      states,
      describeNode(gatewayNode()),
    );
    await offTheList(address);
    open();
    expect(await ended).toMatchObject({ grpcStatus: status.INVALID_ARGUMENT });
    expect(ackStates(responses)).toEqual(['NODE_STATE_SERVING', ...states.map((state) => NodeState[state])]);
  });

  it('of the first contract, gets the list with its last change applied before the refusal', async () => {
    // An odd burst: the last change applied leaves the node DRAINING, as no earlier list shows it.
    const burst = 9;
    const { port, address } = await startDistributor({ limits: { stateChangeBurst: burst } });
    const states = flips(burst + 1);
    const { responses, ended, open } = registerUnread(port, describeNode(gatewayNode()), states);
    await offTheList(address);
    open();
    expect(await ended).toMatchObject({ grpcStatus: status.RESOURCE_EXHAUSTED });
    // Snapshots are coalesced while the node reads none (only the newest waits), but the newest is sent.
    const last = responses.at(-1)!.snapshot!;
    expect(states[burst - 1]).toBe(NodeState.NODE_STATE_DRAINING);
    expect(last.nodes.map((node) => NodeState[node.state])).toEqual(['NODE_STATE_DRAINING']);
  });

  it('gets its refusal, not an OK, when it half-closes while its acknowledgements wait', async () => {
    const { port, address } = await startDistributor();
    const burst = REGISTRATION_LIMITS.stateChangeBurst;
    const { stream, responses, ended, open } = registerUnread(
      port,
      describeNodeWith(gatewayNode()),
      flips(burst + 1),
    );
    stream.end();
    await offTheList(address);
    // The half-close reached the distributor too (it comes after the messages, on the same stream).
    await new Promise((resolve) => setTimeout(resolve, 50));
    open();
    expect(await ended).toMatchObject({ grpcStatus: status.RESOURCE_EXHAUSTED });
    expect(ackStates(responses)).toHaveLength(burst + 1);
  });

  it('that takes none of its answers is reset once they sat unread for the port’s timeout, off the list meanwhile', async () => {
    const unreadAnswerTimeoutMs = 300;
    const { port, address } = await startDistributor({ unreadAnswerTimeoutMs });
    const burst = REGISTRATION_LIMITS.stateChangeBurst;
    const started = performance.now();
    const { ended } = registerUnread(port, describeNodeWith(gatewayNode()), flips(burst + 1));
    await offTheList(address);
    expect(await ended).toEqual({ rstCode: constants.NGHTTP2_CANCEL });
    // Found waiting within a quarter of the timeout, reset a timeout later, looked at every quarter.
    expect(performance.now() - started).toBeLessThan(unreadAnswerTimeoutMs * 2 + 1_000);
  });
});

describe('a refused Register stream whose answers still wait', () => {
  /** Opens a Register stream on a window of 0 and has it refused after its burst: its answers wait. */
  async function refusedWhileUnread(port: number, address: string) {
    const { open, ended } = registerUnread(
      port,
      describeNodeWith(gatewayNode()),
      flips(REGISTRATION_LIMITS.stateChangeBurst + 1),
    );
    await offTheList(address);
    return { open, ended };
  }

  /** The line of shop_registry_open_streams in what `telemetry` reports. */
  const openStreamsOf = (telemetry: DistributorTelemetry) => async () =>
    (await telemetry.registry!.metrics())
      .split('\n')
      .find((line) => line.startsWith('shop_registry_open_streams '));

  it('is counted among the open streams until it has ended', async () => {
    const telemetry = new DistributorTelemetry();
    const { port, address } = await startDistributor({ telemetry });
    const openStreams = openStreamsOf(telemetry);
    expect(await openStreams()).toBe('shop_registry_open_streams 0');
    const { open, ended } = await refusedWhileUnread(port, address);
    // Off the list, but still open and holding its answers.
    expect(await openStreams()).toBe('shop_registry_open_streams 1');
    open();
    expect(await ended).toMatchObject({ grpcStatus: status.RESOURCE_EXHAUSTED });
    await vi.waitFor(async () => expect(await openStreams()).toBe('shop_registry_open_streams 0'));
  });

  it('is counted no more once reset for taking none of its answers', async () => {
    const telemetry = new DistributorTelemetry();
    const { port, address } = await startDistributor({ telemetry, unreadAnswerTimeoutMs: 300 });
    const openStreams = openStreamsOf(telemetry);
    const { ended } = await refusedWhileUnread(port, address);
    expect(await openStreams()).toBe('shop_registry_open_streams 1');
    expect(await ended).toEqual({ rstCode: constants.NGHTTP2_CANCEL });
    await vi.waitFor(async () => expect(await openStreams()).toBe('shop_registry_open_streams 0'));
  });
});
