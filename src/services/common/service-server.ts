import type { X509Certificate } from 'node:crypto';
import { Server, type ServerCredentials } from '@grpc/grpc-js';
import type { ServingStatus } from 'grpc-health-check';
import {
  boundAddressesOf,
  connectionLimitOf,
  DEFAULT_KEEPALIVE,
  idleConnectionOptions,
  type KeepaliveOptions,
  keepaliveChannelOptions,
  listen,
  SERVICE_MAX_REQUEST_BYTES,
  shutdown,
  streamLimitOptions,
} from '../../common/grpc-server.js';
import { createHealth, endHealthWatches } from '../../common/health.js';
import { type Logger, silentLogger } from '../../common/logger.js';
import { addReflection } from '../../common/reflection.js';
import { strictRequests, strictServer } from '../../common/strict-requests.js';
import {
  closeUntrustedSession,
  LateHandshakeCheck,
  sessionsNoLongerTrusted,
} from '../../common/untrusted-sessions.js';
import { CallLimit, DEFAULT_MAX_CALLS_IN_FLIGHT } from './calls-in-flight.js';
import { DatabaseHealthMonitor } from './database-health-monitor.js';
import type { ShopService } from './define-service.js';
import { encodingSharedAnswersOnce } from './encode-once.js';
import { IdempotencySweeper } from './idempotency-sweeper.js';
import type { ServiceStore } from './service-store.js';
import type { ServiceTelemetry } from './service-telemetry.js';

/** Options of {@link createServiceServer}. */
export interface ServiceServerOptions<Store extends ServiceStore, Options = never> {
  /** The service's data; the server never closes it (its owner does, after `stop()`). */
  store: Store;
  log?: Logger;
  /** Pause between database probes (default 2 s); tests shorten it. */
  databaseProbeIntervalMs?: number;
  /** Pause between sweeps of expired idempotency keys (default 10 min); tests shorten it. */
  idempotencySweepIntervalMs?: number;
  /** false: the server never sweeps by itself (default true); for tests that sweep by hand. */
  idempotencySweeps?: boolean;
  keepalive?: KeepaliveOptions;
  /** How callers connect: plaintext by default; TLS, or mTLS with a CA, across machines. */
  credentials?: ServerCredentials;
  /** The service's own handler options (see ShopService); default: the handlers' defaults. */
  handlerOptions?: Options;
  /** Metrics and request ids of every call (service-telemetry.ts); none: the server counts nothing. */
  telemetry?: ServiceTelemetry;
  /** Calls of the service's own methods run at once (calls-in-flight.ts). Default 128. */
  maxCallsInFlight?: number;
  /** Connections open at once on each address (see listen in grpc-server.ts). Default: defaultGrpcMaxConnections. */
  maxConnections?: number;
  /** How long a connection may stay without a call before it is closed. Default 5 minutes. */
  maxConnectionIdleMs?: number;
  /** How long a call may hold an answer its client takes nothing of (see UnreadAnswerWatch). Default 30 s. */
  unreadAnswerTimeoutMs?: number;
  /** How long a call of a one-message method may wait for its whole request (see WholeRequestWatch). Default 10 s. */
  wholeRequestTimeoutMs?: number;
  /** Told each time health turns SERVING (true) or NOT_SERVING (false). */
  onServingChange?: (serving: boolean) => void;
}

/** A service built but not yet listening. */
export interface ServiceServer {
  /** Binds host:port (0: any free port) and resolves with the port it got. */
  listen(host: string, port: number): Promise<number>;
  /** The IP addresses it listens on, once listening, in the order they were bound (see boundAddressesOf). */
  boundAddresses(): string[];
  /** Whether health is SERVING now: the database answers and the server is not draining. */
  readonly serving: boolean;
  /** Health turns NOT_SERVING for good: the first step of a graceful stop. */
  drain(): void;
  /** Drains, refuses new calls, gives calls in flight `graceMs` to finish, then cancels the rest. */
  stop(graceMs?: number): Promise<void>;
  /**
   * Closes every TLS connection whose client certificate no longer chains to `authorities` (the CA
   * file just taken), each with a warning: a CA removed because it leaked must not go on reaching
   * the service's data through connections its certificates opened before. Calls in flight on them
   * get a second to finish. Connections of certificates still trusted are left alone.
   */
  closeUntrustedConnections(authorities: readonly X509Certificate[]): void;
}

/**
 * Builds the gRPC server of one service over its store: the service's handlers, server reflection
 * (v1 and v1alpha, full import closure) and grpc.health.v1.Health. Health is SERVING for "" and for
 * the service while the database answers and the server is not draining; NOT_SERVING otherwise. It
 * starts NOT_SERVING and turns SERVING after the first successful database probe; probing starts
 * with `listen()`, so that building a server has no side effect. Sweeping expired idempotency keys
 * starts there too.
 */
export function createServiceServer<Store extends ServiceStore, Options>(
  service: ShopService<Store, Options>,
  options: ServiceServerOptions<Store, Options>,
): ServiceServer {
  const log = options.log ?? silentLogger();
  const serviceName = service.grpc.name;
  const calls = options.telemetry?.serverCalls(log);
  const server = new Server({
    ...keepaliveChannelOptions(options.keepalive ?? DEFAULT_KEEPALIVE),
    ...idleConnectionOptions(options.maxConnectionIdleMs),
    ...streamLimitOptions(),
    'grpc.max_receive_message_length': SERVICE_MAX_REQUEST_BYTES,
    ...calls?.serverOptions(),
  });
  const health = createHealth({ '': 'NOT_SERVING', [serviceName]: 'NOT_SERVING' });
  let draining = false;
  let current: ServingStatus = 'NOT_SERVING';
  const updateHealth = (): void => {
    const next: ServingStatus = !draining && monitor.reachable ? 'SERVING' : 'NOT_SERVING';
    if (next === current) return;
    current = next;
    health.setStatus('', next);
    health.setStatus(serviceName, next);
    // Not `status`: on the gateway's lines that is the HTTP status, a number (one type per field).
    log.info({ event: 'health', servingStatus: next }, `health: ${next}`);
    options.onServingChange?.(next === 'SERVING');
  };
  const monitor = new DatabaseHealthMonitor({
    probe: () => options.store.ping(),
    onChange: updateHealth,
    ...(options.databaseProbeIntervalMs === undefined ? {} : { intervalMs: options.databaseProbeIntervalMs }),
    log,
  });

  const sweeper = new IdempotencySweeper({
    store: options.store,
    ...(options.idempotencySweepIntervalMs === undefined
      ? {}
      : { intervalMs: options.idempotencySweepIntervalMs }),
    log,
  });

  const definition = strictRequests(encodingSharedAnswersOnce(service.grpc.definition));
  const callLimit = new CallLimit(options.maxCallsInFlight ?? DEFAULT_MAX_CALLS_IN_FLIGHT);
  options.telemetry?.watchCalls(callLimit);
  const handlers = callLimit.apply(
    definition,
    service.handlers(options.store, log, withTelemetry(options.handlerOptions, options.telemetry)),
  );
  server.addService(definition, calls ? calls.instrument(definition, handlers) : handlers);
  health.addToServer(strictServer(server));
  addReflection(server, [serviceName], service.grpc.descriptors);

  const lateHandshakes = new LateHandshakeCheck((address, port) =>
    log.warn(
      { event: 'untrusted-after-ca-change', peer: address, port },
      `closed the connection from ${address}:${port} at its handshake's end: its certificate's CA is no longer in ${service.name}'s CA file`,
    ),
  );
  let stopping: Promise<void> | undefined;
  const drain = (): void => {
    draining = true;
    updateHealth();
  };
  return {
    get serving() {
      return current === 'SERVING';
    },
    async listen(host, port) {
      const bound = await listen(server, host, port, options.credentials, connectionLimitOf(options, log));
      lateHandshakes.watch(server);
      monitor.start();
      if (options.idempotencySweeps !== false) sweeper.start();
      return bound;
    },
    boundAddresses: () => boundAddressesOf(server),
    drain,
    closeUntrustedConnections(authorities) {
      lateHandshakes.caTaken(authorities);
      for (const { session, address, port } of sessionsNoLongerTrusted(server, authorities).untrusted) {
        log.warn(
          { event: 'untrusted-after-ca-change', peer: address, port },
          `closed the connection from ${address}:${port}: its certificate's CA is no longer in ${service.name}'s CA file`,
        );
        closeUntrustedSession(session);
      }
    },
    stop(graceMs = CALLS_GRACE_AT_STOP_MS) {
      stopping ??= (async () => {
        drain();
        monitor.stop();
        sweeper.stop();
        // Told NOT_SERVING by drain; a Watch never ends by itself, and would hold the stop its grace.
        endHealthWatches(health, 'the service is stopping');
        await shutdown(server, graceMs);
      })();
      return stopping;
    },
  };
}

/**
 * How long calls in flight may run on once a service stops: longer than the gateway's default
 * deadline (5 s) and the store's query timeout (5 s), short enough that the drain notice (1 s),
 * this and leaving the distributor (2 s) leave time of the launcher's 10 s for the steps after
 * them, which get what is left (stopStepBudget). A call given a longer deadline (--deadline-ms) is
 * cut at 6 s when its service stops.
 */
export const CALLS_GRACE_AT_STOP_MS = 6_000;

/**
 * The handlers' options with the server's telemetry added, for handlers that report something of
 * their own (members: its password-hash queue, see TelemetryOption); others ignore it.
 */
function withTelemetry<Options>(options: Options | undefined, telemetry: ServiceTelemetry | undefined) {
  if (!telemetry) return options;
  return { ...(options ?? {}), telemetry } as Options;
}
