import type { X509Certificate } from 'node:crypto';
import {
  Server,
  type ServerCredentials,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import { addressGroupOf, unmappedAddress } from '../common/address-group.js';
import { encodeDescriptorSet, loadShopDescriptorSet } from '../common/descriptors.js';
import {
  boundAddressesOf,
  connectionLimitOf,
  DEFAULT_KEEPALIVE,
  idleConnectionOptions,
  type KeepaliveOptions,
  keepaliveChannelOptions,
  listen,
  MAX_CONCURRENT_STREAMS,
  shutdown,
  streamLimitOptions,
} from '../common/grpc-server.js';
import { createHealth, endHealthWatches } from '../common/health.js';
import { type Logger, silentLogger } from '../common/logger.js';
import { addReflection } from '../common/reflection.js';
import { NODE_REPLACED, UNTRUSTED_AFTER_CA_CHANGE } from '../common/registry-words.js';
import { ServiceError, toServiceError } from '../common/service-error.js';
import { admitStreamsInSlices, type StreamAdmission } from '../common/stream-admission.js';
import { MalformedRequest, strictRequests, strictServer } from '../common/strict-requests.js';
import { serverCredentials, type TlsFiles, peerIdentities as tlsPeerIdentities } from '../common/tls.js';
import { tlsProblemLog } from '../common/tls-problem-log.js';
import {
  closeUntrustedSession,
  LateHandshakeCheck,
  sessionsNoLongerTrusted,
} from '../common/untrusted-sessions.js';
import {
  type DistributorServiceServer,
  type GetDescriptorSetRequest,
  type GetDescriptorSetResponse,
  type ListRequest,
  type ListResponse,
  type NodeDescription,
  type NodeListSubscription,
  NodeState,
  type RegisterRequest,
  type RegisterResponse,
  type WatchRequest,
  type WatchResponse,
} from '../gen/distributor.js';
import type { DistributorTelemetry } from './distributor-telemetry.js';
import { PRE_ENCODED_DISTRIBUTOR_SERVICE, SnapshotEncoder } from './encoded-snapshot.js';
import { NodeListFeed, type NodeListFeedOptions } from './node-list-feed.js';
import { type Lease, NodeRegistry } from './node-registry.js';
import {
  declaredRouteKeys,
  SHA256_BYTES,
  validateHost,
  validateName,
  validateNodeShape,
} from './node-validation.js';
import { PeerRateLimiter } from './peer-rate-limiter.js';
import { RefusalLog } from './refusal-log.js';
import { type RegistrationLimits, registrationBudget, resolveLimits } from './registration-limits.js';
import {
  type Caller,
  createRegistryAuth,
  type PeerIdentities,
  type ServerSurfaceCall,
} from './registry-auth.js';
import { createSnapshotWriter, type WritableCall } from './snapshot-writer.js';
import { TokenBucket } from './token-bucket.js';
import { encodeAck } from './update-encoding.js';
import { UpdateWriter } from './update-writer.js';

const SERVICE_NAME = 'shop.v1.DistributorService';

const EMPTY_DESCRIPTION: NodeDescription = {
  name: '',
  host: '',
  port: 0,
  routes: [],
  descriptorSet: Buffer.alloc(0),
  state: NodeState.NODE_STATE_UNSPECIFIED,
  descriptorSetSha256: Buffer.alloc(0),
};

/** Options of {@link createDistributorServer}. */
export interface DistributorServerOptions {
  /** The registry to serve; by default a fresh one with `limits`. */
  registry?: NodeRegistry;
  log?: Logger;
  /** How quickly a peer that vanished without closing its connection is dropped. */
  keepalive?: KeepaliveOptions;
  /**
   * The shared registration token. When set, every Register, Watch, List and GetDescriptorSet call
   * must carry a proof of it (see registry-proof.ts; answered with the distributor's own) or the
   * metadata `authorization: Bearer <token>` (tools), or it ends with UNAUTHENTICATED. Unset (the default):
   * no token is asked for; the process entry point, not this factory, enforces a secure default.
   */
  registryToken?: string;
  /** Reads the URI SANs of a call's client certificate; by default none (no TLS). */
  peerIdentities?: PeerIdentities;
  /**
   * For mTLS deployments (default false): Register, Watch, List and GetDescriptorSet need a
   * certificate identity, and a node may register under the name N only with the identity spiffe://shop/N (else PERMISSION_DENIED).
   */
  requireCertificateIdentity?: boolean;
  /** Overrides of REGISTRATION_LIMITS; checked for consistency at once (a RangeError if they clash). */
  limits?: Partial<RegistrationLimits>;
  /** How callers connect: plaintext by default; TLS, or mTLS with a CA (see src/common/tls.ts). */
  credentials?: ServerCredentials;
  /**
   * TLS files to serve with instead of `credentials`, read again every `tlsRefreshIntervalMs` (what
   * they become is logged, see tls-problem-log.ts), with the certificate identities of callers
   * read from them. With a CA file, when a changed one is taken, every open Register and Watch
   * stream whose peer's certificate no longer chains to it is ended with UNAUTHENTICATED, and its
   * connection closed: a CA removed because it leaked cuts the registrations of its certificates.
   */
  tls?: TlsFiles;
  /** How often the files of `tls` are read again; default DEFAULT_TLS_REFRESH_MS. */
  tlsRefreshIntervalMs?: number;
  /** How much history is kept for subscribers that resume. */
  history?: NodeListFeedOptions;
  /** Metrics of its calls and of the registry (distributor-telemetry.ts); none: nothing is counted. */
  telemetry?: DistributorTelemetry;
  /** Connections open at once on each address (see listen in grpc-server.ts). Default: defaultGrpcMaxConnections. */
  maxConnections?: number;
  /** How long a connection may stay without a call before it is closed. Default 5 minutes. */
  maxConnectionIdleMs?: number;
  /** How long a call may hold an answer its client takes nothing of (see UnreadAnswerWatch). Default 30 s. */
  unreadAnswerTimeoutMs?: number;
  /** How long a call of a one-message method may wait for its whole request (see WholeRequestWatch). Default 10 s. */
  wholeRequestTimeoutMs?: number;
  /** How long a Register stream may go without its first message (see FIRST_REGISTER_MESSAGE_TIMEOUT_MS). */
  firstMessageTimeoutMs?: number;
}

/**
 * How long a Register stream may stay open without its first message before it is ended with
 * DEADLINE_EXCEEDED, which a component retries. A Register proof is checked against the node its
 * first message describes, so any well-formed proof opens the stream: a caller without the token that
 * sent no message held it for ever (20,000 such streams on 20 connections took the distributor from
 * 76 to 320 MB, found by probing), as no answer was written for UnreadAnswerWatch to time. A node
 * sends its first message at once; 30 s leaves a 256 KiB descriptor set time on a slow link.
 */
export const FIRST_REGISTER_MESSAGE_TIMEOUT_MS = 30_000;

/** A distributor built but not yet listening. */
export interface DistributorServer {
  readonly registry: NodeRegistry;
  /** Binds host:port (0: any free port) and resolves with the port it got. */
  listen(host: string, port: number): Promise<number>;
  /** The IP addresses it listens on, once listening, in the order they were bound (see boundAddressesOf). */
  boundAddresses(): string[];
  /**
   * Stops taking calls, closes every stream with UNAVAILABLE (a refused Register stream still
   * draining too: its status follows its answers), then shuts the server down: a stream whose
   * client reads nothing is cut when `graceMs` runs out.
   */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Builds the distributor: DistributorService over a NodeRegistry, plus reflection and health.
 * A node is listed from its first Register message until its stream ends for any reason.
 *
 * Subscribers of the node list (Watch with a subscription, Register with options.node_list) get a
 * snapshot or what they missed, then every change as one shared event (NodeListFeed), through a
 * writer that swaps a slow stream's backlog for a snapshot (UpdateWriter). Other registered nodes
 * get acknowledgements only. Clients of the first contract get full snapshots as before.
 *
 * Register, Watch, List and GetDescriptorSet are authenticated (see `registryToken` and
 * `requireCertificateIdentity`); health and reflection stay open. Refusals end the call with a status and a message saying why, and
 * are logged once per peer address and kind. Each peer address may register
 * `limits.registrationsPerSecond` times a second, and each registration change its state
 * `limits.stateChangesPerSecond` times; the registry holds what its limits allow and not a byte
 * more, so that no response outgrows what clients accept.
 */
export function createDistributorServer(options: DistributorServerOptions = {}): DistributorServer {
  const log = options.log ?? silentLogger();
  const limits = resolveLimits(options.limits);
  const budget = registrationBudget(limits);
  const registry = options.registry ?? new NodeRegistry({ log, limits });
  if (options.tls && options.credentials) {
    throw new RangeError('createDistributorServer: give tls or credentials, not both');
  }
  /** Set below once the streams it ends exist: see cutUntrustedPeers. */
  let onCaTaken: (authorities: readonly X509Certificate[]) => void = () => {};
  const credentials = options.tls
    ? serverCredentials(options.tls, {
        ...tlsProblemLog(log),
        ...(options.tlsRefreshIntervalMs === undefined
          ? {}
          : { refreshIntervalMs: options.tlsRefreshIntervalMs }),
        onCaTaken: (authorities) => onCaTaken(authorities),
      })
    : options.credentials;
  const auth = createRegistryAuth({
    token: options.registryToken,
    peerIdentities: options.peerIdentities ?? (options.tls ? tlsPeerIdentities : undefined),
    requireCertificateIdentity: options.requireCertificateIdentity,
    overTls: credentials?._isSecure() ?? false,
  });
  const rateLimiter = new PeerRateLimiter({
    ratePerSecond: limits.registrationsPerSecond,
    burst: limits.registrationBurst,
    peers: limits.peers,
  });
  const refusals = new RefusalLog(log, limits.peers);
  const server = new Server({
    ...keepaliveChannelOptions(options.keepalive ?? DEFAULT_KEEPALIVE),
    ...idleConnectionOptions(options.maxConnectionIdleMs),
    // Every node may register through one connection (a proxy in front of the distributor, or the
    // registry benchmark's simulated nodes, 1,250 to a connection at 5,000 nodes): a grpc-js client
    // past the limit queues its calls silently, so a node would wait for another to leave. The node
    // limit already bounds Register streams; the rest is the bound every gRPC port has.
    ...streamLimitOptions(limits.nodes + MAX_CONCURRENT_STREAMS),
    // Nobody reads the distributor's channelz, and it costs every stream: thousands open at once.
    'grpc.enable_channelz': 0,
    // The largest valid registration; grpc-js refuses a larger message before it is even decoded.
    'grpc.max_receive_message_length': budget.maxRequestBytes,
    ...options.telemetry?.serverOptions(log),
  });
  const health = createHealth({ '': 'SERVING', [SERVICE_NAME]: 'SERVING' });
  // The first descriptor set parsed takes tens of milliseconds (the parser is compiled on first use):
  // pay it now rather than in the middle of the first burst of registrations.
  declaredRouteKeys({
    ...EMPTY_DESCRIPTION,
    descriptorSet: encodeDescriptorSet(loadShopDescriptorSet().file),
  });
  const encoder = new SnapshotEncoder();
  const feed = new NodeListFeed(registry, options.history);
  const updateWriter = (call: unknown): UpdateWriter =>
    new UpdateWriter(call as WritableCall<Buffer>, {
      snapshot: () => feed.snapshot(),
      backlogLimit: () => feed.backlogLimit(),
    });
  /** Starts `writer` on the node list (from a resume point, if any) and feeds it every later change. */
  const subscribeWriter = (writer: UpdateWriter, from: NodeListSubscription | undefined): (() => void) => {
    for (const message of feed.start(from)) writer.send(message);
    return feed.subscribe((event) => writer.event(event));
  };
  const ack = (nodeId: string, state: NodeState): Buffer =>
    encodeAck(nodeId, {
      state,
      revision: registry.revision,
      instanceId: registry.instanceId,
      sentAt: registry.now(),
    });
  const openStreams = new Set<OpenStream>();
  /**
   * Register streams refused, their node off the list, whose status waits for the answers given
   * before it (see refuse): no longer registrations, but still open and holding those answers.
   */
  const refusedStreams = new Set<OpenStream>();
  options.telemetry?.watchRegistry(registry, () => openStreams.size + refusedStreams.size);

  /**
   * Checks a Watch, List or GetDescriptorSet call's credentials: the error to end it with (logged),
   * if any. A caller that proved the token gets the distributor's proof in the answer's headers.
   */
  const refusalOf = (call: ServerSurfaceCall): ServiceError | undefined => {
    try {
      const answer = auth.answerMetadata(auth.authenticate(call));
      if (answer) call.sendMetadata(answer);
      return undefined;
    } catch (error) {
      const serviceError = toServiceError(error);
      refusals.refused(observedHost(call.getPeer()), serviceError, { grpcMethod: call.getPath().slice(1) });
      return serviceError;
    }
  };

  /** The error for a Watch, List or GetDescriptorSet call, if any: its credentials, then its request. */
  const refusalOfRequest = (
    call: ServerSurfaceCall & { readonly request: unknown },
  ): ServiceError | undefined =>
    refusalOf(call) ??
    (call.request instanceof MalformedRequest ? call.request.toError('invalid request') : undefined);

  /** Set once stop begins: a call whose handler starts after that is ended at once (see stop). */
  let closing: ServiceError | undefined;
  /** Ends a stream that starts while the distributor stops; says whether it did. */
  const endIfClosing = (call: ServerSurfaceCall): boolean => {
    if (!closing) return false;
    call.emit('error', { code: closing.code, details: closing.message });
    return true;
  };

  const register = (call: ServerDuplexStream<RegisterRequest, RegisterResponse>): void => {
    if (endIfClosing(call)) return;
    const peer = observedHost(call.getPeer());
    let lease: Lease | undefined;
    let unsubscribe: (() => void) | undefined;
    let finished = false;
    /** Set once the caller is let in, until its first message comes (see FIRST_REGISTER_MESSAGE_TIMEOUT_MS). */
    let firstMessageTimer: NodeJS.Timeout | undefined;
    const finish = (reason: string): void => {
      if (finished) return;
      finished = true;
      clearTimeout(firstMessageTimer);
      openStreams.delete(stream);
      unsubscribe?.();
      lease?.leave(reason);
    };
    const stream: OpenStream = {
      call,
      fields: () => ({ grpcMethod: call.getPath().slice(1), peer, ...(lease ? { node: lease.id } : {}) }),
      close(error: ServiceError): void {
        finish(error.message);
        call.emit('error', { code: error.code, details: error.message });
      },
    };
    openStreams.add(stream);
    /**
     * Ends the writes of the node's answers (acknowledgements, updates, snapshots) and calls `then`
     * once the stream has taken what they were given: set once the node is listed (see below).
     */
    let endAnswers = (then: () => void): void => then();
    /** Set once the stream is refused: its status waits for the answers given before it. */
    let refused = false;
    /**
     * Ends the stream with `error`: the node leaves the list at once, but the status goes only after
     * every answer given before it, in order (an acknowledgement among them tells the node that its
     * last change was applied). A node that takes none of them waits no longer than the port lets an
     * answer sit unread: its call is reset then (UnreadAnswerWatch), and ends as cancelled.
     */
    const refuse = (error: unknown): void => {
      if (finished) return;
      const serviceError = toServiceError(error);
      refusals.refused(peer, serviceError, { grpcMethod: call.getPath().slice(1), node: lease?.id });
      refused = true;
      // Ended before the node leaves: a list still waiting for the stream is made as it is now.
      const answersOut = new Promise<void>((resolve) => endAnswers(resolve));
      finish(serviceError.message);
      const draining: OpenStream = {
        call,
        fields: stream.fields,
        // At a stop, UNAVAILABLE rather than the refusal, after the same answers.
        close(error: ServiceError): void {
          refusedStreams.delete(draining);
          call.emit('error', { code: error.code, details: error.message });
        },
      };
      refusedStreams.add(draining);
      // Reset by UnreadAnswerWatch, or by the node: grpc-js calls back none of its writes then.
      call.on('cancelled', () => refusedStreams.delete(draining));
      void answersOut.then(() => {
        if (!refusedStreams.delete(draining)) return;
        call.emit('error', { code: serviceError.code, details: serviceError.message });
      });
    };
    const stateChanges = new TokenBucket(
      limits.stateChangesPerSecond,
      limits.stateChangeBurst,
      performance.now(),
    );

    let caller: Caller;
    try {
      caller = auth.authenticate(call);
    } catch (error) {
      refuse(error);
      return;
    }
    const firstMessageTimeoutMs = options.firstMessageTimeoutMs ?? FIRST_REGISTER_MESSAGE_TIMEOUT_MS;
    let firstMessageCame = false;
    // Looked at once more after the loop's I/O: a first message that came during a stall of the
    // loop is read before this refusal, not refused for the stall.
    firstMessageTimer = setTimeout(
      () =>
        setImmediate(() => {
          if (firstMessageCame) return;
          refuse(
            new ServiceError(
              status.DEADLINE_EXCEEDED,
              `no first message within ${firstMessageTimeoutMs / 1000} s: a Register stream must describe its node at once`,
            ),
          );
        }),
      firstMessageTimeoutMs,
    );
    firstMessageTimer.unref();

    /** Acknowledgements (and updates, if the node asked for the list) of a node of this contract. */
    let writer: UpdateWriter | undefined;
    let listening = false;
    const takeStateChange = (): void => {
      if (!stateChanges.tryTake(performance.now())) {
        throw exhausted(
          `too many state changes: at most ${limits.stateChangesPerSecond} a second ` +
            `(bursts of ${limits.stateChangeBurst})`,
        );
      }
    };

    call.on('data', (request: RegisterRequest | MalformedRequest) => {
      firstMessageCame = true;
      clearTimeout(firstMessageTimer);
      if (finished) return;
      try {
        if (request instanceof MalformedRequest) throw invalidMessage(request.problem);
        const kind = request.kind;
        if (!lease) {
          if (kind?.$case !== 'node') throw invalidMessage('the first message must describe the node');
          // A Register proof is checked against its node only here: a caller that holds no token
          // (any well-formed proof passes authenticate) must not spend its address group's
          // registration budget, which on one machine every component shares (127.0.0.1).
          auth.confirmNode(caller, kind.value);
          // The caller proved the token for this node: every answer from here, a refusal too, carries
          // the distributor's proof, for a component believes a refusal for good only with it.
          const answer = auth.answerMetadata(caller);
          if (answer) call.sendMetadata(answer);
          const peerGroup = addressGroupOf(peer);
          if (!rateLimiter.tryTake(peerGroup)) {
            throw exhausted(
              `too many registrations from ${peerGroup}: at most ${limits.registrationsPerSecond} a second ` +
                `(bursts of ${limits.registrationBurst})`,
            );
          }
          // Who may use the name comes before the costly checks (the descriptor set is parsed).
          validateName(kind.value.name, limits);
          const principal = auth.principalFor(caller, kind.value.name, peer);
          validateNodeShape(kind.value, limits);
          const host = kind.value.host || peer;
          validateHost(host, limits);
          const joined = registry.join(
            kind.value,
            host,
            () => stream.close(new ServiceError(status.ABORTED, NODE_REPLACED)),
            principal,
            undefined,
            peer,
          );
          lease = joined;
          if (request.options) {
            // This contract: an acknowledgement, then the node list only if the node asked for it.
            const answers = updateWriter(call);
            writer = answers;
            endAnswers = (then) => answers.end(then);
            const state =
              kind.value.state === NodeState.NODE_STATE_DRAINING
                ? NodeState.NODE_STATE_DRAINING
                : NodeState.NODE_STATE_SERVING;
            writer.send(ack(joined.id, state));
            if (request.options.nodeList) {
              listening = true;
              unsubscribe = subscribeWriter(writer, request.options.nodeList);
            }
          } else {
            // The first contract: the full list, with descriptor sets while they fit, on every change.
            const write = createSnapshotWriter(call as unknown as WritableCall<Buffer>, () =>
              encoder.registerResponse(joined.id, registry.legacySnapshot()),
            );
            endAnswers = (then) => write.end(then);
            unsubscribe = registry.subscribe(write);
            write(registry.snapshot());
          }
        } else if (kind?.$case === 'state') {
          takeStateChange();
          if (kind.value !== NodeState.NODE_STATE_SERVING && kind.value !== NodeState.NODE_STATE_DRAINING) {
            throw invalidMessage('state must be NODE_STATE_SERVING or NODE_STATE_DRAINING');
          }
          lease.setState(kind.value);
          writer?.send(ack(lease.id, kind.value));
        } else if (kind?.$case === 'resync') {
          if (!writer || !listening) {
            throw invalidMessage(
              'resync needs a node list subscription (options.node_list in the first message)',
            );
          }
          takeStateChange();
          const from = kind.value;
          writer.resync(() => feed.start(from));
        } else if (kind?.$case === 'node') {
          throw invalidMessage('only the first message may describe the node; later ones carry a state');
        } else {
          // Empty, or a case of the oneof this distributor does not know (a newer client's).
          throw invalidMessage('a message after the first must carry a state or a resync');
        }
      } catch (error) {
        refuse(error);
      }
    });
    call.on('end', () => {
      // A connection lost to keepalive (or reset) ends the request stream too, just before grpc-js
      // reports the call cancelled: let that be the reason, not a goodbye the node never said.
      setImmediate(() => {
        finish('closed by the node');
        // A refused stream ends with its refusal, once its answers are out (see refuse).
        if (!refused) call.end();
      });
    });
    // A process killed, a link lost to keepalive, a node that gave up on its call: grpc-js tells them
    // apart no further, and "cancelled" alone read as if someone had chosen it.
    call.on('cancelled', () =>
      finish('stream lost: the node cancelled it, its process ended, or the link failed'),
    );
    call.on('error', () => finish('stream error'));
  };

  const watch = (call: ServerWritableStream<WatchRequest, WatchResponse>): void => {
    if (endIfClosing(call)) return;
    const refusal = refusalOfRequest(call);
    if (refusal) {
      call.emit('error', { code: refusal.code, details: refusal.message });
      return;
    }
    let unsubscribe: () => void;
    if (call.request.subscription) {
      unsubscribe = subscribeWriter(updateWriter(call), call.request.subscription);
    } else {
      // The first contract: the full list, with descriptor sets while they fit, on every change.
      const write = createSnapshotWriter(call as unknown as WritableCall<Buffer>, () =>
        encoder.watchResponse(registry.legacySnapshot()),
      );
      unsubscribe = registry.subscribe(write);
      write(registry.snapshot());
    }
    const stream: OpenStream = {
      call,
      fields: () => ({ grpcMethod: call.getPath().slice(1), peer: observedHost(call.getPeer()) }),
      close(error: ServiceError): void {
        unsubscribe();
        openStreams.delete(stream);
        call.emit('error', { code: error.code, details: error.message });
      },
    };
    openStreams.add(stream);
    call.on('cancelled', () => {
      unsubscribe();
      openStreams.delete(stream);
    });
  };

  const list = (call: ServerUnaryCall<ListRequest, ListResponse>, callback: sendUnaryData<ListResponse>) => {
    const refusal = refusalOfRequest(call);
    if (refusal) callback({ code: refusal.code, details: refusal.message });
    else callback(null, { snapshot: registry.legacySnapshot() });
  };

  const getDescriptorSet = (
    call: ServerUnaryCall<GetDescriptorSetRequest, GetDescriptorSetResponse>,
    callback: sendUnaryData<Buffer>,
  ): void => {
    const refusal = refusalOfRequest(call);
    if (refusal) {
      callback({ code: refusal.code, details: refusal.message });
      return;
    }
    const sha256 = call.request.sha256;
    if (sha256.length !== SHA256_BYTES) {
      callback({
        code: status.INVALID_ARGUMENT,
        details: `sha256 must be ${SHA256_BYTES} bytes, got ${sha256.length}`,
      });
      return;
    }
    const held = registry.descriptorSets.get(sha256);
    if (held) callback(null, held.response);
    else {
      callback({
        code: status.NOT_FOUND,
        details: `no listed node has the descriptor set ${sha256.toString('hex')}`,
      });
    }
  };

  const implementation: DistributorServiceServer = {
    register,
    watch,
    list,
    // Answered with GetDescriptorSetResponse bytes encoded once per set (see encoded-snapshot.ts).
    getDescriptorSet: getDescriptorSet as unknown as DistributorServiceServer['getDescriptorSet'],
  };
  server.addService(strictRequests(PRE_ENCODED_DISTRIBUTOR_SERVICE), implementation);
  health.addToServer(strictServer(server));
  addReflection(server, [SERVICE_NAME]);

  const lateHandshakes = new LateHandshakeCheck((address, port) =>
    log.warn(
      { event: 'untrusted-after-ca-change', peer: address, port, code: 'UNAUTHENTICATED' },
      `closed the connection from ${address}:${port} at its handshake's end: ${UNTRUSTED_AFTER_CA_CHANGE}`,
    ),
  );
  onCaTaken = (authorities) => {
    try {
      lateHandshakes.caTaken(authorities);
      cutUntrustedPeers(authorities);
    } catch (error) {
      log.error(
        { event: 'untrusted-check-failed', err: error },
        'could not check the open registry streams against the new CA file: restart the distributor to cut any whose CA was removed',
      );
    }
  };
  /**
   * Ends every Register and Watch stream whose peer's certificate no longer chains to `authorities`
   * (the CA file just taken), with UNAUTHENTICATED, and closes its connection, which a new handshake
   * against the new CAs would have to replace: else the caller would register again on it. A node
   * cut so leaves the list as at any end of its stream. Calls are told from their connection by the
   * address and port of their peer, as grpc-js names it (call.getPeer()); a stream is cut only when
   * every connection from there fails the check.
   */
  const cutUntrustedPeers = (authorities: readonly X509Certificate[]): void => {
    const { untrusted, trustedPeers } = sessionsNoLongerTrusted(server, authorities);
    if (untrusted.length === 0) return;
    const untrustedPeers = new Set(
      untrusted.map(({ peer }) => peer).filter((peer) => !trustedPeers.has(peer)),
    );
    const refusal = new ServiceError(status.UNAUTHENTICATED, UNTRUSTED_AFTER_CA_CHANGE);
    for (const stream of [...openStreams]) {
      if (!untrustedPeers.has(stream.call.getPeer())) continue;
      const fields = stream.fields();
      log.warn(
        { event: 'untrusted-after-ca-change', ...fields, code: 'UNAUTHENTICATED' },
        `ended ${fields.grpcMethod} of ${fields.node ?? 'a caller'} from ${fields.peer}: ${UNTRUSTED_AFTER_CA_CHANGE}`,
      );
      stream.close(refusal);
    }
    // The statuses just sent still go out; a call that does not end soon is cut with the connection.
    for (const { session } of untrusted) closeUntrustedSession(session);
  };

  let admission: StreamAdmission | undefined;
  const countFloodingClose = options.telemetry?.watchStreamAdmission(() => admission?.waiting() ?? 0);
  return {
    registry,
    async listen(host, port) {
      const bound = await listen(server, host, port, credentials, connectionLimitOf(options, log));
      admission = admitStreamsInSlices(server, {
        sliceMs: STREAM_SETUP_SLICE_MS,
        log,
        ...(countFloodingClose ? { onConnectionClosed: countFloodingClose } : {}),
      });
      lateHandshakes.watch(server);
      return bound;
    },
    boundAddresses: () => boundAddressesOf(server),
    async stop(graceMs = 5_000) {
      health.setStatus('', 'NOT_SERVING');
      health.setStatus(SERVICE_NAME, 'NOT_SERVING');
      closing = new ServiceError(status.UNAVAILABLE, 'the distributor is shutting down');
      // Streams still waiting to be set up would otherwise be set up after the open ones are closed;
      // and a stream already set up whose handler has not started yet (a Watch waits for its
      // request) is ended when it does: else it would hold the shutdown for its whole grace.
      admission?.close();
      registry.unsubscribeAll();
      feed.close();
      for (const stream of [...openStreams, ...refusedStreams]) stream.close(closing);
      endHealthWatches(health, closing.message);
      await shutdown(server, graceMs);
    },
  };
}

/** An open Register or Watch stream, as a stop or a change of CA file ends it. */
interface OpenStream {
  readonly call: ServerSurfaceCall;
  /** What names it in a log line: its method, the peer's address and, once registered, the node. */
  fields(): { grpcMethod: string; peer: string; node?: string };
  close(error: ServiceError): void;
}

/**
 * How long new streams may be set up in one event-loop turn before the rest wait for the next:
 * a burst of registrations over one connection would otherwise take the loop for all of them.
 */
const STREAM_SETUP_SLICE_MS = 5;

function exhausted(message: string): ServiceError {
  return new ServiceError(status.RESOURCE_EXHAUSTED, message);
}

function invalidMessage(message: string): ServiceError {
  return new ServiceError(status.INVALID_ARGUMENT, `invalid registration: ${message}`);
}

/** The address a peer connected from, as others can dial it: "::ffff:127.0.0.1:5000" → "127.0.0.1". */
export function observedHost(peer: string): string {
  return unmappedAddress(peer.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1'));
}
