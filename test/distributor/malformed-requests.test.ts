import {
  type ClientDuplexStream,
  type ClientReadableStream,
  Metadata,
  type StatusObject,
  status,
} from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { asIs } from '../../src/common/bytes-method.js';
import { NodeState, RegisterRequest } from '../../src/gen/distributor.js';
import { goodsNode } from '../helpers/nodes.js';
import { describeNodeWith, stateMessage, useDistributorHarness } from './support/distributor-harness.js';

const { startDistributor, client } = useDistributorHarness();

/** Bytes that are no protobuf message: a length-delimited field 1 whose length runs past the end. */
const NOT_A_MESSAGE = Buffer.from([0x0a, 0xff, 0xff]);

/** How long a refused stream may take to hear its status: far more than it needs, far less than its deadline. */
const STATUS_WITHIN_MS = 3_000;

/** A Register stream that sends bytes as they are given. */
function rawRegister(address: string, deadlineMs: number): ClientDuplexStream<Buffer, Buffer> {
  return client(address).makeBidiStreamRequest(
    '/shop.v1.DistributorService/Register',
    asIs,
    asIs,
    new Metadata(),
    {
      deadline: Date.now() + deadlineMs,
    },
  );
}

/** The status a stream ends with, its answers pushed to `answers` meanwhile. */
function statusOf(
  call: ClientReadableStream<Buffer>,
  answers: Buffer[] = [],
): Promise<StatusObject | 'no status'> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('no status'), STATUS_WITHIN_MS);
    call.on('error', () => {});
    call.on('data', (answer: Buffer) => answers.push(answer));
    call.once('status', (ended: StatusObject) => {
      clearTimeout(timer);
      resolve(ended);
    });
  });
}

/** The code and details a unary call of `path` with {@link NOT_A_MESSAGE} is answered with. */
function unaryAnswer(address: string, path: string): Promise<{ code: number; details: string }> {
  return new Promise((resolve) => {
    client(address).makeUnaryRequest(
      path,
      asIs,
      asIs,
      NOT_A_MESSAGE,
      { deadline: Date.now() + 5_000 },
      (error) => resolve({ code: error?.code ?? status.OK, details: error?.details ?? '' }),
    );
  });
}

describe('requests that are not the message they should be', () => {
  it('List with bytes that do not decode is INVALID_ARGUMENT, not a server fault', async () => {
    const { address } = await startDistributor();
    expect(await unaryAnswer(address, '/shop.v1.DistributorService/List')).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'invalid request: the request is not a well-formed protobuf message',
    });
  });

  // grpc-js ends a call whose message its deserializer throws on with INTERNAL; with messages queued
  // behind the bad one, about half such Register streams were seen never to get any status.
  it('a Register stream with a bad message behind good ones always gets INVALID_ARGUMENT, and the node leaves', async () => {
    const { address, distributor } = await startDistributor();
    const encoded = (request: RegisterRequest) => Buffer.from(RegisterRequest.encode(request).finish());
    const first = encoded(describeNodeWith(goodsNode()));
    const serving = encoded(stateMessage(NodeState.NODE_STATE_SERVING));
    const outcomes: Array<StatusObject | 'no status'> = [];
    for (let attempt = 0; attempt < 12; attempt++) {
      const call = rawRegister(address, 30_000);
      const ended = statusOf(call);
      // Written together, so that they arrive in as few frames as the transport makes of them.
      for (const message of [first, serving, serving, NOT_A_MESSAGE]) call.write(message);
      outcomes.push(await ended);
      call.cancel();
    }
    expect(
      outcomes.map((outcome) =>
        outcome === 'no status' ? outcome : { code: outcome.code, details: outcome.details },
      ),
    ).toEqual(
      Array(12).fill({
        code: status.INVALID_ARGUMENT,
        details: 'invalid registration: the request is not a well-formed protobuf message',
      }),
    );
    expect(distributor.registry.snapshot().nodes).toEqual([]);
  });

  it('a Watch resuming from a revision past 2^53 - 1 is told so, not that its message is malformed', async () => {
    const { address } = await startDistributor();
    // WatchRequest { subscription = 1 { resume_instance_id = 1: "x", resume_revision = 2: 2^64 - 1 } }
    const maxUint64 = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    const subscription = Buffer.concat([Buffer.from([0x0a, 0x01, 0x78, 0x10]), maxUint64]);
    const request = Buffer.concat([Buffer.from([0x0a, subscription.length]), subscription]);
    const call = client(address).makeServerStreamRequest(
      '/shop.v1.DistributorService/Watch',
      asIs,
      asIs,
      request,
      new Metadata(),
      { deadline: Date.now() + 10_000 },
    );
    expect(await statusOf(call)).toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: 'invalid request: a 64-bit integer field is beyond ±(2^53 - 1), the most this server reads',
    });
  });

  it('a node name that is not UTF-8 is refused, not listed under U+FFFD', async () => {
    const { address, distributor } = await startDistributor();
    // RegisterRequest { node = 1 { name = 1, port = 3 } }: the name's bytes "go\xffds", port 9010.
    const name = Buffer.from([0x67, 0x6f, 0xff, 0x64, 0x73]);
    const node = Buffer.concat([Buffer.from([0x0a, name.length]), name, Buffer.from([0x18, 0xb2, 0x46])]);
    const request = Buffer.concat([Buffer.from([0x0a, node.length]), node]);
    const call = rawRegister(address, 10_000);
    const ended = statusOf(call);
    call.write(request);
    expect(await ended).toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: 'invalid registration: a string field is not valid UTF-8',
    });
    expect(distributor.registry.snapshot().nodes).toEqual([]);
  });

  // grpc-health-check and @grpc/reflection add their own services, decoded by proto-loader; through
  // strictServer their calls are refused like the shop's own.
  it('a health Check that does not decode is INVALID_ARGUMENT, not INTERNAL', async () => {
    const { address } = await startDistributor();
    expect(await unaryAnswer(address, '/grpc.health.v1.Health/Check')).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'invalid request: the request is not a well-formed protobuf message',
    });
  });

  it('a health Watch that does not decode ends INVALID_ARGUMENT', async () => {
    const { address } = await startDistributor();
    const call = client(address).makeServerStreamRequest(
      '/grpc.health.v1.Health/Watch',
      asIs,
      asIs,
      NOT_A_MESSAGE,
      new Metadata(),
      { deadline: Date.now() + 10_000 },
    );
    expect(await statusOf(call)).toMatchObject({ code: status.INVALID_ARGUMENT });
  });

  it('a reflection stream answers the requests before a bad one, then ends INVALID_ARGUMENT', async () => {
    const { address } = await startDistributor();
    // ServerReflectionRequest { list_services = 7: "" }
    const listServices = Buffer.from([0x3a, 0x00]);
    const call = client(address).makeBidiStreamRequest(
      '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
      asIs,
      asIs,
      new Metadata(),
      { deadline: Date.now() + 10_000 },
    );
    const answers: Buffer[] = [];
    const ended = statusOf(call, answers);
    for (const message of [listServices, listServices, NOT_A_MESSAGE, listServices]) call.write(message);
    expect(await ended).toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: 'invalid request: the request is not a well-formed protobuf message',
    });
    expect(answers).toHaveLength(2);
    expect(answers[0]?.toString('latin1')).toContain('shop.v1.DistributorService');
  });
});
