import { create, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { nodeEntryBytes } from '../../../src/distributor/snapshot-size.js';
import { type Node, type NodeDescription, NodeState, type Route } from '../../../src/gen/distributor.js';

/** The one method a junk descriptor set defines, and the route that maps it. */
export const JUNK_ROUTE: Route = {
  httpMethod: 'GET',
  path: '/junk',
  grpcMethod: 'junk.v1.JunkService/Get',
  responseFields: [],
};

function encodeJunkSet(commentLength: number): Buffer {
  const set = create(FileDescriptorSetSchema, {
    file: [
      {
        name: 'junk.proto',
        package: 'junk.v1',
        syntax: 'proto3',
        messageType: [{ name: 'Empty' }],
        service: [
          {
            name: 'JunkService',
            method: [{ name: 'Get', inputType: '.junk.v1.Empty', outputType: '.junk.v1.Empty' }],
          },
        ],
        // Padding that any parser accepts: a comment on the service.
        sourceCodeInfo: {
          location: [{ path: [6, 0], span: [0, 0, 1], leadingComments: 'x'.repeat(commentLength) }],
        },
      },
    ],
  });
  return Buffer.from(toBinary(FileDescriptorSetSchema, set));
}

/**
 * The input from `start` up that makes `size(input)` exactly `target`: size grows by one per unit of
 * input, save where a length prefix widens, which a few corrections step over.
 */
function solve(target: number, size: (input: number) => number, start: number, what: string): number {
  let input = start;
  for (let attempt = 0; attempt < 8; attempt++) {
    const got = size(input);
    if (got === target) return input;
    input = Math.max(start, input + target - got);
  }
  throw new Error(`nothing makes ${what} exactly ${target} bytes`);
}

/**
 * A real FileDescriptorSet of exactly `bytes` bytes that defines junk.v1.JunkService/Get (so that a
 * node routing to it passes validation), padded with a comment: the attacker's valid-but-junk set.
 */
export function junkDescriptorSet(bytes: number): Buffer {
  return encodeJunkSet(solve(bytes, (padding) => encodeJunkSet(padding).length, 0, 'a junk descriptor set'));
}

/** A valid node description routing to the junk method, with a junk descriptor set of `bytes` bytes. */
export function junkNode(
  name: string,
  port: number,
  bytes: number,
  route: Route = JUNK_ROUTE,
): NodeDescription {
  return {
    name,
    host: '127.0.0.1',
    port,
    routes: [route],
    descriptorSet: junkDescriptorSet(bytes),
    state: NodeState.NODE_STATE_UNSPECIFIED,
  };
}

/** The node the distributor lists for `description` when its clock says `registeredAt`. */
export function listedNode(description: NodeDescription, registeredAt: Date): Node {
  return {
    id: `${description.name}@${description.host}:${description.port}`,
    name: description.name,
    host: description.host,
    port: description.port,
    routes: description.routes,
    descriptorSet: description.descriptorSet,
    state: NodeState.NODE_STATE_SERVING,
    registeredAt,
  };
}

/**
 * A junk node that adds exactly `entryBytes` to the list once the distributor lists it at
 * `registeredAt`.
 */
export function junkNodeOfEntrySize(
  name: string,
  port: number,
  entryBytes: number,
  registeredAt: Date,
): NodeDescription {
  const entry = (descriptorBytes: number) =>
    nodeEntryBytes(listedNode(junkNode(name, port, descriptorBytes), registeredAt));
  return junkNode(name, port, solve(entryBytes, entry, 1_000, 'a junk node'));
}
