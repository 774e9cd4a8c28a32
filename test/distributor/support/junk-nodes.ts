import { createHash } from 'node:crypto';
import { create, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { REGISTRATION_LIMITS } from '../../../src/distributor/registration-limits.js';
import {
  MAX_INSTANCE_ID_LENGTH,
  nodeEntryBytes,
  varintBytes,
} from '../../../src/distributor/snapshot-size.js';
import {
  Node,
  type NodeDescription,
  NodeState,
  RegisterResponse,
  type Route,
  Route as RouteMessage,
  type Snapshot,
} from '../../../src/gen/distributor.js';

/** The one method a junk descriptor set defines, and the route that maps it. */
export const JUNK_ROUTE: Route = {
  httpMethod: 'GET',
  path: '/junk',
  grpcMethod: 'junk.v1.JunkService/Get',
  responseFields: [],
};

/** The fields of the junk method's output: as many as a route may show, each with the longest name. */
export const JUNK_FIELDS: readonly string[] = Array.from(
  { length: REGISTRATION_LIMITS.responseFields },
  (_, index) => `f${String(index).padStart(2, '0')}`.padEnd(REGISTRATION_LIMITS.fieldNameLength, 'x'),
);

/** A junk set; `wide`: the method's output has every field of {@link JUNK_FIELDS}, for padding routes. */
function encodeJunkSet(commentLength: number, wide = false): Buffer {
  const set = create(FileDescriptorSetSchema, {
    file: [
      {
        name: 'junk.proto',
        package: 'junk.v1',
        syntax: 'proto3',
        messageType: [
          { name: 'Empty' },
          {
            name: 'Wide',
            field: wide
              ? JUNK_FIELDS.map((name, index) => ({ name, number: index + 1, type: 9, label: 1 }))
              : [],
          },
        ],
        service: [
          {
            name: 'JunkService',
            method: [{ name: 'Get', inputType: '.junk.v1.Empty', outputType: '.junk.v1.Wide' }],
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
    descriptorSetSha256: Buffer.alloc(0),
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
    descriptorSet: Buffer.alloc(0),
    state: NodeState.NODE_STATE_SERVING,
    registeredAt,
    descriptorSetSha256:
      description.descriptorSet.length > 0
        ? createHash('sha256').update(description.descriptorSet).digest()
        : Buffer.alloc(0),
  };
}

/** A junk route to the junk method: path `/<index>/` padded to `pathLength`, showing `fields` fields. */
function paddingRoute(index: number, pathLength: number, fields: number): Route {
  const prefix = `/${index}/`;
  return {
    ...JUNK_ROUTE,
    path: prefix + 'p'.repeat(Math.max(0, pathLength - prefix.length)),
    responseFields: JUNK_FIELDS.slice(0, fields),
  };
}

const WIDE_SET = encodeJunkSet(0, true);
const MAX_PATH = REGISTRATION_LIMITS.pathLength;
const MAX_FIELDS = JUNK_FIELDS.length;

/** What one route adds to an encoded Node: its tag, its length and itself. */
const routeEntryBytes = (route: Route): number => {
  const length = RouteMessage.encode(route).finish().length;
  return 1 + varintBytes(length) + length;
};

/**
 * A junk node that adds exactly `entryBytes` to the list once the distributor lists it at
 * `registeredAt`. The list names descriptor sets by hash, so the node is padded with routes: routes
 * at every limit, then one whose fields and path length make up the rest, to the byte. Sizes are
 * added up route by route (a node's routes take exactly the sum of their entries).
 */
export function junkNodeOfEntrySize(
  name: string,
  port: number,
  entryBytes: number,
  registeredAt: Date,
): NodeDescription {
  const base: NodeDescription = {
    name,
    host: '127.0.0.1',
    port,
    routes: [],
    descriptorSet: WIDE_SET,
    state: NodeState.NODE_STATE_UNSPECIFIED,
    descriptorSetSha256: Buffer.alloc(0),
  };
  // Without routes, but listed with the hash a routed node carries.
  const bare = Node.encode({
    ...listedNode(base, registeredAt),
    descriptorSetSha256: createHash('sha256').update(WIDE_SET).digest(),
  }).finish().length;
  const fullRoute = routeEntryBytes(paddingRoute(0, MAX_PATH, MAX_FIELDS));
  for (let lengthBytes = 1; lengthBytes <= 4; lengthBytes++) {
    // The node's encoded length, if its length prefix takes `lengthBytes`.
    const nodeLength = entryBytes - 1 - lengthBytes;
    if (varintBytes(nodeLength) !== lengthBytes) continue;
    const routesBytes = nodeLength - bare;
    for (
      let full = Math.max(0, Math.floor(routesBytes / fullRoute) - 1);
      full < REGISTRATION_LIMITS.routes;
      full++
    ) {
      const tail = routesBytes - full * fullRoute;
      if (tail < routeEntryBytes(paddingRoute(full, 0, 0))) break;
      for (let fields = 0; fields <= MAX_FIELDS; fields++) {
        if (routeEntryBytes(paddingRoute(full, MAX_PATH, fields)) < tail) continue;
        let pathLength: number;
        try {
          pathLength = solve(
            tail,
            (length) => routeEntryBytes(paddingRoute(full, length, fields)),
            0,
            'a route',
          );
        } catch {
          continue; // a length prefix widens right here: another field count lands elsewhere
        }
        const node: NodeDescription = {
          ...base,
          routes: [
            ...Array.from({ length: full }, (_, index) => paddingRoute(index, MAX_PATH, MAX_FIELDS)),
            paddingRoute(full, pathLength, fields),
          ],
        };
        if (nodeEntryBytes(listedNode(node, registeredAt)) === entryBytes) return node;
      }
    }
  }
  throw new Error(`no junk node lists at exactly ${entryBytes} bytes`);
}

/**
 * The largest response that carries `snapshot`'s nodes, sized as the budget is: the longest node id
 * and instance id, the largest revision, in the largest framing (a first-contract RegisterResponse,
 * or an update in a RegisterResponse or WatchResponse).
 */
export function largestResponseBytes(snapshot: Snapshot, maxNodeIdLength: number): number {
  const widest: Snapshot = {
    ...snapshot,
    revision: Number.MAX_SAFE_INTEGER,
    instanceId: 'i'.repeat(MAX_INSTANCE_ID_LENGTH),
  };
  const legacy = RegisterResponse.encode({
    nodeId: 'i'.repeat(maxNodeIdLength),
    snapshot: widest,
    update: undefined,
    ack: undefined,
  }).finish().length;
  const update = RegisterResponse.encode({
    nodeId: '',
    snapshot: undefined,
    update: {
      instanceId: widest.instanceId,
      revision: widest.revision,
      change: { $case: 'snapshot', value: widest },
    },
    ack: undefined,
  }).finish().length;
  return Math.max(legacy, update);
}

/** The bytes a piece of a name's share is filled with in the tests: a large node, under the largest. */
export const PIECE_BYTES = 150_000;

/** Entry sizes that add up to exactly `total`, each at most {@link PIECE_BYTES} and at least 10 KB. */
export function piecesOf(total: number): number[] {
  const count = Math.ceil(total / PIECE_BYTES);
  const sizes = Array<number>(count).fill(PIECE_BYTES);
  sizes[count - 1] = total - (count - 1) * PIECE_BYTES;
  if (sizes[count - 1]! < 10_000 && count > 1) {
    sizes[count - 2]! -= 10_000;
    sizes[count - 1]! += 10_000;
  }
  return sizes;
}
