import { nodeIdOf } from '../common/node-id.js';
import { type Node, NodeState, RegisterRequest } from '../gen/distributor.js';
import {
  MAX_INSTANCE_ID_LENGTH,
  nodeEntryBytes,
  responseEnvelopeBytes,
  SNAPSHOT_LIMIT_BYTES,
} from './snapshot-size.js';

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
  /**
   * Bytes of the distinct descriptor sets held in all (one copy per SHA-256, however many nodes
   * share it); the sets of one name may take `nameShare` of it.
   */
  readonly descriptorSetsBytes: number;
  /**
   * Distinct REST routes ("METHOD shape") held in all; the routes of one name may take `nameShare`
   * of them. Each route new to the registry is compared with those held (see RouteOwners), so this
   * bounds what one registration can cost.
   */
  readonly heldRoutes: number;
  /** Live nodes under one name (instances of one service). */
  readonly nodesPerName: number;
  /** Live nodes in all. */
  readonly nodes: number;
  /**
   * The largest Register, Watch or List response: at most {@link SNAPSHOT_LIMIT_BYTES}. Node entries
   * carry the SHA-256 of their descriptor set, not the set, so this bounds the entries alone.
   */
  readonly snapshotBytes: number;
  /**
   * The fraction of the node list's bytes, of the nodes and of the distinct descriptor sets' bytes the
   * nodes of one name may take, so one name cannot fill them.
   */
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

/** Live nodes the registry holds by default. */
const NODES = 8192;
/** What one name may take of each bound by default. */
const NAME_SHARE = 1 / 4;

/**
 * The defaults, derived from each other where they can be. Node entries carry the 32-byte hash of
 * their descriptor set instead of the set (about 27 KB for goods: services.proto with comments and
 * the imports its HttpRules need), so a goods node takes about 100 bytes of the 4 MiB list: the
 * 8,192 nodes take well under 1 MB, one name's 2,048 (a quarter) well under its 1 MiB share, and the
 * per-node limits still leave room for the largest valid node. The distinct descriptor sets may
 * take what the whole list could before (4 MiB: about 160 sets like goods', or 16 of the largest),
 * one name a quarter of it; so may the distinct REST routes (4,096: 64 services of 64 routes;
 * comparing a node's 64 new routes with 4,096 of one method took 7 to 9 ms here, less than twice the
 * 5.5 ms of parsing the descriptor set that brought them). A host may bring a whole name's instances
 * back at once after a distributor restart (a burst of `nodesPerName`), and then 500 a second: a registration now costs
 * each subscriber one event of a few hundred bytes, not a list.
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
  descriptorSetsBytes: SNAPSHOT_LIMIT_BYTES,
  heldRoutes: 4096,
  nodesPerName: NODES * NAME_SHARE,
  nodes: NODES,
  snapshotBytes: SNAPSHOT_LIMIT_BYTES,
  nameShare: NAME_SHARE,
  registrationsPerSecond: 500,
  registrationBurst: NODES * NAME_SHARE,
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
  /** What the distinct descriptor sets of one name may take: descriptorSetsBytes × nameShare. */
  readonly nameDescriptorSetsBytes: number;
}

/**
 * Derives the byte budgets from the limits and checks that they hold together: every response fits
 * what clients accept, and the largest valid node and the largest valid descriptor set fit one
 * name's share (else a valid node could never register). Throws a RangeError saying what was expected.
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
  const nameDescriptorSetsBytes = Math.floor(limits.descriptorSetsBytes * limits.nameShare);
  if (limits.descriptorSetBytes > nameDescriptorSetsBytes) {
    throw new RangeError(
      `registration limits: the largest valid descriptor set takes ${limits.descriptorSetBytes} bytes, over ` +
        `one name's share of the distinct sets, ${nameDescriptorSetsBytes}; expected a smaller ` +
        'descriptorSetBytes or a larger descriptorSetsBytes or nameShare',
    );
  }
  const nameHeldRoutes = Math.floor(limits.heldRoutes * limits.nameShare);
  if (limits.routes > nameHeldRoutes) {
    throw new RangeError(
      `registration limits: a node may serve ${limits.routes} routes, over one name's share of the held ` +
        `routes, ${nameHeldRoutes}; expected fewer routes or a larger heldRoutes or nameShare`,
    );
  }
  const maxRequestBytes = RegisterRequest.encode({
    kind: {
      $case: 'node',
      value: {
        ...largest,
        descriptorSet: Buffer.alloc(limits.descriptorSetBytes),
        state: NodeState.NODE_STATE_DRAINING,
      },
    },
    options: {
      nodeList: {
        resumeInstanceId: 'i'.repeat(MAX_INSTANCE_ID_LENGTH),
        resumeRevision: Number.MAX_SAFE_INTEGER,
      },
    },
  }).finish().length;
  return {
    maxNodeIdLength,
    maxNodeBytes,
    maxRequestBytes,
    envelopeBytes,
    listBytes,
    nameBytes,
    nameDescriptorSetsBytes,
  };
}

/** The budgets of the defaults, derived (and so checked) when the module loads. */
export const DEFAULT_BUDGET: RegistrationBudget = registrationBudget(REGISTRATION_LIMITS);

/** Merges overrides into the defaults. */
export function resolveLimits(overrides: Partial<RegistrationLimits> = {}): RegistrationLimits {
  return Object.freeze({ ...REGISTRATION_LIMITS, ...overrides });
}

/**
 * A node at every limit at once: the largest entry a valid registration can add to the list, which
 * names its descriptor set by hash.
 */
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
    // A host name of the longest length makes a longer id than any IPv6 address in brackets.
    id: nodeIdOf({ name, host, port: 65535 }),
    name,
    host,
    port: 65535,
    routes: Array.from({ length: limits.routes }, () => route),
    descriptorSet: Buffer.alloc(0),
    descriptorSetSha256: Buffer.alloc(32),
    state: NodeState.NODE_STATE_DRAINING,
    // The widest timestamp a Date holds: year 275760, with nanoseconds.
    registeredAt: new Date(8.64e15 - 1),
  };
}
