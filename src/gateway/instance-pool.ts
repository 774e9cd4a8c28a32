import type { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import {
  type ChannelCredentials,
  type ChannelOptions,
  Client,
  type ClientUnaryCall,
  connectivityState,
  credentials,
  type Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { type BackoffOptions, backoffDelay, MOVE_RETRY } from '../common/backoff.js';
import { asIs } from '../common/bytes-method.js';
import type { ClientCallTelemetry } from '../common/grpc-client-telemetry.js';
import { serverStillTrusted } from '../common/peer-chain.js';
import { channelOptionsFor } from '../common/proxy-choice.js';
import { SocketClosingCredentials } from '../common/socket-closing-credentials.js';
import {
  IDLE_RECONNECT_INTERVAL_MS,
  type InstancePoolOptions,
  type MoveRetry,
  SILENCE_CHECK_TIMEOUT_MS,
  SILENT_CONNECTION_CUT_MS,
  UPSTREAM_CONNECT_TIMEOUT_MS,
} from './instance-pool-options.js';
import {
  describeUntrusted,
  UNTRUSTED_CONNECTION_GRACE_MS,
  UNTRUSTED_SERVER,
} from './untrusted-connection.js';
import {
  channelClosed,
  connectionOf,
  failedAttemptReason,
  outOfReach,
  type UnreachableReason,
  type Upstream,
  type UpstreamConnection,
} from './upstream.js';
import { withoutCallerStack } from './without-caller-stack.js';

/** A move of an upstream's calls to a new channel under way (see InstancePool.renewConnections). */
interface Move {
  readonly client: Client;
  /** When it is given up (Date.now()). */
  readonly giveUpAt: number;
  /** Stops using the untrusted connection it was tried to replace, if so: told if it does not succeed. */
  readonly stop: ((handshakeFailure: string | undefined) => void) | undefined;
}

/** grpc.health.v1.Health/Check, whose answer (any status) shows a connection still carries calls. */
const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
/** A HealthCheckRequest for the server as a whole (service ""): no fields, so no bytes. */
const WHOLE_SERVER_HEALTH_REQUEST = Buffer.alloc(0);

/**
 * One grpc-js channel per instance (component name and address), reused by every request to it (one HTTP/2 connection,
 * multiplexed), created when an instance first appears and closed when it has left.
 *
 * An address that leaves while calls are still running on it is closed once they finish, not
 * before: closing a channel fails the calls it holds, and a node can disappear from a snapshot for
 * reasons that say nothing about its health (a distributor restart drops every registration).
 */
export class InstancePool {
  readonly #upstreams = new Map<string, Upstream>();
  /** Addresses that have left but still have calls running. */
  readonly #leaving = new Set<Upstream>();
  readonly #channelOptions: ChannelOptions;
  readonly #credentialsFor: (name: string) => ChannelCredentials;
  readonly #namingOptionsFor: (name: string) => ChannelOptions;
  readonly #calls: ClientCallTelemetry | undefined;
  readonly #connectTimeoutMs: number;
  readonly #onConnectTimeout: NonNullable<InstancePoolOptions['onConnectTimeout']>;
  readonly #idleReconnectIntervalMs: number;
  readonly #silenceCheckTimeoutMs: number;
  readonly #silentConnectionCutMs: number;
  readonly #onUnansweredCheck: (upstream: Upstream, timeoutMs: number) => void;
  readonly #onSilentConnection: (upstream: Upstream, silentMs: number) => void;
  readonly #onKeepaliveLoss: (upstream: Upstream) => void;
  readonly #onMoveFailed: NonNullable<InstancePoolOptions['onMoveFailed']>;
  readonly #onMoved: (upstream: Upstream) => void;
  readonly #moveRetry: BackoffOptions;
  /** The next try of each upstream's move that failed, and how many failed in a row (see #retryMove). */
  readonly #moveRetries = new Map<Upstream, { timer: NodeJS.Timeout; failures: number }>();
  /** The move of each upstream's calls under way (see renewConnections), until it connects or fails. */
  readonly #moving = new Map<Upstream, Move>();
  /** Calls started and not yet ended on each client (an upstream's calls move between clients). */
  readonly #callsOn = new WeakMap<Client, number>();
  /** Clients whose upstream's calls moved to another, closed once their last call ends (see #retire). */
  readonly #retiring = new Set<Client>();
  readonly #onUntrustedServer: NonNullable<InstancePoolOptions['onUntrustedServer']>;
  /**
   * The CAs of the CA file the channels took last, once one changed (see stopUsingUntrusted):
   * undefined until then.
   */
  #authorities: readonly X509Certificate[] | undefined;
  /** Connections of untrusted servers waiting out their grace, by timer: each closes them (see stopUsingUntrusted). */
  readonly #untrustedCuts = new Map<NodeJS.Timeout, () => void>();
  /** Each client's credentials, to end its connection attempt when it is replaced. */
  readonly #credentialsOf = new WeakMap<Client, SocketClosingCredentials>();
  /**
   * The connections of instances passed over after an unanswered silence check, still open with
   * their calls until the cut is judged: their timers, cleared and the connections ended by close().
   */
  readonly #awaitingCut = new Map<SocketClosingCredentials, NodeJS.Timeout>();
  #closed = false;

  constructor(options: InstancePoolOptions = {}) {
    this.#channelOptions = options.channelOptions ?? {};
    this.#credentialsFor = options.credentialsFor ?? (() => credentials.createInsecure());
    this.#namingOptionsFor = options.namingOptionsFor ?? (() => ({}));
    this.#calls = options.calls?.active ? options.calls : undefined;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? UPSTREAM_CONNECT_TIMEOUT_MS;
    this.#onConnectTimeout = options.onConnectTimeout ?? (() => {});
    this.#idleReconnectIntervalMs = options.idleReconnectIntervalMs ?? IDLE_RECONNECT_INTERVAL_MS;
    this.#silenceCheckTimeoutMs = options.silenceCheckTimeoutMs ?? SILENCE_CHECK_TIMEOUT_MS;
    this.#silentConnectionCutMs = Math.max(
      options.silentConnectionCutMs ?? SILENT_CONNECTION_CUT_MS,
      this.#silenceCheckTimeoutMs,
    );
    this.#onUnansweredCheck = options.onUnansweredCheck ?? (() => {});
    this.#onSilentConnection = options.onSilentConnection ?? (() => {});
    this.#onKeepaliveLoss = options.onKeepaliveLoss ?? (() => {});
    this.#onMoveFailed = options.onMoveFailed ?? (() => {});
    this.#onMoved = options.onMoved ?? (() => {});
    this.#moveRetry = options.moveRetry ?? MOVE_RETRY;
    this.#onUntrustedServer = options.onUntrustedServer ?? (() => {});
  }

  /** The upstream of component `name` at an address, with a channel made on first use. */
  get(name: string, address: string): Upstream {
    if (this.#closed) throw new Error('the instance pool is closed');
    const key = `${name}@${address}`;
    let upstream = this.#upstreams.get(key);
    if (!upstream) {
      upstream = [...this.#leaving].find((candidate) => candidate.key === key);
      if (upstream) this.#leaving.delete(upstream);
      else {
        let made: Upstream | undefined;
        const client = this.#client(name, address, () => {
          if (made) this.#wentSilent(made, 'keepalive');
        });
        made = upstream = {
          key,
          name,
          address,
          client,
          channel: client.getChannel(),
          inFlight: 0,
          unreachableSince: undefined,
          unreachableReason: undefined,
          checkingSilence: false,
          wentSilent: false,
          outOfReachAfterMs: this.#connectTimeoutMs,
        };
        this.#connect(upstream);
      }
      this.#upstreams.set(key, upstream);
    }
    return upstream;
  }

  /**
   * A client of its own, on a subchannel of its own: grpc-js's shared pool would hand a channel made
   * to replace a hung one the same hung subchannel.
   */
  #client(name: string, address: string, onSilentClose: () => void): Client {
    const credentials = new SocketClosingCredentials(
      this.#credentialsFor(name),
      onSilentClose,
      (connection) => this.#refuseUntrusted(connection),
    );
    const client = new Client(
      address,
      credentials,
      channelOptionsFor(address, {
        ...this.#channelOptions,
        ...this.#namingOptionsFor(name),
        'grpc.use_local_subchannel_pool': 1,
      }),
    );
    this.#credentialsOf.set(client, credentials);
    return client;
  }

  /**
   * Connects an upstream's channel at once, not at its first call (one it cannot reach is then seen
   * connecting, and passed over by canTakeCalls, before any request waits on it), and follows its
   * state: a channel that has not connected within the connect timeout of starting to (still
   * connecting, or failed: grpc-js reports a failed channel as failed until a later attempt
   * succeeds, however long that attempt hangs) is replaced by a new one. Calls waiting on the old
   * channel fail with UNAVAILABLE; they would have waited until their deadline.
   */
  #connect(upstream: Upstream, replacing = false): void {
    const channel = upstream.channel;
    let timer: NodeJS.Timeout | undefined;
    /** An attempt failed since the connect timeout's clock started (else they hung). */
    let attemptFailed = false;
    /** This channel replaced one that never connected, and has not connected either. */
    let unconnectedReplacement = replacing;
    /**
     * How many TLS handshakes the channel's credentials had completed when it was last connected
     * (or now: a channel moved to is connected already): one completed since, on an attempt that
     * then failed, was dropped by the instance (see failedAttemptReason).
     */
    let handshakesWhenConnected = this.#credentialsOf.get(upstream.client)?.handshakesCompleted ?? 0;
    /** When this channel was last told to connect (performance.now()), and the kick waiting, if any. */
    let kickedAt: number | undefined;
    let kickTimer: NodeJS.Timeout | undefined;
    const kick = (): void => {
      kickTimer = undefined;
      if (this.#closed || upstream.channel !== channel) return;
      kickedAt = performance.now();
      channel.getConnectivityState(true);
    };
    const unconnected = (): boolean => {
      const state = channel.getConnectivityState(false);
      return state === connectivityState.CONNECTING || state === connectivityState.TRANSIENT_FAILURE;
    };
    const follow = (): void => {
      if (this.#closed || upstream.channel !== channel) {
        clearTimeout(timer);
        clearTimeout(kickTimer);
        return;
      }
      // grpc-js leaves a channel whose connection was lost (a peer gone, keepalive unanswered, or
      // closed for idleness) idle until a call comes. Connected again now, one it cannot reach is
      // seen connecting, and passed over, instead of holding the first request that picks it. The
      // state is read after: the watch below must start from the state the kick left, or a channel
      // that went on connecting for ever would never be told of again. At most once per
      // idleReconnectIntervalMs: later, by a timer, when the last kick was more recent.
      if (channel.getConnectivityState(false) === connectivityState.IDLE && kickTimer === undefined) {
        const waitMs =
          kickedAt === undefined ? 0 : kickedAt + this.#idleReconnectIntervalMs - performance.now();
        if (waitMs <= 0) kick();
        else {
          kickTimer = setTimeout(kick, waitMs);
          kickTimer.unref();
        }
      }
      const state = channel.getConnectivityState(false);
      if (state === connectivityState.SHUTDOWN) {
        clearTimeout(timer);
        clearTimeout(kickTimer);
        return;
      }
      if (state === connectivityState.READY) {
        unconnectedReplacement = false;
        handshakesWhenConnected = this.#credentialsOf.get(upstream.client)?.handshakesCompleted ?? 0;
        upstream.unreachableSince = undefined;
        upstream.unreachableReason = undefined;
        upstream.wentSilent = false;
      } else if (state === connectivityState.TRANSIENT_FAILURE) {
        upstream.unreachableSince ??= performance.now();
        const reason = failedAttemptReason(this.#credentialsOf.get(upstream.client), handshakesWhenConnected);
        // The handshakes of a channel that replaced an untrusted one fail for that reason (the
        // server still holds a certificate of the CA removed): said so, not as any handshake's
        // failure, or the status page would name it for a moment only.
        if (reason !== 'handshake-fails' || upstream.unreachableReason !== 'untrusted')
          upstream.unreachableReason = reason;
      }
      if (!unconnected()) {
        clearTimeout(timer);
        timer = undefined;
      } else if (timer !== undefined) {
        // Told on each change: one into the failed state is an attempt that failed. grpc-js keeps
        // that state through later attempts, so a later one that hangs is not seen apart.
        if (state === connectivityState.TRANSIENT_FAILURE) attemptFailed = true;
      } else {
        attemptFailed = state === connectivityState.TRANSIENT_FAILURE;
        // Those of a connection this channel had before (lost since) are not this timeout's.
        const handshakesBefore = this.#credentialsOf.get(upstream.client)?.handshakesCompleted ?? 0;
        // From the first attempt on, across failures: a new attempt may hang where the last failed.
        timer = setTimeout(() => {
          if (this.#closed || upstream.channel !== channel || !unconnected()) return;
          const credentials = this.#credentialsOf.get(upstream.client);
          const handshakeFailure = credentials?.lastHandshakeFailure;
          // Failed though a handshake completed meanwhile: the instance dropped the connection after.
          const dropped =
            attemptFailed &&
            handshakeFailure === undefined &&
            (credentials?.handshakesCompleted ?? 0) > handshakesBefore;
          // Read before the replacement: the new channel's credentials have resolved nothing yet.
          const resolved = credentials?.resolvedAddress ?? true;
          // A failed attempt told its reason as it failed (above); a later one may have hung since,
          // or been dropped after its handshake (said as the warning says it).
          const reason = resolved
            ? dropped
              ? 'connections-dropped'
              : attemptFailed
                ? upstream.unreachableReason
                : 'no-answer'
            : 'unresolved';
          this.#replaceChannel(upstream, true, reason ?? 'attempts-fail');
          this.#onConnectTimeout(
            upstream,
            this.#connectTimeoutMs,
            unconnectedReplacement,
            resolved ? (dropped ? 'dropped' : attemptFailed ? 'failed' : 'hung') : 'unresolved',
            handshakeFailure,
          );
        }, this.#connectTimeoutMs);
        timer.unref();
      }
      channel.watchConnectivityState(state, Infinity, follow);
    };
    follow();
  }

  /**
   * Gives an upstream a new channel, which connects at once, and closes the old one: the instance
   * counts as unreachable until the new one connects, and is passed over meanwhile (canTakeCalls).
   * Calls waiting for the old channel to connect fail with UNAVAILABLE; they would have waited until
   * their deadline. Calls held on its connection, if it has one, go on until they end.
   * `fromUnconnected`: the old channel never connected either (a connect timeout), so the new one's
   * own connect timeout is told as a repeat; after a silence check the old one had connected.
   */
  #replaceChannel(upstream: Upstream, fromUnconnected: boolean, reason: UnreachableReason): void {
    const abandoned = upstream.client;
    upstream.unreachableSince ??= performance.now();
    upstream.unreachableReason = reason;
    upstream.client = this.#client(upstream.name, upstream.address, () =>
      this.#wentSilent(upstream, 'keepalive'),
    );
    upstream.channel = upstream.client.getChannel();
    this.#connect(upstream, fromUnconnected);
    this.#closeClient(abandoned);
  }

  /**
   * Moves each connected instance's calls to a new connection, made with the certificate the
   * gateway has just taken (a renewal), and closes the one before once its calls end: make before
   * break, so that no call waits on a handshake. A TLS connection keeps the certificate it was made
   * with, and a service that takes a CA file without the CA of that certificate (a CA rotation's
   * last step, once every certificate was renewed) closes it (untrusted-after-ca-change). An
   * instance not connected now makes its next connection with the renewed certificate anyway. A new
   * connection that fails (the instance does not trust the renewed certificate's CA yet), or is not
   * made within the connect timeout, is given up (onMoveFailed): the calls stay where they were,
   * and the move is tried again with backoff (MOVE_RETRY) until it holds, the instance's channel
   * is replaced, or the next renewal.
   */
  renewConnections(): void {
    if (this.#closed) return;
    for (const { timer } of this.#moveRetries.values()) clearTimeout(timer);
    this.#moveRetries.clear();
    for (const upstream of this.#upstreams.values()) {
      if (upstream.channel.getConnectivityState(false) === connectivityState.READY) this.#move(upstream);
    }
  }

  /**
   * Moves an upstream's calls to a new channel once it connects (see renewConnections). Given up
   * after `giveUpAfterMs`, or at the new channel's first failure: `untrusted` is told, when the move
   * was tried to stop using an untrusted connection (see stopUsingUntrusted), else onMoveFailed.
   * `untrusted` is told too when there is nothing left to move from: its connection is cut all the
   * same.
   */
  #move(
    upstream: Upstream,
    {
      giveUpAfterMs = this.#connectTimeoutMs,
      untrusted,
    }: { giveUpAfterMs?: number; untrusted?: (handshakeFailure: string | undefined) => void } = {},
  ): void {
    const from = upstream.client;
    // A move under way began with the certificate before, maybe: it makes way for this one. One
    // tried to stop using an untrusted connection hands this one that duty and its time limit: a
    // renewal taken in the same read of the files as a CA removed must not keep the connection.
    const pending = this.#moving.get(upstream);
    let giveUpAt = Date.now() + giveUpAfterMs;
    let stop = untrusted;
    if (pending?.stop) {
      const before = pending.stop;
      stop =
        untrusted === undefined
          ? before
          : (handshakeFailure) => {
              before(handshakeFailure);
              untrusted(handshakeFailure);
            };
      giveUpAt = Math.min(giveUpAt, pending.giveUpAt);
    }
    const to = this.#client(upstream.name, upstream.address, () => this.#wentSilent(upstream, 'keepalive'));
    // Before the pending one closes: its close tells its watcher at once, which must find it replaced.
    this.#moving.set(upstream, { client: to, giveUpAt, stop });
    if (pending) this.#closeClient(pending.client);
    const channel = to.getChannel();
    const follow = (): void => {
      if (this.#moving.get(upstream)?.client !== to) return;
      // The upstream left, was closed, or was given a new channel meanwhile (a connect timeout, a
      // silence check): there is nothing to move from.
      if (this.#closed || upstream.client !== from || this.#upstreams.get(upstream.key) !== upstream) {
        this.#moving.delete(upstream);
        this.#closeClient(to);
        // Its tries end with it: the upstream left, or its new channel holds the renewed certificate.
        this.#stopMoveRetries(upstream);
        if (!this.#closed) stop?.(undefined);
        return;
      }
      const state = channel.getConnectivityState(false);
      if (state === connectivityState.READY) {
        this.#moving.delete(upstream);
        upstream.client = to;
        upstream.channel = channel;
        this.#connect(upstream);
        this.#retire(from);
        this.#stopMoveRetries(upstream);
        this.#onMoved(upstream);
        return;
      }
      if (state === connectivityState.TRANSIENT_FAILURE || Date.now() >= giveUpAt) {
        this.#moving.delete(upstream);
        const handshakeFailure = this.#credentialsOf.get(to)?.lastHandshakeFailure;
        this.#closeClient(to);
        if (stop) stop(handshakeFailure);
        else this.#onMoveFailed(upstream, handshakeFailure, this.#retryMove(upstream, from));
        return;
      }
      channel.watchConnectivityState(state, giveUpAt, follow);
    };
    channel.getConnectivityState(true);
    follow();
  }

  /**
   * After a move of `upstream`'s calls off `from` failed, tries it again with backoff while they
   * stay there: once the service trusts the gateway's renewed certificate (a CA rotation's step 2
   * done before step 1 reached it), they move, rather than at the next renewal only or when the
   * rotation's last step has the service close `from`. Not tried if the upstream left or got a new
   * channel meanwhile (made with the renewed certificate), or is not connected.
   */
  #retryMove(upstream: Upstream, from: Client): MoveRetry {
    const failures = (this.#moveRetries.get(upstream)?.failures ?? 0) + 1;
    const inMs = backoffDelay(this.#moveRetry, failures - 1);
    clearTimeout(this.#moveRetries.get(upstream)?.timer);
    const timer = setTimeout(() => {
      if (this.#moveRetries.get(upstream)?.timer !== timer) return;
      if (
        this.#closed ||
        this.#upstreams.get(upstream.key) !== upstream ||
        upstream.client !== from ||
        upstream.channel.getConnectivityState(false) !== connectivityState.READY
      ) {
        this.#moveRetries.delete(upstream);
        return;
      }
      if (!this.#moving.has(upstream)) this.#move(upstream);
    }, inMs);
    timer.unref();
    this.#moveRetries.set(upstream, { timer, failures });
    return { failures, inMs };
  }

  /** No more tries of `upstream`'s move: it held, or a renewal starts afresh. */
  #stopMoveRetries(upstream: Upstream): void {
    clearTimeout(this.#moveRetries.get(upstream)?.timer);
    this.#moveRetries.delete(upstream);
  }

  /**
   * Asks an instance, after a call to it passed its deadline on a connected channel, whether that
   * connection still answers: a health check over it, any status being an answer. None within the
   * silence check timeout: the instance is passed over, on a new channel, and if its old connection
   * has brought nothing by the cut time, that connection is closed with its calls (see
   * InstancePoolOptions.silenceCheckTimeoutMs and silentConnectionCutMs). One check at a time per
   * upstream; a channel not connected has its own timeout.
   */
  #checkSilence(upstream: Upstream): void {
    if (upstream.checkingSilence || this.#closed || this.#upstreams.get(upstream.key) !== upstream) return;
    const client = upstream.client;
    if (client.getChannel().getConnectivityState(false) !== connectivityState.READY) return;
    upstream.checkingSilence = true;
    const credentials = this.#credentialsOf.get(client);
    const readBefore = credentials?.bytesRead();
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      upstream.checkingSilence = false;
      clearTimeout(timer);
      return true;
    };
    // No grpc-js deadline: its timer would fire before an answer already received is read, when
    // this process's event loop was held up past the timeout (a large render, a long GC), and a
    // connection that did answer would be cut with every call on it. Judged here instead, once
    // what arrived meanwhile has been read (setImmediate runs after the loop's poll for I/O).
    const check = client.makeUnaryRequest(
      HEALTH_CHECK_PATH,
      asIs,
      asIs,
      WHOLE_SERVER_HEALTH_REQUEST,
      {},
      () => void settle(),
    );
    timer = setTimeout(
      () =>
        setImmediate(() => {
          if (!settle()) return;
          check.cancel();
          // An upstream that left meanwhile, or was replaced, needs no new channel.
          if (this.#closed || upstream.client !== client || this.#upstreams.get(upstream.key) !== upstream)
            return;
          this.#replaceChannel(upstream, false, 'check-unanswered');
          this.#onUnansweredCheck(upstream, this.#silenceCheckTimeoutMs);
          // Judged, like the check, once what arrived meanwhile has been read: after the loop's poll
          // for I/O. A due timer runs before it, and bytes still in the kernel when this process
          // was held up past the cut time (a large render, a long GC) would count as none.
          if (credentials === undefined) return;
          const cut = setTimeout(
            () =>
              setImmediate(() => {
                if (this.#closed) return;
                this.#awaitingCut.delete(credentials);
                // A byte read since the check shows the instance alive, only held up: its calls complete.
                if (credentials.bytesRead() !== readBefore) return;
                // Told once: the end of this connection may have been told already as a keepalive
                // loss (its peer silent to the close of the channel it replaced, under Node 22 at
                // the cut's own moment).
                const told = upstream.wentSilent;
                credentials.destroySockets();
                this.#wentSilent(upstream, 'cut');
                if (!told) this.#onSilentConnection(upstream, this.#silentConnectionCutMs);
              }),
            this.#silentConnectionCutMs - this.#silenceCheckTimeoutMs,
          );
          cut.unref();
          this.#awaitingCut.set(credentials, cut);
        }),
      this.#silenceCheckTimeoutMs,
    );
    timer.unref();
  }

  /**
   * Marks an upstream whose connection made by `client` (its channel's, or one it replaced) was given
   * up on for its silence, by keepalive or by the cut (see Upstream.wentSilent), unless the instance
   * is connected again meanwhile, or has left. Keepalive's is told (the cut tells of itself). The
   * channel, still connecting (made after a health check left unanswered, or reconnecting since
   * keepalive closed its connection a second ago), is replaced: the calls grpc-js queued on it fail
   * at once (503, or a retry elsewhere), as those that come after them are answered, rather than
   * at their deadline.
   */
  #wentSilent(upstream: Upstream, by: 'keepalive' | 'cut'): void {
    if (this.#closed || this.#upstreams.get(upstream.key) !== upstream) return;
    const state = upstream.channel.getConnectivityState(false);
    if (state === connectivityState.READY) return;
    upstream.unreachableSince ??= performance.now();
    upstream.unreachableReason = 'went-silent';
    const already = upstream.wentSilent;
    upstream.wentSilent = true;
    if (by === 'keepalive' && !already) this.#onKeepaliveLoss(upstream);
    if (already) return;
    if (state === connectivityState.CONNECTING || state === connectivityState.TRANSIENT_FAILURE)
      this.#replaceChannel(upstream, false, 'went-silent');
  }

  /**
   * Closes a client, and ends its connection attempt if it has one (not connected): grpc-js's close()
   * leaves the attempt open, for ever to a peer that accepts and never speaks HTTP/2. A connected
   * channel's connection is closed by grpc-js, gracefully, once its calls end.
   */
  #closeClient(client: Client): void {
    const connected = client.getChannel().getConnectivityState(false) === connectivityState.READY;
    client.close();
    if (!connected) this.#credentialsOf.get(client)?.destroySockets();
  }

  /**
   * Makes a unary call on an upstream, with the request's bytes as they are, counted in its calls
   * in flight (see {@link retainOnly}) and observed by the pool's call telemetry. On a channel
   * already closed (its instance left and its last call ended, or the pool closed) no call is made:
   * the callback gets UNAVAILABLE, as for an instance that cannot be reached, and the result is
   * undefined.
   */
  call<Response>(
    upstream: Upstream,
    path: string,
    deserialize: (bytes: Buffer) => Response,
    request: Buffer,
    metadata: Metadata,
    deadline: number,
    callback: (error: ServiceError | null, response?: Response) => void,
  ): ClientUnaryCall | undefined {
    const observed = this.#calls?.begin(path, metadata);
    if (upstream.channel.getConnectivityState(false) === connectivityState.SHUTDOWN) {
      // grpc-js would throw "Channel has been shut down", which the gateway took for a bug of its
      // own: counted Internal and answered 500. The instance is gone, which is UNAVAILABLE: the
      // caller retries elsewhere or answers 503, and the metrics say what it answered.
      const error = channelClosed(upstream);
      observed?.end(error.code, error.details);
      process.nextTick(callback, error);
      return undefined;
    }
    upstream.inFlight++;
    const client = upstream.client;
    this.#callsOn.set(client, (this.#callsOn.get(client) ?? 0) + 1);
    try {
      return withoutCallerStack(() =>
        client.makeUnaryRequest(
          path,
          // grpc-js serializes the request; its bytes are already made.
          asIs,
          deserialize,
          request,
          observed?.metadata ?? metadata,
          { deadline },
          (error: ServiceError | null, response?: Response) => {
            observed?.end(error ? error.code : status.OK, error?.details);
            this.#endOn(client);
            this.#end(upstream);
            if (error?.code === status.DEADLINE_EXCEEDED) this.#checkSilence(upstream);
            callback(error, response);
          },
        ),
      );
    } catch (error) {
      // A call that could not start (a bug: a closed channel is answered above) ends here: its
      // callback never runs.
      observed?.end(status.INTERNAL, error instanceof Error ? error.message : String(error));
      this.#endOn(client);
      this.#end(upstream);
      throw error;
    }
  }

  /** Counts a call ending on `client`; closes a client its calls moved from once its last call ends. */
  #endOn(client: Client): void {
    const calls = (this.#callsOn.get(client) ?? 1) - 1;
    this.#callsOn.set(client, calls);
    if (calls === 0 && this.#retiring.delete(client)) this.#closeClient(client);
  }

  /**
   * Closes a client whose upstream's calls moved to another once the calls started on it end: a
   * call grpc-js has not yet handed to a connection (it does so a few microtasks after it starts)
   * fails when its channel closes, "Channel closed before call started".
   */
  #retire(client: Client): void {
    if ((this.#callsOn.get(client) ?? 0) === 0) this.#closeClient(client);
    else this.#retiring.add(client);
  }

  /**
   * Stops using every connection to an instance whose server's certificate chain no longer chains
   * to `authorities`, the CA file the channels have just taken (a CA removed because it leaked):
   * TLS checks the CA at the handshake only, so a connection made before went on carrying requests
   * to a server of that CA for as long as it stayed open. A new connection to the instance is
   * tried first, made against the new CA file: one that is made shows the instance renewed by a CA
   * kept since the old connection was made, and the calls move to it (as at a renewal, see
   * renewConnections; nothing is logged above debug). Refused, or not made within
   * UNTRUSTED_CONNECTION_GRACE_MS, the instance's channel is replaced, as
   * after a silence check: no new call goes over the connection, and the new channel's handshake,
   * made with the new CA file, refuses that server, so the instance counts as unreachable as any
   * other (passed over while it connects, `upstream-connect-timeout` with the handshake's failure).
   * Calls in flight on it have UNTRUSTED_CONNECTION_GRACE_MS to end, then it is closed with them.
   * An instance that left, with calls still running, has its connection closed so too. A
   * connection whose server still chains (every one, at a rotation's step 1, when a CA is only
   * added) is left alone. A handshake still under way now is checked once it completes (see
   * refuseUntrusted).
   *
   * The connections and their servers' chains are those the channels' own credentials saw
   * secured (SocketClosingCredentials.securedConnections), and the stop goes through the public
   * Client: nothing depends on where grpc-js keeps its subchannels, transports and sessions, which a
   * grpc-js upgrade may move without a word, and exactly the untrusted connections are touched.
   * A channel with a connection of each kind (a host name resolved to two servers) has both
   * replaced; the trusted server is connected to again at once.
   */
  stopUsingUntrusted(authorities: readonly X509Certificate[]): void {
    if (this.#closed || authorities.length === 0) return;
    this.#authorities = authorities;
    for (const upstream of [...this.#upstreams.values(), ...this.#leaving]) {
      const credentials = this.#credentialsOf.get(upstream.client);
      if (!credentials) continue;
      const untrusted = credentials
        .securedConnections()
        .filter((connection) => !serverStillTrusted(connection, authorities));
      if (untrusted.length === 0) continue;
      const client = upstream.client;
      const stopUsing = (): void => {
        for (const connection of untrusted) this.#onUntrustedServer(upstream, describeUntrusted(connection));
        // One that left takes no new call: its channel closes once its last call ends, as before.
        if (this.#upstreams.get(upstream.key) === upstream && upstream.client === client)
          this.#replaceChannel(upstream, false, 'untrusted');
        const cut = (): void => {
          for (const connection of untrusted) credentials.destroyConnection(connection);
        };
        const timer = setTimeout(() => {
          this.#untrustedCuts.delete(timer);
          cut();
        }, UNTRUSTED_CONNECTION_GRACE_MS);
        timer.unref();
        this.#untrustedCuts.set(timer, cut);
      };
      // The instance may hold a certificate of a CA kept by now, renewed since the connection was
      // made (a rotation's step 2; its connection keeps the certificate it was made with): a new
      // connection, made against the new CA file, shows it. Trusted, the calls move to it, as at a
      // renewal, and nothing is cut; refused, or not made within the grace, the instance is no
      // longer trusted. New calls go over the old connection for that moment at most.
      if (this.#upstreams.get(upstream.key) === upstream)
        this.#move(upstream, { giveUpAfterMs: UNTRUSTED_CONNECTION_GRACE_MS, untrusted: stopUsing });
      else stopUsing();
    }
  }

  /**
   * Refuses a connection whose handshake completed while, or after, the CA file changed, with a
   * server that chains to no CA of the file taken: a handshake verifies the server against the CAs
   * of its start, and one under way when stopUsingUntrusted looked (a slow server) was not among
   * the connections it saw. Refused, it fails as a handshake with another CA does.
   */
  #refuseUntrusted(connection: Socket): Error | undefined {
    const authorities = this.#authorities;
    if (authorities === undefined || serverStillTrusted(connection, authorities)) return undefined;
    return new Error(UNTRUSTED_SERVER);
  }

  /** Counts a call ending; closes the channel of an address that left once its last call ends. */
  #end(upstream: Upstream): void {
    upstream.inFlight--;
    if (upstream.inFlight === 0 && this.#leaving.delete(upstream)) this.#closeClient(upstream.client);
  }

  /** Keeps only these upstreams (by key): every other channel is closed, at once or after its last call. */
  retainOnly(keys: ReadonlySet<string>): void {
    for (const [key, upstream] of this.#upstreams) {
      if (keys.has(key)) continue;
      this.#upstreams.delete(key);
      if (upstream.inFlight === 0) this.#closeClient(upstream.client);
      else this.#leaving.add(upstream);
    }
  }

  /** See {@link Upstream.unreachableSince}; undefined for an instance this pool has no channel to. */
  unreachableSince(key: string): number | undefined {
    return this.#upstreams.get(key)?.unreachableSince;
  }

  /** See {@link Upstream.unreachableReason}; undefined for an instance this pool has no channel to. */
  unreachableReason(key: string): UnreachableReason | undefined {
    return this.#upstreams.get(key)?.unreachableReason;
  }

  /**
   * Where this pool's channel to the instance stands (see UpstreamConnection); undefined for an
   * instance it has no channel to (one it routes nothing to). `connected` is what the launcher
   * waits for (see ShopReadiness): a listed instance at an address this gateway cannot connect to
   * (link-local, another host's, behind a firewall) never is.
   */
  connection(key: string): UpstreamConnection | undefined {
    const upstream = this.#upstreams.get(key);
    return upstream === undefined ? undefined : connectionOf(upstream);
  }

  /** See {@link outOfReach}; false for an instance this pool has no channel to. */
  outOfReach(key: string): boolean {
    const upstream = this.#upstreams.get(key);
    return upstream !== undefined && outOfReach(upstream, performance.now());
  }

  /** The addresses with an open channel, for diagnostics and tests. */
  addresses(): string[] {
    return [...this.#upstreams.values()].map((upstream) => upstream.address);
  }

  /**
   * Closes every channel, and the connections of passed-over instances awaiting their cut and of
   * untrusted servers waiting out their grace (see stopUsingUntrusted); calls still running on
   * them fail.
   */
  close(): void {
    this.#closed = true;
    for (const upstream of [...this.#upstreams.values(), ...this.#leaving])
      this.#closeClient(upstream.client);
    for (const { client } of this.#moving.values()) this.#closeClient(client);
    for (const retired of this.#retiring) this.#closeClient(retired);
    this.#retiring.clear();
    this.#moving.clear();
    for (const { timer } of this.#moveRetries.values()) clearTimeout(timer);
    this.#moveRetries.clear();
    this.#upstreams.clear();
    this.#leaving.clear();
    for (const [credentials, cut] of this.#awaitingCut) {
      clearTimeout(cut);
      credentials.destroySockets();
    }
    this.#awaitingCut.clear();
    for (const [timer, cut] of this.#untrustedCuts) {
      clearTimeout(timer);
      cut();
    }
    this.#untrustedCuts.clear();
  }
}
