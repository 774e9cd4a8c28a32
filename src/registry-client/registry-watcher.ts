import { EventEmitter } from 'node:events';
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
import type { NodeListUpdate, Snapshot, WatchResponse } from '../gen/distributor.js';
import { createDescriptorSetFetcher } from './descriptor-set-fetcher.js';
import { CONNECT_TIMEOUT_MS, DistributorConnection } from './distributor-connection.js';
import { FIRST_ANSWER_TIMEOUT_MS, FirstAnswerDeadline } from './first-answer-deadline.js';
import { DISTRIBUTOR_METHODS, RegistryCredentials } from './registry-credentials.js';
import { RegistryView } from './registry-view.js';

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

/**
 * Follows the distributor's node list without registering: a Watch stream with a subscription, kept
 * as a full list by a RegistryView. It reconnects by itself with backoff, resuming from the revision
 * it holds (the distributor sends only what was missed if it still can), and starts a new stream for
 * a snapshot when the view sees a gap.
 */
export class RegistryWatcher extends EventEmitter<RegistryWatcherEvents> {
  readonly #connection: DistributorConnection;
  readonly #credentials: RegistryCredentials;
  readonly #view: RegistryView;
  readonly #log: Logger;
  readonly #backoff: BackoffOptions;
  readonly #answerTimeoutMs: number;
  #call: ClientReadableStream<WatchResponse> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  #started = false;
  #stopped = false;

  constructor(options: RegistryWatcherOptions) {
    super();
    this.#log = options.log ?? silentLogger();
    this.#backoff = options.backoff ?? { initialMs: 100, maxMs: 5_000 };
    this.#answerTimeoutMs = options.answerTimeoutMs ?? FIRST_ANSWER_TIMEOUT_MS;
    this.#credentials = new RegistryCredentials(options.token, options.distributor);
    this.#connection = new DistributorConnection(
      options.distributor,
      options.credentials ?? credentials.createInsecure(),
      {
        ...options.channelOptions,
        ...keepaliveChannelOptions(options.keepalive ?? DEFAULT_KEEPALIVE),
        'grpc.initial_reconnect_backoff_ms': this.#backoff.initialMs,
        'grpc.max_reconnect_backoff_ms': this.#backoff.maxMs,
      },
      options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    );
    this.#view = new RegistryView({
      ...(options.descriptorSets
        ? { fetchDescriptorSet: createDescriptorSetFetcher(this.#connection, this.#credentials) }
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
    this.#connect();
  }

  /** Ends the stream and closes the channel. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#call?.cancel();
    this.#view.close();
    this.#connection.close();
  }

  /** Opens a Watch stream: resuming from what the view holds, or (`fresh`) for a snapshot. */
  #connect(fresh = false): void {
    if (this.#stopped) return;
    this.#view.restart();
    const subscription = fresh ? { resumeInstanceId: '', resumeRevision: 0 } : this.#view.resumePoint();
    const { options, check } = this.#credentials.forCall(DISTRIBUTOR_METHODS.watch, this.#connection);
    const call = this.#connection.client.watch({ subscription }, new Metadata(), options);
    this.#call = call;
    const deadline = new FirstAnswerDeadline(call, this.#answerTimeoutMs, 'the Watch call', this.#connection);
    const proof = check(call);
    let answered = false;
    call.on('data', (response: WatchResponse) => {
      if (!proof.proven) return;
      deadline.clear();
      this.#failures = 0;
      if (!answered) {
        answered = true;
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
      if (this.#call !== call || this.#stopped) return;
      this.#call = undefined;
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
