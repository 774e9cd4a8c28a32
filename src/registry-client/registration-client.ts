import { createHash, type X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import {
  type ClientDuplexStream,
  credentials,
  status as grpcStatus,
  Metadata,
  type StatusObject,
} from '@grpc/grpc-js';
import { type BackoffOptions, backoffDelay, MOVE_RETRY } from '../common/backoff.js';
import { clockDifferenceText } from '../common/clock-difference.js';
import { REGISTRY_TOKEN_ENV } from '../common/common-settings.js';
import { DEFAULT_KEEPALIVE, keepaliveChannelOptions } from '../common/grpc-server.js';
import { detailsCause } from '../common/log-limiter.js';
import { type Logger, silentLogger } from '../common/logger.js';
import { serverStillTrusted } from '../common/peer-chain.js';
import { PROOF_WINDOW_MS } from '../common/registry-proof.js';
import { REGISTRY_TOKEN_REFUSALS, UNTRUSTED_AFTER_CA_CHANGE } from '../common/registry-words.js';
import { retryClassOf } from '../common/retry-policy.js';
import { tlsMismatchHint } from '../common/tls-mismatch-hint.js';
import {
  type NodeDescription,
  NodeState,
  type RegisterRequest,
  type RegisterResponse,
  type Snapshot,
} from '../gen/distributor.js';
import { checkAfterCaChange } from './ca-change-check.js';
import { createDescriptorSetFetcher } from './descriptor-set-fetcher.js';
import { CONNECT_TIMEOUT_MS, DistributorConnection } from './distributor-connection.js';
import { FIRST_ANSWER_TIMEOUT_MS, FirstAnswerDeadline } from './first-answer-deadline.js';
import { notADistributorHint } from './not-a-distributor-hint.js';
import type { RegistrationClientOptions } from './registration-client-options.js';
import type { RegistrationEvents } from './registration-events.js';
import { DISTRIBUTOR_METHODS, RegistryCredentials } from './registry-credentials.js';
import { RegistryView } from './registry-view.js';
import { takenOver, takeoverHint } from './takeover-hint.js';
import { asksForTheBearer, tokenRefusalHint } from './token-refusal-hint.js';
import { UNTRUSTED_DISTRIBUTOR, UNTRUSTED_MOVE_TIMEOUT_MS } from './untrusted-distributor.js';

/** The longest the channel waits between two connection attempts of its own (see the constructor). */
const CHANNEL_RECONNECT_MAX_MS = 1_000;

/** How long leaving waits for the distributor to end the registration stream, by default. */
export const LEAVE_TIMEOUT_MS = 2_000;

/**
 * How far this host's clock may be from the distributor's before a node warns. Within it nothing
 * depends on the clocks agreeing; past the proof window of the registry token (5 minutes) the
 * distributor refuses the node, and past an hour a host takes the certificates `npm run certs` issues
 * elsewhere as not valid yet.
 */
export const CLOCK_WARNING_MS = 60_000;

/**
 * Keeps one node registered with the distributor. It registers on start, re-registers by itself
 * (exponential backoff with jitter, capped) whenever the stream ends, and, with `watchNodes`,
 * exposes the latest node list: kept by a RegistryView from the distributor's updates, resumed
 * after a reconnection where the distributor still can, whole again after a distributor restart. Its
 * owner keeps serving while the distributor is away: nothing here throws at it. A refusal that cannot
 * succeed on retry (see retry-policy.ts) ends the attempts instead, with a 'refused' event.
 *
 * It announces the SHA-256 of its descriptor set and sends the set too, so that a distributor that
 * lost it (a restart) needs no second round, and one of the first contract understands it.
 */
export class RegistrationClient extends EventEmitter<RegistrationEvents> {
  /** The connection registrations go out on; a new one once the registration moved (see renewConnection). */
  #connection: DistributorConnection;
  readonly #makeConnection: () => DistributorConnection;
  readonly #node: NodeDescription;
  readonly #view: RegistryView | undefined;
  readonly #log: Logger;
  readonly #backoff: BackoffOptions;
  readonly #answerTimeoutMs: number;
  readonly #credentials: RegistryCredentials;
  /** Whether the distributor is dialled with TLS, for the hint at a TLS mismatch (see tlsMismatchHint). */
  readonly #ownTls: boolean;
  /** Whether a registration token is sent: tells a refusal's hint which setting is wrong. */
  readonly #hasToken: boolean;
  /** The distributor's address as configured, for the refusal that says it is not one. */
  readonly #distributor: string;
  #state: NodeState;
  /** The status code and the gist of the details of the last failure, to tell a new reason. */
  #lastFailure: string | undefined;
  #call: RegisterCall | undefined;
  /**
   * The registration made again on a new connection while the current one still holds (see
   * renewConnection), until it is acknowledged or fails.
   */
  #move: Move | undefined;
  /** A move was asked for when none could start (not registered yet, or one under way). */
  #movePending = false;
  /**
   * The last state the registration being moved acknowledged while the move was under way (its
   * answers are set aside then): taken if the move fails, else a setState of that time (a drain)
   * would never be told acknowledged.
   */
  #asideAck: NodeState | undefined;
  /**
   * The CAs of the CA file taken last, once it changed (see stopUsingUntrusted): a connection whose
   * handshake ends later with a distributor that chains to none of them is refused.
   */
  #authorities: readonly X509Certificate[] | undefined;
  /** Registrations whose end is expected (the one a move replaced): they end without a word. */
  readonly #retired = new WeakSet<RegisterCall>();
  #retryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  readonly #moveRetry: BackoffOptions;
  /** The next try of a move that failed, while one waits (see #retryMove). */
  #moveRetryTimer: NodeJS.Timeout | undefined;
  /** Moves failed in a row since the last renewal or registration. */
  #moveFailures = 0;
  /** When the current registration was acknowledged (performance.now()), while registered. */
  #registeredAt: number | undefined;
  #started = false;
  #stopped = false;
  #snapshot: Snapshot | undefined;
  #nodeId: string | undefined;
  #acknowledgedState: NodeState | undefined;
  #refusal: StatusObject | undefined;
  /**
   * The distributor's time on its last acknowledgement that gave it, and when that came by this
   * host's monotonic clock (performance.now()): the distributor's clock now is counted on from them.
   */
  #distributorTime: { sentAtMs: number; receivedAt: number } | undefined;
  /** Whether this registration's clock offset has been looked at (and warned about). */
  #clockChecked = false;

  constructor(options: RegistrationClientOptions) {
    super();
    const { descriptorSetSha256, ...node } = options.node;
    this.#node = {
      ...node,
      descriptorSetSha256:
        descriptorSetSha256 ??
        (node.descriptorSet.length > 0
          ? createHash('sha256').update(node.descriptorSet).digest()
          : Buffer.alloc(0)),
    };
    this.#log = options.log ?? silentLogger();
    this.#backoff = options.backoff ?? { initialMs: 100, maxMs: 5_000 };
    this.#moveRetry = options.moveRetry ?? MOVE_RETRY;
    this.#answerTimeoutMs = options.answerTimeoutMs ?? FIRST_ANSWER_TIMEOUT_MS;
    this.#state =
      options.node.state === NodeState.NODE_STATE_DRAINING
        ? NodeState.NODE_STATE_DRAINING
        : NodeState.NODE_STATE_SERVING;
    this.#credentials = new RegistryCredentials(options.token, options.distributor);
    this.#hasToken = options.token !== undefined;
    this.#distributor = options.distributor;
    const channelCredentials = options.credentials ?? credentials.createInsecure();
    // The credentials say it whoever made them: grpc-js's own secure/insecure test, in its typings.
    this.#ownTls = channelCredentials._isSecure();
    this.#makeConnection = () =>
      new DistributorConnection(
        options.distributor,
        channelCredentials,
        {
          ...options.channelOptions,
          ...keepaliveChannelOptions(options.keepalive ?? DEFAULT_KEEPALIVE),
          // The channel's own reconnect backoff (1 s growing to 120 s by default) would hold back our
          // attempts long after the distributor is back: an attempt of ours made while it waits fails
          // at once, and ours then waits its own backoff on top. Capped at a second, a reconnection
          // (a TCP connect, nothing registered) is ready by the time our next attempt comes.
          'grpc.initial_reconnect_backoff_ms': Math.min(this.#backoff.initialMs, CHANNEL_RECONNECT_MAX_MS),
          'grpc.max_reconnect_backoff_ms': Math.min(this.#backoff.maxMs, CHANNEL_RECONNECT_MAX_MS),
        },
        options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
        (connection) => this.#refuseUntrusted(connection),
      );
    this.#connection = this.#makeConnection();
    if (options.watchNodes) {
      this.#view = new RegistryView({
        fetchDescriptorSet: createDescriptorSetFetcher(() => this.#connection, this.#credentials),
        log: this.#log,
      });
      this.#view.on('snapshot', (snapshot) => this.#onSnapshot(snapshot));
    }
  }

  /** The latest node list, once one has arrived. */
  get snapshot(): Snapshot | undefined {
    return this.#snapshot;
  }

  /** The id of the current registration, while registered. */
  get nodeId(): string | undefined {
    return this.#nodeId;
  }

  /** The state this node says it is in (its last setState, or its description's). */
  get state(): NodeState {
    return this.#state;
  }

  /** The state the distributor last acknowledged on the current stream; undefined before it has. */
  get acknowledgedState(): NodeState | undefined {
    return this.#acknowledgedState;
  }

  /**
   * How far the distributor's clock is ahead of this host's (behind if negative), in ms, now: its
   * time on its last acknowledgement (within the time that took to arrive), counted on by this host's
   * monotonic clock, less this host's clock now; undefined before one, or from a distributor that
   * does not tell its time. Its nodes' registeredAt are by its clock. Counted on rather than fixed at
   * the acknowledgement, which comes only at registration and at a change of state: this host's
   * clock set right after the warning (or stepped by NTP) would otherwise keep the old difference,
   * every node on the status page that much older, until the next registration.
   */
  get distributorClockOffsetMs(): number | undefined {
    const time = this.#distributorTime;
    if (!time) return undefined;
    return Math.round(time.sentAtMs + (performance.now() - time.receivedAt) - Date.now());
  }

  /** The refusal the client gave up on, if the distributor refused the node for good. */
  get refusal(): StatusObject | undefined {
    return this.#refusal;
  }

  /** Starts registering; safe to call before the distributor is up. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#connect();
  }

  /** Tells the distributor the node's state now and on every later re-registration. */
  setState(state: NodeState.NODE_STATE_SERVING | NodeState.NODE_STATE_DRAINING): void {
    if (this.#state === state) return;
    this.#state = state;
    // During a move, both registrations: the new one may have gone out with the state before.
    for (const call of [this.#call, this.#move?.call]) {
      call?.write({ kind: { $case: 'state', value: state }, options: undefined });
    }
  }

  /**
   * Moves the registration to a new connection, make-before-break: registers again on a new channel
   * (a new TLS handshake, with the certificate the component holds now), which the distributor takes
   * as the same node registered again (listed without a gap: watchers see an update, not a leave),
   * and closes the old connection once the new registration is acknowledged. Called when the
   * component's certificate was renewed (TlsRefreshOptions.onCertificateTaken): the connection made
   * with the certificate before would be cut once the distributor drops its CA (the last step of a CA
   * rotation), its node leaving the list until it registered again. Not registered yet, the next
   * registration goes out on a new connection instead. If the new registration fails, the old one
   * stays (told as a warning).
   */
  renewConnection(): void {
    if (!this.#started || this.#stopped) return;
    this.#stopMoveRetries();
    if (this.#move || (this.#call && this.#nodeId === undefined)) {
      // Done once the registration under way holds (see #onResponse).
      this.#movePending = true;
      return;
    }
    if (!this.#call) {
      // Waiting to try again: the next attempt goes out on a new connection.
      const old = this.#connection;
      this.#connection = this.#makeConnection();
      old.close();
      return;
    }
    this.#startMove();
  }

  /**
   * Checks the distributor of the registration's connection (and of a move's) against the CA file
   * the component took now, `authorities`: a CA removed from it (it leaked) is not checked again by
   * a connection made before, whose handshake alone verified its server. Still chaining: nothing.
   * A move's connection that no longer does is given up, and the move made again. The current one
   * that no longer does: the registration moves make-before-break, as renewConnection moves it, to
   * a new connection, whose handshake is checked against the new file (a distributor renewed by a
   * CA kept since is reached so without the node leaving the list); if that move fails or has not
   * held within UNTRUSTED_MOVE_TIMEOUT_MS, the registration is ended and its connection closed
   * (warning `untrusted-after-ca-change`), and the client registers again as after any lost
   * registration, each new connection's handshake deciding. Called with the distributor
   * credentials' TlsRefreshOptions.onCaTaken. A failure of the check is logged, not thrown: it
   * would stop the certificate's renewal told after it.
   */
  stopUsingUntrusted(authorities: readonly X509Certificate[]): void {
    if (!this.#started || this.#stopped || authorities.length === 0) return;
    this.#authorities = authorities;
    checkAfterCaChange(this.#log, () => this.#checkTrust(authorities));
  }

  #checkTrust(authorities: readonly X509Certificate[]): void {
    const move = this.#move;
    if (move && !move.connection.trustedBy(authorities)) {
      // Made before the change with a distributor of the CA removed: its handshake vouches for nothing.
      this.#giveUpMove(move);
      if (!this.#call) {
        // The registration it was to replace had ended already: the move was the registration.
        this.#endUntrusted(undefined);
        return;
      }
      if (this.#connection.trustedBy(authorities)) {
        this.#startMove();
        return;
      }
    }
    if (this.#connection.trustedBy(authorities)) {
      // A CA file changed again (a removal undone): the registration before need not end after all.
      if (this.#move) {
        clearTimeout(this.#move.untrusted);
        this.#move.untrusted = undefined;
      }
      return;
    }
    if (!this.#call) {
      // Waiting to try again, or for a move whose registration before has ended: what comes next
      // (a failed move's retry included) goes out on a new connection.
      this.#retryOnNewConnection();
      return;
    }
    if (this.#nodeId === undefined && !this.#move) {
      // Not registered yet: nothing to keep while a new connection is tried.
      this.#endUntrusted(undefined);
      return;
    }
    if (!this.#move) this.#startMove();
    const current = this.#move;
    if (current && current.untrusted === undefined) {
      current.untrusted = setTimeout(() => {
        if (this.#move !== current) return;
        this.#giveUpMove(current);
        this.#endUntrusted(`not registered on a new connection within ${UNTRUSTED_MOVE_TIMEOUT_MS} ms`);
      }, UNTRUSTED_MOVE_TIMEOUT_MS);
      current.untrusted.unref();
    }
  }

  /** Refuses a connection whose handshake, begun before the CA file changed, ended with a distributor it no longer trusts. */
  #refuseUntrusted(connection: Socket): Error | undefined {
    const authorities = this.#authorities;
    if (authorities === undefined || serverStillTrusted(connection, authorities)) return undefined;
    return new Error(UNTRUSTED_DISTRIBUTOR);
  }

  /** Makes the registration again on a new connection while the current one holds (see renewConnection). */
  #startMove(): void {
    clearTimeout(this.#moveRetryTimer);
    this.#moveRetryTimer = undefined;
    this.#movePending = false;
    this.#asideAck = undefined;
    const connection = this.#makeConnection();
    this.#move = { call: this.#open(connection), connection, untrusted: undefined };
  }

  /**
   * After a move that failed, tries it again with backoff (see MOVE_RETRY) while the registration
   * stays where it was; says in how long. A renewal, a move that holds or the registration's end
   * stops the tries.
   */
  #retryMove(): number {
    const delay = backoffDelay(this.#moveRetry, this.#moveFailures);
    this.#moveFailures = Math.min(this.#moveFailures + 1, 30);
    clearTimeout(this.#moveRetryTimer);
    this.#moveRetryTimer = setTimeout(() => {
      this.#moveRetryTimer = undefined;
      if (this.#stopped || !this.#call || this.#nodeId === undefined || this.#move) return;
      this.#startMove();
    }, delay);
    this.#moveRetryTimer.unref();
    return delay;
  }

  /** No more tries of a move that failed: the registration moved, ended, or a renewal starts afresh. */
  #stopMoveRetries(): void {
    clearTimeout(this.#moveRetryTimer);
    this.#moveRetryTimer = undefined;
    this.#moveFailures = 0;
  }

  /** Ends a move under way without a word; what the registration before acknowledged meanwhile is told. */
  #giveUpMove(move: Move): void {
    this.#move = undefined;
    clearTimeout(move.untrusted);
    this.#retired.add(move.call);
    move.call.cancel();
    move.connection.closeNow();
    this.#tellAsideAck();
  }

  /** Tells the state the registration being replaced acknowledged during a move that did not hold (see #asideAck). */
  #tellAsideAck(): void {
    const aside = this.#asideAck;
    this.#asideAck = undefined;
    if (aside !== undefined && aside !== this.#acknowledgedState) this.#acknowledge(aside);
  }

  /** Waiting to try again: the next attempt goes out on a new connection, the one before closed at once. */
  #retryOnNewConnection(): void {
    const old = this.#connection;
    this.#connection = this.#makeConnection();
    old.closeNow();
  }

  /**
   * Ends the registration on a connection whose distributor the CA file no longer trusts, and that
   * connection; the client registers again on a new one with backoff, as after any lost registration.
   */
  #endUntrusted(moveFailure: string | undefined): void {
    const call = this.#call;
    this.#call = undefined;
    if (call) {
      this.#retired.add(call);
      call.cancel();
    }
    this.#retryOnNewConnection();
    // The new connection is made with the certificate held now: a renewal waiting is done.
    this.#movePending = false;
    this.#asideAck = undefined;
    this.#log.warn(
      {
        event: 'untrusted-after-ca-change',
        distributor: this.#distributor,
        ...(moveFailure ? { moveFailure } : {}),
      },
      `${this.#distributor}: ${UNTRUSTED_DISTRIBUTOR}${moveFailure ? `, and registering again on a new connection, checked against the new file, failed (${moveFailure})` : ''}: the registration on that connection is ended and the connection closed; registering again with backoff, each new connection's handshake checked against the CA file as it is now`,
    );
    this.#lost(
      { code: grpcStatus.UNAVAILABLE, details: UNTRUSTED_DISTRIBUTOR, metadata: new Metadata() },
      {
        untrusted: true,
      },
    );
  }

  /** Says draining, ends the stream (waiting for the distributor's answer at most `timeoutMs`), and closes. */
  async stop(timeoutMs = LEAVE_TIMEOUT_MS): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#stopMoveRetries();
    const move = this.#move;
    this.#move = undefined;
    if (move) {
      clearTimeout(move.untrusted);
      this.#retired.add(move.call);
      move.call.cancel();
      move.connection.close();
    }
    const call = this.#call;
    if (call) {
      this.setState(NodeState.NODE_STATE_DRAINING);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          call.cancel();
          resolve();
        }, timeoutMs);
        call.once('status', () => {
          clearTimeout(timer);
          resolve();
        });
        call.end();
      });
    }
    this.#view?.close();
    this.#connection.close();
  }

  #connect(): void {
    if (this.#stopped) return;
    this.#call = this.#open(this.#connection);
  }

  /** Registers over `connection`: the current registration, or the one a move makes (see renewConnection). */
  #open(connection: DistributorConnection): RegisterCall {
    const { options, check } = this.#credentials.forCall(
      DISTRIBUTOR_METHODS.register,
      connection,
      this.#node,
    );
    const call = connection.client.register(new Metadata(), options);
    const deadline = new FirstAnswerDeadline(call, this.#answerTimeoutMs, 'the registration', connection);
    const proof = check(call);
    call.on('data', (response: RegisterResponse) => {
      if (!proof.proven || this.#retired.has(call)) return;
      deadline.clear();
      if (this.#move?.call === call) {
        if (response.nodeId) this.#moved();
      } else if (this.#move) {
        // The registration being replaced: the new stream tells the node list and the state now;
        // a state it acknowledges is kept aside for a move that fails.
        if (response.ack) this.#asideAck = response.ack.state;
        return;
      }
      this.#onResponse(call, response);
      if (this.#movePending && this.#nodeId !== undefined && this.#call === call && !this.#move) {
        this.renewConnection();
      }
    });
    // Every end of the call is reported by 'status'; 'error' must be listened to, or it would throw.
    call.on('error', () => {});
    call.once('status', (ended: StatusObject) => {
      const status = proof.statusOf(deadline.statusOf(ended));
      if (this.#retired.has(call)) return;
      const move = this.#move;
      if (move?.call === call) {
        // The new registration failed before it held: the one before goes on, if it still does.
        this.#move = undefined;
        clearTimeout(move.untrusted);
        move.connection.close();
        if (move.untrusted !== undefined && !this.#stopped) {
          // Unless its connection's distributor is no longer trusted.
          this.#endUntrusted(`${grpcStatus[status.code]}: ${status.details}`);
          return;
        }
        if (this.#call && !this.#stopped) {
          const retryInMs = this.#retryMove();
          // Told once per renewal: the tries after it fail the same way until the distributor changes.
          this.#log[this.#moveFailures === 1 ? 'warn' : 'debug'](
            {
              event: 'registration-move-failed',
              code: grpcStatus[status.code] ?? status.code,
              details: status.details,
              retryInMs,
            },
            `could not register again on a new connection with the renewed certificate (${grpcStatus[status.code]}: ${status.details}); the registration stays on the connection made with the certificate before, which the distributor cuts if it no longer trusts that certificate's CA; trying again in ${Math.round(retryInMs / 1000)} s (then less and less often) until it holds`,
          );
          this.#tellAsideAck();
          // A renewal taken during the move (its connection may have been made with the certificate
          // before): a move of its own, which resumes the node list from where it was set aside.
          if (this.#movePending) {
            this.renewConnection();
            return;
          }
          // Its answers were set aside during the move: the node list is asked for whole again.
          if (this.#view) {
            this.#view.restart();
            this.#call.write({
              kind: { $case: 'resync', value: { resumeInstanceId: '', resumeRevision: 0 } },
              options: undefined,
            });
          }
          return;
        }
      } else if (move && this.#call === call) {
        // The registration being moved ended (replaced by the new one, as expected, or cut): the new
        // one decides, and a failure of it is handled as this end would have been.
        this.#retired.add(call);
        this.#call = undefined;
        return;
      }
      if (this.#call === call) this.#call = undefined;
      this.#lost(status, { unproven: proof.refusalUnproven(status) });
    });
    this.#view?.restart();
    call.write({
      kind: { $case: 'node', value: { ...this.#node, state: this.#state } },
      options: { nodeList: this.#view?.resumePoint() },
    });
    return call;
  }

  /**
   * The registration ended (`status`), and a move that may have replaced it with it: the client
   * registers again with backoff, unless stopped or refused for good. `unproven`: a refusal that did
   * not prove the registry token (see refusalUnproven); `untrusted`: ended by #endUntrusted, which
   * said why.
   */
  #lost(
    status: StatusObject,
    { unproven = false, untrusted = false }: { unproven?: boolean; untrusted?: boolean },
  ): void {
    // A registration is a success that restarts the backoff, unless another process registering
    // the same node (a copied --advertise-host) took it over before it held: retrying within ms,
    // the two would trade it for ever. Lost otherwise (a distributor restart), it is made again
    // at once, however many attempts it took the first time.
    if (
      this.#registeredAt !== undefined &&
      (!takenOver(status) || performance.now() - this.#registeredAt >= 2 * this.#backoff.maxMs)
    ) {
      this.#failures = 0;
      this.#lastFailure = undefined;
    }
    this.#registeredAt = undefined;
    this.#nodeId = undefined;
    this.#acknowledgedState = undefined;
    // Registered again on a connection made now, with the certificate held now.
    this.#stopMoveRetries();
    if (this.#stopped) return;
    this.emit('disconnected', status);
    if (untrusted) {
      // Told by #endUntrusted; tried again on its new connection.
      this.#retryTimer = setTimeout(() => this.#connect(), this.#nextDelay());
      this.#retryTimer.unref();
      return;
    }
    const olderDistributor = asksForTheBearer(status.code, status.details, this.#hasToken);
    // Cut for a CA the distributor no longer trusts: the next connection's handshake decides, with
    // the certificate this component holds now (renewed by the new CA in a CA rotation).
    const caWithdrawn =
      status.code === grpcStatus.UNAUTHENTICATED && status.details === UNTRUSTED_AFTER_CA_CHANGE;
    const retry = unproven || olderDistributor || caWithdrawn ? 'refused' : retryClassOf(status.code);
    const reason = `${grpcStatus[status.code]}: ${status.details}`;
    // The status by name, as the distributor's refusals and a service's call lines write `code`.
    const fields = { code: grpcStatus[status.code] ?? status.code, details: status.details };
    const hints = `${tokenRefusalHint(status.code, status.details, this.#hasToken)}${notADistributorHint(status.code, this.#distributor)}`;
    if (retry === 'permanent') {
      this.#refusal = status;
      this.#log.error(
        { event: 'refused', ...fields },
        `the distributor refused this node (${reason}); retrying cannot change that, so registration stops here${hints}`,
      );
      this.emit('refused', status);
      return;
    }
    // Warn when the link is lost, when the reason changes (the distributor came back but refuses
    // the node, say), and at every refusal that may clear later: the node is not routed meanwhile.
    // Repeated transient failures for the same reason are routine.
    // A TLS problem's failures differ in their words from one attempt to the next (a reset, a
    // session closed early): one reason, told once.
    const hint = tlsMismatchHint(status.details, this.#ownTls, 'the distributor');
    const cause = `${status.code} ${hint || detailsCause(status.details)}`;
    const newReason = this.#failures === 0 || cause !== this.#lastFailure;
    this.#lastFailure = cause;
    const delay = this.#nextDelay();
    if (olderDistributor) {
      this.#log.warn(
        { event: 'refused', ...fields, ...(unproven ? { proven: false } : {}), retryInMs: delay },
        `${this.#distributor} asks for the registry token as a bearer (${reason}); retrying with backoff until it takes this component's proof${hints}`,
      );
    } else if (unproven) {
      this.#log.warn(
        { event: 'refused', ...fields, proven: false, retryInMs: delay },
        `${this.#distributor} refused this node (${reason}) without proving that it holds the registry token, so the refusal is not taken as final: it may come from another process holding the distributor's port while it restarts; if it is the distributor's, what it names needs fixing (this component's ${REGISTRY_TOKEN_ENV} not the distributor's, a clock more than 5 minutes off, something relaying the connection); retrying with backoff${status.details.startsWith(REGISTRY_TOKEN_REFUSALS.wrong) ? '' : hints}`,
      );
    } else if (retry === 'refused') {
      this.#log.warn(
        { event: 'refused', ...fields, retryInMs: delay },
        `the distributor refused this node for now (${reason}); retrying with backoff`,
      );
    } else {
      // A TLS mismatch looks like any lost link (the server closes, or a TLS record makes no
      // sense): said in so many words, else a node retries for ever with nothing pointing at TLS.
      this.#log[newReason ? 'warn' : 'debug'](
        { event: 'disconnected', ...fields, retryInMs: delay, ...(hint ? { tlsMismatch: true } : {}) },
        newReason
          ? `not registered with the distributor (${reason}); retrying with backoff${hint || takeoverHint(status)}`
          : 'still not registered with the distributor; retrying',
      );
    }
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
    this.#retryTimer.unref();
  }

  /**
   * The move's registration was acknowledged: the distributor replaced the one before with it (and
   * ends that one with NODE_REPLACED, expected here). The old connection is closed.
   */
  #moved(): void {
    const move = this.#move;
    if (!move) return;
    this.#move = undefined;
    this.#stopMoveRetries();
    clearTimeout(move.untrusted);
    this.#asideAck = undefined;
    const old = this.#call;
    const oldConnection = this.#connection;
    this.#call = move.call;
    this.#connection = move.connection;
    if (old) {
      this.#retired.add(old);
      old.cancel();
    }
    oldConnection.close();
    this.#log.info(
      { event: 'registration-moved', node: this.#nodeId },
      move.untrusted === undefined
        ? 'registered again on a new connection, made with the renewed certificate; the connection before is closed'
        : 'registered again on a new connection, whose distributor the changed CA file trusts; the connection before, whose distributor it no longer trusts, is closed',
    );
  }

  #onResponse(call: RegisterCall, response: RegisterResponse): void {
    if (response.nodeId && this.#nodeId !== response.nodeId) {
      this.#nodeId = response.nodeId;
      this.#registeredAt = performance.now();
      this.#clockChecked = false;
      this.#log.info({ event: 'registered', node: response.nodeId }, 'registered with the distributor');
      this.emit('registered', response.nodeId);
    }
    if (response.ack) {
      if (response.ack.sentAt) this.#compareClocks(response.ack.sentAt);
      this.#acknowledge(response.ack.state);
    }
    if (response.update && this.#view?.apply(response.update) === 'resync') {
      call.write({
        kind: { $case: 'resync', value: { resumeInstanceId: '', resumeRevision: 0 } },
        options: undefined,
      });
    }
    // A distributor of the first contract sends the whole list, whatever was asked for.
    if (response.snapshot) {
      const self = response.snapshot.nodes.find((node) => node.id === response.nodeId);
      if (self) this.#acknowledge(self.state);
      this.#onSnapshot(response.snapshot);
    }
  }

  /**
   * Takes the distributor's clock from an acknowledgement, and warns once per registration when it is
   * more than CLOCK_WARNING_MS from this host's: nothing else would say so before the token's proofs
   * or the certificates start failing.
   */
  #compareClocks(sentAt: Date): void {
    const sentAtMs = sentAt.getTime();
    const offsetMs = sentAtMs - Date.now();
    this.#distributorTime = { sentAtMs, receivedAt: performance.now() };
    if (this.#clockChecked) return;
    this.#clockChecked = true;
    if (Math.abs(offsetMs) <= CLOCK_WARNING_MS) return;
    const limit = this.#hasToken
      ? `; the distributor refuses a registration made more than ${PROOF_WINDOW_MS / 1000} s from its clock (registry token)`
      : '';
    this.#log.warn(
      { event: 'clock-skew', distributorClockOffsetMs: offsetMs },
      `this host's clock is ${clockDifferenceText(offsetMs)} ${offsetMs > 0 ? 'behind' : 'ahead of'} the distributor's (by the time on its acknowledgement): set the hosts' clocks right and keep them in step (NTP), within ${CLOCK_WARNING_MS / 1000} s of each other${limit}`,
    );
  }

  #acknowledge(state: NodeState): void {
    this.#acknowledgedState = state;
    this.emit('state', state);
  }

  #onSnapshot(snapshot: Snapshot): void {
    this.#snapshot = snapshot;
    this.emit('snapshot', snapshot);
  }

  /** Exponential backoff with jitter: a random delay from half to all of initial × 2^failures, capped. */
  #nextDelay(): number {
    const delay = backoffDelay(this.#backoff, this.#failures);
    this.#failures = Math.min(this.#failures + 1, 30);
    return delay;
  }
}

type RegisterCall = ClientDuplexStream<RegisterRequest, RegisterResponse>;

/** A registration made again on a new connection while the one before holds (see renewConnection). */
interface Move {
  readonly call: RegisterCall;
  readonly connection: DistributorConnection;
  /**
   * Set when the registration being moved is on a connection no longer trusted: ends it if the move
   * has not held by then (see stopUsingUntrusted); a failure of the move ends it at once.
   */
  untrusted: NodeJS.Timeout | undefined;
}
