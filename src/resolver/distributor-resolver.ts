import {
  type ChannelCredentials,
  type ChannelOptions,
  experimental,
  Metadata,
  type ServiceConfig,
  type StatusObject,
  status,
} from '@grpc/grpc-js';
import { validateServiceConfig } from '@grpc/grpc-js/build/src/service-config.js';
import type { BackoffOptions } from '../common/backoff.js';
import { registryOfDescriptorSet } from '../common/http-routes.js';
import { type Logger, silentLogger } from '../common/logger.js';
import { retryClassOf } from '../common/retry-policy.js';
import { type Node, NodeState, type Snapshot } from '../gen/distributor.js';
import { checkRegistryToken } from '../registry-client/registry-token.js';
import { RegistryWatcher } from '../registry-client/registry-watcher.js';
import { RestartGrace } from '../registry-client/restart-grace.js';
import { tokenRefusalHint } from '../registry-client/token-refusal-hint.js';

/** The URI scheme the resolver serves: `distributor:///<gRPC service or node name>`. */
export const DISTRIBUTOR_SCHEME = 'distributor';

/**
 * How long the Watch outlives the last channel that used it, in ms: a program that closes a client
 * and makes the next one at once (a client per request) keeps its stream and its list.
 */
export const WATCH_RELEASE_DELAY_MS = 1_000;

/**
 * Options of {@link registerDistributorResolver}. Each optional one takes undefined for "not given"
 * (`token: process.env.SHOP_REGISTRY_TOKEN`, as the README has it), under exactOptionalPropertyTypes too.
 */
export interface DistributorResolverOptions {
  /** The distributor's address, "host:port". */
  distributor: string;
  /** The registration token, if the distributor asks for one (Watch needs the credentials of List). */
  token?: string | undefined;
  /**
   * How to reach the distributor: TLS or mTLS channel credentials (e.g. channelCredentials() of
   * src/common/tls.ts with `expectedName: 'distributor'`); plaintext by default. The channels the
   * resolver serves use the credentials their own clients were made with. Made by channelCredentials
   * with a CA file, a change of that file that no longer trusts the distributor of the Watch's
   * connection moves the Watch to a new connection, or ends it (see RegistryWatcher); credentials
   * made otherwise tell of no file, and the Watch keeps its connection.
   */
  credentials?: ChannelCredentials | undefined;
  /** Channel options that go with `credentials` (see secureNamingChannelOptions). */
  channelOptions?: ChannelOptions | undefined;
  log?: Logger | undefined;
  backoff?: BackoffOptions | undefined;
  /**
   * After a distributor restart, how long instances of the last list that have not registered again
   * are still resolved to, in ms (as the gateway's --restart-grace-ms); 7,000 by default, 0: none.
   */
  restartGraceMs?: number | undefined;
  /**
   * How long the distributor may take to answer a new Watch stream before calls that wait for the
   * list fail with UNAVAILABLE (and it is tried again); 30,000 ms by default.
   */
  answerTimeoutMs?: number | undefined;
}

/** The resolver, registered: {@link close} stops following the distributor. */
export interface DistributorResolverRegistration {
  /**
   * The node list as the resolver sees it, once one has arrived; undefined again while no channel
   * uses the resolver (the Watch was ended) until a channel needs it again and a new list arrives.
   */
  readonly snapshot: Snapshot | undefined;
  /**
   * Ends the Watch stream; channels keep the addresses they last had, and channels made later
   * resolve from the last list (the one kept when the Watch was last ended for want of channels, if
   * none came since: it may be as old as that). Before any list arrived, the calls of channels still
   * waiting for one, or made later, fail with UNAVAILABLE.
   */
  close(): void;
}

type Endpoint = { addresses: Array<{ host: string; port: number }> };

/**
 * The service config a channel is given: its own `grpc.service_config` (method timeouts, retries,
 * waitForReady), balanced round robin unless it names a policy. grpc-js takes a config from the
 * resolver instead of the channel's, whole: returning round robin alone dropped the channel's.
 * validateServiceConfig is grpc-js's own reading of that option (the channel has already checked it
 * with it, so it does not throw here); grpc-js exports it from no public entry.
 */
function serviceConfigOf(
  channelOptions: ChannelOptions,
): ReturnType<typeof experimental.statusOrFromValue<ServiceConfig>> {
  const own = channelOptions['grpc.service_config'];
  const config: ServiceConfig =
    typeof own === 'string'
      ? validateServiceConfig(JSON.parse(own))
      : { loadBalancingConfig: [], methodConfig: [] };
  if (config.loadBalancingConfig.length === 0) {
    config.loadBalancingConfig = [
      config.loadBalancingPolicy ? { [config.loadBalancingPolicy]: {} } : { round_robin: {} },
    ];
  }
  return experimental.statusOrFromValue(config);
}

/** The gRPC services a descriptor set defines (a node serves every one), by the set's SHA-256. */
class ServicesBySet {
  readonly #known = new Map<string, ReadonlySet<string>>();

  of(node: Node): ReadonlySet<string> {
    if (node.descriptorSet.length === 0) return NONE;
    const key = node.descriptorSetSha256.toString('hex');
    let services = this.#known.get(key);
    if (!services) {
      services = new Set<string>();
      try {
        for (const file of registryOfDescriptorSet(node.descriptorSet).files) {
          for (const service of file.services) (services as Set<string>).add(service.typeName);
        }
      } catch {
        // The distributor validated it; a set that does not parse here serves nothing.
      }
      this.#known.set(key, services);
    }
    return services;
  }

  /** Forgets the sets no node of `snapshot` uses. */
  retainOnly(snapshot: Snapshot): void {
    const used = new Set(snapshot.nodes.map((node) => node.descriptorSetSha256.toString('hex')));
    for (const key of this.#known.keys()) if (!used.has(key)) this.#known.delete(key);
  }
}

const NONE: ReadonlySet<string> = new Set();

/**
 * The node name whose instances a gRPC service target ("shop.v1.GoodsService") resolves to: `held`
 * while a node of that name in `snapshot` still defines the service, else the first name in the list
 * (registration order) whose descriptor set defines it; undefined when none does. A certificate
 * proves a node's name, not which services it may serve: without one owner, any component could
 * register a set that defines another's service (no REST route, so no route conflict) and take a
 * share of its calls, sign-ins included.
 */
export function serviceOwner(
  snapshot: Snapshot,
  service: string,
  services: (node: Node) => ReadonlySet<string>,
  held?: string,
): string | undefined {
  let first: string | undefined;
  for (const node of snapshot.nodes) {
    if (!services(node).has(service)) continue;
    if (node.name === held) return held;
    first ??= node.name;
  }
  return first;
}

/**
 * The serving instances of `target` in a snapshot, one endpoint per address: nodes named `target`
 * ("goods"), or, for a gRPC service ("shop.v1.GoodsService"), the nodes of its owner (see
 * {@link serviceOwner}; by default the first name in the list that defines it) whose descriptor set
 * defines it.
 */
export function endpointsFor(
  snapshot: Snapshot,
  target: string,
  services?: (node: Node) => ReadonlySet<string>,
  owner?: string,
): Endpoint[] {
  const bySet = services ? undefined : new ServicesBySet();
  const servicesOf = services ?? ((node: Node) => bySet!.of(node));
  const owningName = owner ?? serviceOwner(snapshot, target, servicesOf);
  const seen = new Set<string>();
  const endpoints: Endpoint[] = [];
  for (const node of snapshot.nodes) {
    if (node.state !== NodeState.NODE_STATE_SERVING) continue;
    if (node.name !== target && (node.name !== owningName || !servicesOf(node).has(target))) continue;
    const key = `${node.host}:${node.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    endpoints.push({ addresses: [{ host: node.host, port: node.port }] });
  }
  return endpoints;
}

/**
 * Why `target` cannot be resolved, if so: an authority (`distributor://host:port/goods`) would be
 * taken for another distributor, where the one given at registration answers, and a path that is
 * empty or has a slash (`distributor:///`, parsed as the path "///") names no service or node.
 */
function refusalOf(target: experimental.GrpcUri, distributor: string): StatusObject | undefined {
  const named = `${DISTRIBUTOR_SCHEME}:${target.authority === undefined ? '' : `//${target.authority}/`}${target.path}`;
  let details: string | undefined;
  if (target.authority) {
    details = `${named}: the ${DISTRIBUTOR_SCHEME}:/// resolver takes no authority (host); it follows the distributor given to registerDistributorResolver, ${distributor}: write ${DISTRIBUTOR_SCHEME}:///${target.path}`;
  } else if (target.path === '' || target.path.includes('/')) {
    details = `${named} names no gRPC service or node: write ${DISTRIBUTOR_SCHEME}:///<service> (shop.v1.GoodsService) or ${DISTRIBUTOR_SCHEME}:///<node name> (goods)`;
  }
  return details === undefined ? undefined : { code: status.UNAVAILABLE, details, metadata: new Metadata() };
}

/**
 * Registers a grpc-js name resolver for `distributor:///<target>`, so that any grpc-js client
 * (a stock generated one included) reaches the serving instances the distributor lists, balanced
 * round robin. The target is a gRPC service ("shop.v1.GoodsService": the nodes whose descriptor set
 * defines it) or a node name ("goods").
 *
 * One Watch stream (with the given credentials), opened at once, follows the distributor's node
 * list for every channel of the process, until every channel that used it is closed or gone idle
 * (grpc-js's `grpc.client_idle_timeout_ms`, 30 minutes by default): it ends a second after the last,
 * or a second after registering when no channel has used it by then,
 * so that it keeps no process alive, and a channel that needs it again opens a new one (and
 * resolves from the list it had if the distributor cannot be reached then). Each
 * channel's addresses change as instances join, drain (a draining instance gets no new call) and
 * leave. If the distributor is away, channels keep the addresses
 * they last had; before the first list arrives, a failure to reach it fails calls with UNAVAILABLE.
 * After a distributor restart, instances not registered again yet are kept for `restartGraceMs`.
 * grpc-js keeps one resolver per scheme: registering again replaces the earlier registration for
 * new channels.
 */
export function registerDistributorResolver(
  options: DistributorResolverOptions,
): DistributorResolverRegistration {
  const log = options.log ?? silentLogger();
  // A token grpc-js cannot send is refused now, not when a channel first starts the Watch again.
  if (options.token !== undefined) checkRegistryToken(options.token);
  const resolvers = new Set<DistributorResolver>();
  /** The resolvers whose channel asked for addresses and has not been closed nor gone idle since. */
  const users = new Set<DistributorResolver>();
  const servicesBySet = new ServicesBySet();
  const servicesOf = (node: Node) => servicesBySet.of(node);
  let unreachable: StatusObject | undefined;
  let closed = false;
  const closedBeforeAList: StatusObject = {
    code: status.UNAVAILABLE,
    details: `the ${DISTRIBUTOR_SCHEME}:/// resolver was closed before the distributor at ${options.distributor} sent a node list`,
    metadata: new Metadata(),
  };
  /** The list the channels resolve from: the watcher's, with the instances kept through a restart. */
  let applied: Snapshot | undefined;
  /** The list applied when the Watch was last ended for want of channels (see release). */
  let released: Snapshot | undefined;
  /**
   * Whether channels resolve from a list the running Watch brought (or fell back on): a grace that
   * ends before one came must not hand them the list of the Watch before it.
   */
  let watchListed = false;

  /** Follows the distributor's list over a new Watch stream; the function returned ends it. */
  const follow = (): (() => void) => {
    let current = true;
    watchListed = false;
    // The services a node serves are those its descriptor set defines: the watcher fetches each set once.
    const watcher = new RegistryWatcher({
      distributor: options.distributor,
      descriptorSets: true,
      log,
      ...(options.token === undefined ? {} : { token: options.token }),
      ...(options.credentials ? { credentials: options.credentials } : {}),
      ...(options.channelOptions ? { channelOptions: options.channelOptions } : {}),
      ...(options.backoff ? { backoff: options.backoff } : {}),
      ...(options.answerTimeoutMs === undefined ? {} : { answerTimeoutMs: options.answerTimeoutMs }),
    });
    watcher.on('snapshot', (snapshot) => {
      if (!current) return;
      unreachable = undefined;
      released = undefined;
      watchListed = true;
      grace.snapshot(snapshot);
    });
    watcher.on('connected', () => {
      if (current) grace.connected();
    });
    watcher.on('disconnected', (ended) => {
      if (!current) return;
      grace.disconnected();
      if (applied) return;
      if (released) {
        // The distributor is away as a channel comes back: the list of before the Watch was ended
        // is better than none, as for a channel that kept its Watch; the next list (a restart's,
        // maybe partial) replaces it through the restart grace.
        const last = released;
        released = undefined;
        watchListed = true;
        grace.snapshot(last);
        grace.disconnected();
        return;
      }
      // A refusal is no unreachable distributor: its words, with the setting they point at (an
      // older distributor asking for the bearer, a token that is not its own).
      const what = retryClassOf(ended.code) === 'transient' ? 'cannot be reached' : 'refused the Watch';
      const hint = tokenRefusalHint(ended.code, ended.details, options.token !== undefined);
      unreachable = {
        code: status.UNAVAILABLE,
        details: `the distributor at ${options.distributor} ${what}: ${ended.details}${hint}`,
        metadata: new Metadata(),
      };
      for (const resolver of resolvers) resolver.fail(unreachable);
    });
    watcher.start();
    return () => {
      current = false;
      watcher.stop();
    };
  };
  // A restarted distributor knows nobody until every node has registered again: its first lists are
  // partial, and would fail calls to live instances with "no serving instance" meanwhile. One grace
  // outlives each Watch: a Watch opened again (a client per request ends it between requests) takes
  // a list of another distributor instance for a restart, and one opened during a grace keeps what
  // it kept, where a grace of its own knew no earlier list and applied the new one as it was.
  const grace = new RestartGrace({
    graceMs: options.restartGraceMs ?? 7_000,
    apply: (snapshot) => {
      if (!unfollow || !watchListed) {
        // A grace that ends while no Watch runs, or before the one opened again has a list, settles
        // the list a channel falls back on; a channel waits for the new one.
        if (released) released = snapshot;
        return;
      }
      applied = snapshot;
      servicesBySet.retainOnly(snapshot);
      for (const resolver of resolvers) resolver.report(snapshot);
    },
    log,
  });
  // Follow the list from now on, so that the first channel finds it ready.
  let unfollow: (() => void) | undefined = follow();
  let releaseTimer: NodeJS.Timeout | undefined;

  /** Ends the Watch shortly, unless a channel uses it meanwhile (see use). */
  const releaseSoon = (): void => {
    clearTimeout(releaseTimer);
    releaseTimer = setTimeout(() => {
      releaseTimer = undefined;
      if (users.size > 0 || closed || !unfollow) return;
      log.debug(
        { event: 'watch-released' },
        `no channel uses ${DISTRIBUTOR_SCHEME}:/// now: ending the Watch`,
      );
      unfollow();
      unfollow = undefined;
      // A list kept while nobody follows the distributor grows stale: the next channel waits for a
      // new one, and takes this one only if the distributor cannot be reached.
      released = applied;
      applied = undefined;
      unreachable = undefined;
    }, WATCH_RELEASE_DELAY_MS);
    releaseTimer.unref();
  };
  // A program that registers and makes no channel soon (or none at all) must still exit: the stream
  // opened for the first channel is ended as for a channel closed, and opened again when one comes.
  releaseSoon();

  /**
   * The list a channel resolves from now: the applied one, or, once closed, the one kept when the
   * Watch was last ended for want of channels (no Watch will bring a newer one; failing the channel
   * as if no list had ever come would refuse calls to instances the resolver knew of).
   */
  const lastList = (): Snapshot | undefined => applied ?? (closed ? released : undefined);

  /** A channel needs the list: the Watch runs (again, if it had been released). */
  const use = (resolver: DistributorResolver): void => {
    users.add(resolver);
    clearTimeout(releaseTimer);
    releaseTimer = undefined;
    if (!unfollow && !closed) unfollow = follow();
  };
  /**
   * A channel was closed or went idle. When it was the last that used the list, the Watch ends
   * shortly after: held open, its stream would keep the process alive for ever, every client closed.
   */
  const release = (resolver: DistributorResolver): void => {
    if (!users.delete(resolver) || users.size > 0 || closed) return;
    releaseSoon();
  };

  class DistributorResolver implements experimental.Resolver {
    readonly #target: string;
    readonly #listener: experimental.ResolverListener;
    #last: string | undefined;
    /** The name a service target resolves to, kept while it is listed (see serviceOwner). */
    #owner: string | undefined;
    /** Names passed over for defining the target's service too, each warned about once. */
    readonly #passedOver = new Set<string>();

    /** Why the target names nothing this resolver can follow, if it does not. */
    readonly #refusal: StatusObject | undefined;

    readonly #serviceConfig: ReturnType<typeof serviceConfigOf>;

    constructor(
      target: experimental.GrpcUri,
      listener: experimental.ResolverListener,
      channelOptions: ChannelOptions,
    ) {
      this.#target = target.path;
      this.#listener = listener;
      this.#serviceConfig = serviceConfigOf(channelOptions);
      this.#refusal = refusalOf(target, options.distributor);
      if (!this.#refusal) resolvers.add(this);
    }

    /** Reports the target's endpoints in `snapshot`, if they changed. */
    report(snapshot: Snapshot): void {
      this.#owner = serviceOwner(snapshot, this.#target, servicesOf, this.#owner);
      this.#warnOfOthers(snapshot);
      const endpoints = endpointsFor(snapshot, this.#target, servicesOf, this.#owner);
      const key = JSON.stringify(endpoints);
      if (key === this.#last) return;
      this.#last = key;
      log.debug(
        { event: 'resolved', target: this.#target, endpoints: endpoints.length, revision: snapshot.revision },
        `${DISTRIBUTOR_SCHEME}:///${this.#target}: ${endpoints.length} serving instance(s)`,
      );
      const none = `the distributor lists no serving instance of ${this.#target}`;
      this.#listener(
        experimental.statusOrFromValue(endpoints),
        {},
        this.#serviceConfig,
        endpoints.length === 0 ? none : '',
      );
      // grpc-js's round_robin takes an empty list as IDLE and queues calls until their deadline;
      // the empty list drops the instances it had, and an error then fails calls at once.
      if (endpoints.length === 0) {
        this.fail({ code: status.UNAVAILABLE, details: none, metadata: new Metadata() });
      }
    }

    /** Warns once per name of the nodes passed over because another name owns the target's service. */
    #warnOfOthers(snapshot: Snapshot): void {
      for (const node of snapshot.nodes) {
        if (node.name === this.#owner || node.name === this.#target || this.#passedOver.has(node.name))
          continue;
        if (!servicesOf(node).has(this.#target)) continue;
        this.#passedOver.add(node.name);
        log.warn(
          { event: 'service-conflict', target: this.#target, owner: this.#owner, node: node.id },
          `${DISTRIBUTOR_SCHEME}:///${this.#target}: not resolving to ${node.id}: ${this.#target} belongs to "${this.#owner}", which defined it first`,
        );
      }
    }

    /**
     * The registration is closed: a channel that has no result yet gets the last list, or the error
     * when none came, not silence. (An idle channel made before close() has asked for nothing yet:
     * failed, its calls would be refused as if no list had ever arrived.)
     */
    abandon(): void {
      if (this.#last !== undefined) return;
      setImmediate(() => {
        if (this.#last !== undefined) return;
        const last = lastList();
        if (last) this.report(last);
        else this.fail(closedBeforeAList);
      });
    }

    fail(error: StatusObject): void {
      this.#listener(experimental.statusOrFromError(error), {}, null, '');
    }

    /**
     * Reports what is known, once: later results come with the node list's changes. (A channel asks
     * again whenever a connection fails; answering each time, with the same list, would only make
     * it start over.)
     */
    updateResolution(): void {
      const refusal = this.#refusal;
      if (refusal) {
        // Counted while its channel lives (opening no Watch), so that the one opened at registration
        // ends after it: unused, it would keep the process alive.
        if (unfollow) use(this);
        setImmediate(() => this.fail(refusal));
        return;
      }
      resolvers.add(this);
      use(this);
      if (this.#last !== undefined) return;
      // Never synchronously: grpc-js asks that results come later.
      setImmediate(() => {
        if (!resolvers.has(this) || this.#last !== undefined) return;
        const last = lastList();
        if (last) this.report(last);
        else if (unreachable) this.fail(unreachable);
        // Nothing will come any more: waiting would hold the channel's calls until their deadline.
        else if (closed) this.fail(closedBeforeAList);
      });
    }

    destroy(): void {
      resolvers.delete(this);
      this.#last = undefined;
      release(this);
    }

    static getDefaultAuthority(target: experimental.GrpcUri): string {
      return target.path;
    }
  }

  experimental.registerResolver(DISTRIBUTOR_SCHEME, DistributorResolver);
  return {
    get snapshot() {
      return applied;
    },
    close() {
      closed = true;
      for (const resolver of resolvers) resolver.abandon();
      resolvers.clear();
      users.clear();
      clearTimeout(releaseTimer);
      grace.stop();
      unfollow?.();
      unfollow = undefined;
    },
  };
}
