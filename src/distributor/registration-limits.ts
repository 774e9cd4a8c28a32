import { type Node, NodeState, RegisterRequest } from '../gen/distributor.js';
import { nodeEntryBytes, responseEnvelopeBytes, SNAPSHOT_LIMIT_BYTES } from './snapshot-size.js';

/** The HTTP methods a route may use. */
export const HTTP_METHODS: ReadonlySet<string> = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Every bound the distributor puts on what callers may register, so that no caller, with or without
 * credentials, can bloat the list every node receives or push real nodes out of it.
 */
export interface RegistrationLimits {
  /** Characters in a node name. */
  readonly nameLength: number;
  /** Characters in an advertised host. */
  readonly hostLength: number;
  /** Routes one node may serve. */
  readonly routes: number;
  /** Characters in a route's HTTP path. */
  readonly pathLength: number;
  /** Characters in a route's "package.Service/Method". */
  readonly grpcMethodLength: number;
  /** Response fields of one route. */
  readonly responseFields: number;
  /** Characters in one response field name. */
  readonly fieldNameLength: number;
  /** Bytes of one node's descriptor set. */
  readonly descriptorSetBytes: number;
  /** Live nodes under one name (instances of one service). */
  readonly nodesPerName: number;
  /** Live nodes in all. */
  readonly nodes: number;
  /** The largest Register, Watch or List response: at most {@link SNAPSHOT_LIMIT_BYTES}. */
  readonly snapshotBytes: number;
  /** The fraction of the node list's bytes the nodes of one name may take, so one name cannot fill it. */
  readonly nameShare: number;
  /** Registrations one peer address may make per second, on average. */
  readonly registrationsPerSecond: number;
  /** How many of those a peer may make at once after a quiet spell. */
  readonly registrationBurst: number;
  /**
   * State changes one registration may make per second, on average: each is a broadcast of the whole
   * list. Counted per stream, so that a flood from one address cannot stop a real node on the same
   * host from saying it drains.
   */
  readonly stateChangesPerSecond: number;
  /** How many of those a registration may make at once. */
  readonly stateChangeBurst: number;
  /** Peer addresses remembered for rate limiting and for logging a refusal once: memory stays bounded. */
  readonly peers: number;
}

/**
 * The defaults. A goods node takes about 25 KB of the list (its descriptor set: services.proto with
 * comments, and the imports its HttpRules need, google/protobuf/descriptor.proto the largest), so a
 * name's share holds 41 of its instances, not 64; a node without descriptors takes about 60 bytes,
 * so 1,024 of them fit.
 */
export const REGISTRATION_LIMITS: RegistrationLimits = Object.freeze({
  nameLength: 64,
  hostLength: 253,
  routes: 64,
  pathLength: 256,
  grpcMethodLength: 256,
  responseFields: 32,
  fieldNameLength: 64,
  descriptorSetBytes: 256 * 1024,
  nodesPerName: 64,
  nodes: 1024,
  snapshotBytes: SNAPSHOT_LIMIT_BYTES,
  nameShare: 1 / 4,
  registrationsPerSecond: 100,
  registrationBurst: 200,
  stateChangesPerSecond: 1,
  stateChangeBurst: 10,
  peers: 1024,
});

/** The byte budgets that follow from a set of limits. */
export interface RegistrationBudget {
  /** The largest node id: name@host:port. */
  readonly maxNodeIdLength: number;
  /** The most one valid node adds to a snapshot (see nodeEntryBytes). */
  readonly maxNodeBytes: number;
  /** The largest valid RegisterRequest: the distributor's receive limit. */
  readonly maxRequestBytes: number;
  /** The most a response adds around the nodes. */
  readonly envelopeBytes: number;
  /** What the listed nodes may take in all: snapshotBytes less the envelope. */
  readonly listBytes: number;
  /** What the nodes of one name may take: listBytes × nameShare. */
  readonly nameBytes: number;
}

/**
 * Derives the byte budgets from the limits and checks that they hold together: every response fits
 * what clients accept, and the largest valid node fits one name's share (else a valid node could
 * never register). Throws a RangeError saying what was expected.
 */
export function registrationBudget(limits: RegistrationLimits): RegistrationBudget {
  for (const [key, value] of Object.entries(limits)) {
    if (key === 'nameShare') continue;
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`registration limit ${key}: expected a positive integer, got ${value}`);
    }
  }
  if (!(limits.nameShare > 0 && limits.nameShare <= 1)) {
    throw new RangeError(
      `registration limit nameShare: expected a fraction in (0, 1], got ${limits.nameShare}`,
    );
  }
  if (limits.snapshotBytes > SNAPSHOT_LIMIT_BYTES) {
    throw new RangeError(
      `registration limit snapshotBytes: expected at most ${SNAPSHOT_LIMIT_BYTES}, what clients accept`,
    );
  }
  const largest = largestNode(limits);
  const maxNodeIdLength = largest.id.length;
  const maxNodeBytes = nodeEntryBytes(largest);
  const envelopeBytes = responseEnvelopeBytes(maxNodeIdLength, limits.snapshotBytes);
  const listBytes = limits.snapshotBytes - envelopeBytes;
  const nameBytes = Math.floor(listBytes * limits.nameShare);
  if (maxNodeBytes > nameBytes) {
    throw new RangeError(
      `registration limits: the largest valid node takes ${maxNodeBytes} bytes, over one name's share of ` +
        `${nameBytes}; expected smaller per-node limits or a larger snapshotBytes or nameShare`,
    );
  }
  const maxRequestBytes = RegisterRequest.encode({
    kind: {
      $case: 'node',
      value: { ...largest, state: NodeState.NODE_STATE_DRAINING },
    },
  }).finish().length;
  return { maxNodeIdLength, maxNodeBytes, maxRequestBytes, envelopeBytes, listBytes, nameBytes };
}

/** The budgets of the defaults, derived (and so checked) when the module loads. */
export const DEFAULT_BUDGET: RegistrationBudget = registrationBudget(REGISTRATION_LIMITS);

/** Merges overrides into the defaults. */
export function resolveLimits(overrides: Partial<RegistrationLimits> = {}): RegistrationLimits {
  return Object.freeze({ ...REGISTRATION_LIMITS, ...overrides });
}

/** A node at every limit at once: the largest entry a valid registration can add to the list. */
function largestNode(limits: RegistrationLimits): Node {
  const longestMethod = [...HTTP_METHODS].reduce((a, b) => (b.length > a.length ? b : a));
  const route = {
    httpMethod: longestMethod,
    path: `/${'p'.repeat(limits.pathLength - 1)}`,
    grpcMethod: `${'s'.repeat(limits.grpcMethodLength - 2)}/m`,
    responseFields: Array.from({ length: limits.responseFields }, () => 'f'.repeat(limits.fieldNameLength)),
  };
  const name = 'n'.repeat(limits.nameLength);
  const host = 'h'.repeat(limits.hostLength);
  return {
    id: `${name}@${host}:65535`,
    name,
    host,
    port: 65535,
    routes: Array.from({ length: limits.routes }, () => route),
    descriptorSet: Buffer.alloc(limits.descriptorSetBytes),
    state: NodeState.NODE_STATE_DRAINING,
    // The widest timestamp a Date holds: year 275760, with nanoseconds.
    registeredAt: new Date(8.64e15 - 1),
  };
}
