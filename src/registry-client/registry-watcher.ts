import type { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import {
  type ChannelCredentials,
  type ChannelOptions,
  type ClientReadableStream,
  credentials,
  status as grpcStatus,
  Metadata,
  type StatusObject,
} from '@grpc/grpc-js';
import { type BackoffOptions, backoffDelay } from '../common/backoff.js';
import { DEFAULT_KEEPALIVE, type KeepaliveOptions, keepaliveChannelOptions } from '../common/grpc-server.js';
import { type Logger, silentLogger } from '../common/logger.js';
import { serverStillTrusted } from '../common/peer-chain.js';
import { followCaFile } from '../common/tls.js';
import type { NodeListSubscription, NodeListUpdate, Snapshot, WatchResponse } from '../gen/distributor.js';
import { checkAfterCaChange } from './ca-change-check.js';
import { createDescriptorSetFetcher } from './descriptor-set-fetcher.js';
import { CONNECT_TIMEOUT_MS, DistributorConnection } from './distributor-connection.js';
import { FIRST_ANSWER_TIMEOUT_MS, FirstAnswerDeadline } from './first-answer-deadline.js';
import { DISTRIBUTOR_METHODS, RegistryCredentials } from './registry-credentials.js';
import { RegistryView } from './registry-view.js';
import { UNTRUSTED_MOVE_TIMEOUT_MS } from './untrusted-distributor.js';

/** Options of {@link RegistryWatcher}. */
export interface RegistryWatcherOptions {
  /** The distributor's address, "host:port". */
  distributor: string;
  /** The registration token, proven on every call and never sent (see registry-credentials.ts); none by default. */
  token?: string;
  /** How to reach the distributor: TLS (mTLS) credentials, or plaintext by default. */
  credentials?: ChannelCredentials;
  /** Channel options that go with the credentials (see secureNamingChannelOptions). */
  channelOptions?: ChannelOptions;
  /** Whether snapshots carry every node's descriptor set, fetched once per hash (default false). */
  descriptorSets?: boolean;
  log?: Logger;
  backoff?: BackoffOptions;
  keepalive?: KeepaliveOptions;
  /**
   * How long a new Watch stream may go without its first answer (the distributor sends the list or
   * a resume at once) before it is given up as UNAVAILABLE and tried again; default 30,000 ms. A
   * peer that accepts the connection and never speaks HTTP/2 (a hung process, another kind of
   * server) would otherwise hold it for ever: grpc-js waits for the server's SETTINGS without a limit.
   */
  answerTimeoutMs?: number;
  /**
   * How long a connection attempt to the distributor may hang before a new one replaces it (see
   * DistributorConnection); default 10,000 ms.
   */
  connectTimeoutMs?: number;
}

interface RegistryWatcherEvents {
  /** The node list changed. */
  snapshot: [snapshot: Snapshot];
  /** A Watch stream answered (the list, or a resume): the list follows the distributor again. */
  connected: [];
  /** The Watch stream ended; a new one follows (resuming where it can) unless the watcher was stopped. */
  disconnected: [status: StatusObject];
}

/** Why a Watch ended on a connection whose distributor its credentials' CA file no longer trusts (its 'disconnected' status). */
export const UNTRUSTED_WATCH_DISTRIBUTOR =
  "the distributor's certificate on the Watch's connection chains to no CA of its credentials' CA file any more (it changed)";

type WatchCall = ClientReadableStream<WatchResponse>;

/** The Watch made again on a new connection while the one before still runs (see #stopUsingUntrusted). */
interface Move {
  readonly connection: DistributorConnection;
  readonly call: WatchCall;
  /** Ends the Watch on the old connection if the move has not held by then. */
  readonly deadline: NodeJS.Timeout;
  /** Where the list was when the move's stream asked to resume from it. */
  readonly from: NodeListSubscription;
}

/**
 * Follows the distributor's node list without registering: a Watch stream with a subscription, kept
 * as a full list by a RegistryView. It reconnects by itself with backoff, resuming from the revision
 * it holds (the distributor sends only what was missed if it still can), and starts a new stream for
 * a snapshot when the view sees a gap.
 *
 * With credentials made by channelCredentials (or channelCredentialsByName) with a CA file, a
 * change of that file is checked against the distributor of the Watch's connection, as a
 * registration is (RegistrationClient.stopUsingUntrusted): TLS checked its certificate at the
 * handshake alone, so a CA removed since (it leaked) would go on vouching for it for the life of
 * the stream. Still chaining: nothing. Not: the Watch is made again on a new connection, checked
 * against the new file, resuming where the list is (a distributor renewed by a CA kept since is so
 * followed without a gap); once it answers, the stream before and its connection are ended. If it
 * fails, or has not answered within UNTRUSTED_MOVE_TIMEOUT_MS, the Watch on the old connection is
 * ended and that connection closed (warning `untrusted-after-ca-change`, 'disconnected'), and
 * watching starts again with backoff, each new handshake deciding. Credentials made otherwise tell
 * of no file: their streams are not checked.
 */
export class RegistryWatcher extends EventEmitter<RegistryWatcherEvents> {
  readonly #makeConnection: () => DistributorConnection;
  #connection: DistributorConnection;
  readonly #distributor: string;
  readonly #channelCredentials: ChannelCredentials;
  readonly #credentials: RegistryCredentials;
  readonly #view: RegistryView;
  readonly #log: Logger;
  readonly #backoff: BackoffOptions;
  readonly #answerTimeoutMs: number;
  #call: WatchCall | undefined;
  /** Whether the current stream has answered (its list or a resume). */
  #answered = false;
  /** The Watch made again on a new connection, until it answers or fails (see #stopUsingUntrusted). */
  #move: Move | undefined;
  /**
   * The CAs of the CA file taken last, once it changed: a connection whose handshake ends later
   * with a distributor that chains to none of them is refused (it began against the file before).
   */
  #authorities: readonly X509Certificate[] | undefined;
  /** Stops following the credentials' CA file (see followCaFile). */
  #unfollowCaFile: (() => void) | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  #started = false;
  #stopped = false;

  constructor(options: RegistryWatcherOptions) {
    super();
    this.#log = options.log ?? silentLogger();
    this.#backoff = options.backoff ?? { initialMs: 100, maxMs: 5_000 };
    this.#answerTimeoutMs = options.answerTimeoutMs ?? FIRST_ANSWER_TIMEOUT_MS;
    this.#distributor = options.distributor;
    this.#credentials = new RegistryCredentials(options.token, options.distributor);
    this.#channelCredentials = options.credentials ?? credentials.createInsecure();
    this.#makeConnection = () =>
      new DistributorConnection(
        options.distributor,
        this.#channelCredentials,
        {
          ...options.channelOptions,
          ...keepaliveChannelOptions(options.keepalive ?? DEFAULT_KEEPALIVE),
          'grpc.initial_reconnect_backoff_ms': this.#backoff.initialMs,
          'grpc.max_reconnect_backoff_ms': this.#backoff.maxMs,
        },
        options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
        (connection) => this.#refuseUntrusted(connection),
      );
    this.#connection = this.#makeConnection();
    this.#view = new RegistryView({
      ...(options.descriptorSets
        ? { fetchDescriptorSet: createDescriptorSetFetcher(() => this.#connection, this.#credentials) }
        : {}),
      log: this.#log,
    });
    this.#view.on('snapshot', (snapshot) => this.emit('snapshot', snapshot));
  }

  /** The latest node list, once one has arrived. */
  get snapshot(): Snapshot | undefined {
    return this.#view.snapshot;
  }

  /** Starts watching; safe to call before the distributor is up. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#unfollowCaFile = followCaFile(this.#channelCredentials, (authorities) =>
      this.#stopUsingUntrusted(authorities),
    );
    this.#connect();
  }

  /** Ends the stream and closes the channel. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#unfollowCaFile?.();
    clearTimeout(this.#retryTimer);
    const move = this.#move;
    this.#move = undefined;
    if (move) {
      clearTimeout(move.deadline);
      move.call.cancel();
      move.connection.close();
    }
    this.#call?.cancel();
    this.#view.close();
    this.#connection.close();
  }

  /** Opens a Watch stream: resuming from what the view holds, or (`fresh`) for a snapshot. */
  #connect(fresh = false): void {
    if (this.#stopped) return;
    this.#view.restart();
    const subscription = fresh ? { resumeInstanceId: '', resumeRevision: 0 } : this.#view.resumePoint();
    this.#answered = false;
    this.#call = this.#watch(this.#connection, subscription);
  }

  /**
   * A Watch stream over `connection`: the current one, or a move's (see #stopUsingUntrusted), which
   * becomes the current one as it first answers.
   */
  #watch(connection: DistributorConnection, subscription: NodeListSubscription): WatchCall {
    const { options, check } = this.#credentials.forCall(DISTRIBUTOR_METHODS.watch, connection);
    const call = connection.client.watch({ subscription }, new Metadata(), options);
    const deadline = new FirstAnswerDeadline(call, this.#answerTimeoutMs, 'the Watch call', connection);
    const proof = check(call);
    call.on('data', (response: WatchResponse) => {
      if (!proof.proven) return;
      deadline.clear();
      const move = this.#move;
      if (move?.call === call) {
        this.#moved(move);
        const now = this.#view.resumePoint();
        if (
          now.resumeInstanceId !== move.from.resumeInstanceId ||
          now.resumeRevision !== move.from.resumeRevision
        ) {
          // The stream before went on while this one's connection was made: this one resumes from
          // behind the list, which would take its answer for a gap (a warning and a whole list). A
          // stream from where the list is now replaces it, on the connection it proved trusted.
          const answered = this.#answered;
          this.#call = undefined;
          call.cancel();
          this.#connect();
          this.#answered = answered;
          return;
        }
      }
      // A stream a move replaced, or one given up: its answers are no longer the list's.
      if (this.#call !== call) return;
      this.#failures = 0;
      if (!this.#answered) {
        this.#answered = true;
        this.emit('connected');
      }
      // A distributor of the first contract ignores the subscription and sends the whole list on
      // every change (WatchResponse.snapshot): each replaces the list, as a snapshot update would.
      const update = response.update ?? (response.snapshot ? wholeList(response.snapshot) : undefined);
      if (!update || this.#view.apply(update) === 'applied') return;
      // A gap: a new stream, for a snapshot.
      this.#call = undefined;
      call.cancel();
      this.#connect(true);
    });
    call.on('error', () => {});
    call.once('status', (ended: StatusObject) => {
      const status = proof.statusOf(deadline.statusOf(ended));
      const move = this.#move;
      if (move?.call === call) {
        this.#moveFailed(move, `${grpcStatus[status.code] ?? status.code}: ${status.details}`);
        return;
      }
      if (this.#call !== call || this.#stopped) return;
      this.#call = undefined;
      this.#retryLater(status);
    });
    return call;
  }

  /** Tells the stream's end, and opens a new one after the backoff. */
  #retryLater(status: StatusObject): void {
    this.emit('disconnected', status);
    const delay = backoffDelay(this.#backoff, this.#failures);
    this.#failures = Math.min(this.#failures + 1, 30);
    this.#log.debug(
      {
        event: 'watch-disconnected',
        code: grpcStatus[status.code] ?? status.code,
        details: status.details,
        retryInMs: delay,
      },
      'node list stream ended; watching again with backoff',
    );
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
    this.#retryTimer.unref();
  }

  /**
   * Checks the distributor of the Watch's connection (and of a move's) against the CA file its
   * credentials took now, `authorities` (see the class's comment). A failure of the check is
   * logged, not thrown: it would stop the reading of the files, renewals included.
   */
  #stopUsingUntrusted(authorities: readonly X509Certificate[]): void {
    if (this.#stopped || authorities.length === 0) return;
    this.#authorities = authorities;
    checkAfterCaChange(this.#log, () => this.#checkTrust(authorities));
  }

  #checkTrust(authorities: readonly X509Certificate[]): void {
    const move = this.#move;
    // Made before the change with a distributor of the CA removed: its handshake vouches for nothing.
    if (move && !move.connection.trustedBy(authorities)) this.#giveUpMove(move);
    // Still chaining (or a removal undone): a move under way holds or fails by itself.
    if (this.#connection.trustedBy(authorities)) return;
    if (!this.#call) {
      // Waiting to try again: the next stream goes out on a new connection.
      this.#replaceConnection();
      return;
    }
    // No list from it yet: nothing to keep while a new connection is tried.
    if (!this.#answered) this.#endUntrusted(undefined);
    else if (!this.#move) this.#startMove();
  }

  /** Refuses a connection whose handshake, begun before the CA file changed, ended with a distributor it no longer trusts. */
  #refuseUntrusted(connection: Socket): Error | undefined {
    const authorities = this.#authorities;
    if (authorities === undefined || serverStillTrusted(connection, authorities)) return undefined;
    return new Error(UNTRUSTED_WATCH_DISTRIBUTOR);
  }

  /** Makes the Watch again on a new connection, resuming where the list is, while the current one runs. */
  #startMove(): void {
    const connection = this.#makeConnection();
    const from = this.#view.resumePoint();
    const call = this.#watch(connection, from);
    const deadline = setTimeout(() => {
      const move = this.#move;
      if (move?.call === call) this.#moveFailed(move, `no answer within ${UNTRUSTED_MOVE_TIMEOUT_MS} ms`);
    }, UNTRUSTED_MOVE_TIMEOUT_MS);
    deadline.unref();
    this.#move = { connection, call, deadline, from };
  }

  /** The move's stream answered: it is the Watch now, and the one before is ended with its connection. */
  #moved(move: Move): void {
    this.#move = undefined;
    clearTimeout(move.deadline);
    const before = this.#call;
    const beforeConnection = this.#connection;
    this.#call = move.call;
    this.#connection = move.connection;
    if (!before) {
      // The stream before had ended, and was to be opened again: this one follows the list now.
      clearTimeout(this.#retryTimer);
      this.#answered = false;
    }
    // Its first answer resumes the list where the move took it from, or replaces it (a snapshot).
    this.#view.restart();
    before?.cancel();
    beforeConnection.closeNow();
    this.#log.info(
      { event: 'watch-moved', distributor: this.#distributor },
      `${this.#distributor}: the Watch moved to a new connection, checked against the changed CA file`,
    );
  }

  /**
   * The move failed: the Watch on the old connection is ended, unless the CA file changed again
   * meanwhile and trusts its distributor after all.
   */
  #moveFailed(move: Move, failure: string): void {
    this.#giveUpMove(move);
    const authorities = this.#authorities;
    if (authorities !== undefined && this.#connection.trustedBy(authorities)) return;
    // The stream before has ended already, and its retry waits: it goes out on a new connection.
    if (!this.#call) this.#replaceConnection();
    else this.#endUntrusted(failure);
  }

  /** Ends a move under way without a word. */
  #giveUpMove(move: Move): void {
    this.#move = undefined;
    clearTimeout(move.deadline);
    move.call.cancel();
    move.connection.closeNow();
  }

  /** The next stream goes out on a new connection, the one before closed at once. */
  #replaceConnection(): void {
    const old = this.#connection;
    this.#connection = this.#makeConnection();
    old.closeNow();
  }

  /**
   * Ends the Watch on a connection whose distributor the CA file no longer trusts, and that
   * connection; watching starts again on a new one with backoff, as after any lost stream.
   */
  #endUntrusted(moveFailure: string | undefined): void {
    const call = this.#call;
    this.#call = undefined;
    call?.cancel();
    this.#replaceConnection();
    this.#log.warn(
      {
        event: 'untrusted-after-ca-change',
        distributor: this.#distributor,
        ...(moveFailure ? { moveFailure } : {}),
      },
      `${this.#distributor}: ${UNTRUSTED_WATCH_DISTRIBUTOR}${moveFailure ? `, and watching on a new connection, checked against the new file, failed (${moveFailure})` : ''}: the Watch on that connection is ended and the connection closed; watching again with backoff, each new connection's handshake checked against the CA file as it is now`,
    );
    this.#retryLater({
      code: grpcStatus.UNAVAILABLE,
      details: UNTRUSTED_WATCH_DISTRIBUTOR,
      metadata: new Metadata(),
    });
  }
}

/** A full list of the first contract, as the update that replaces the list with it. */
function wholeList(snapshot: Snapshot): NodeListUpdate {
  return {
    instanceId: snapshot.instanceId,
    revision: snapshot.revision,
    change: { $case: 'snapshot', value: snapshot },
  };
}
