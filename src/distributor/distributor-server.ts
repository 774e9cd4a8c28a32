import {
  Server,
  type ServerCredentials,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import {
  DEFAULT_KEEPALIVE,
  type KeepaliveOptions,
  keepaliveChannelOptions,
  listen,
  shutdown,
} from '../common/grpc-server.js';
import { type Logger, silentLogger } from '../common/logger.js';
import { addReflection } from '../common/reflection.js';
import { ServiceError, toServiceError } from '../common/service-error.js';
import {
  type DistributorServiceServer,
  type ListRequest,
  type ListResponse,
  NodeState,
  type RegisterRequest,
  type RegisterResponse,
  type WatchRequest,
  type WatchResponse,
} from '../gen/distributor.js';
import type { DistributorTelemetry } from './distributor-telemetry.js';
import { PRE_ENCODED_DISTRIBUTOR_SERVICE, SnapshotEncoder } from './encoded-snapshot.js';
import { type Lease, NodeRegistry } from './node-registry.js';
import { validateHost, validateName, validateNodeDescription } from './node-validation.js';
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

const SERVICE_NAME = 'shop.v1.DistributorService';

/** Options of {@link createDistributorServer}. */
export interface DistributorServerOptions {
  /** The registry to serve; by default a fresh one with `limits`. */
  registry?: NodeRegistry;
  log?: Logger;
  /** How quickly a peer that vanished without closing its connection is dropped. */
  keepalive?: KeepaliveOptions;
  /**
   * The shared registration token. When set, every Register, Watch and List call must carry the
   * metadata `authorization: Bearer <token>`, or it ends with UNAUTHENTICATED. Unset (the default):
   * no token is asked for; the process entry point, not this factory, enforces a secure default.
   */
  registryToken?: string;
  /** Reads the URI SANs of a call's client certificate; by default none (no TLS). */
  peerIdentities?: PeerIdentities;
  /**
   * For mTLS deployments (default false): Register, Watch and List need a certificate identity, and a
   * node may register under the name N only with the identity spiffe://shop/N (else PERMISSION_DENIED).
   */
  requireCertificateIdentity?: boolean;
  /** Overrides of REGISTRATION_LIMITS; checked for consistency at once (a RangeError if they clash). */
  limits?: Partial<RegistrationLimits>;
  /** How callers connect: plaintext by default; TLS, or mTLS with a CA (see src/common/tls.ts). */
  credentials?: ServerCredentials;
  /** Metrics of its calls and of the registry (distributor-telemetry.ts); none: nothing is counted. */
  telemetry?: DistributorTelemetry;
}

/** A distributor built but not yet listening. */
export interface DistributorServer {
  readonly registry: NodeRegistry;
  /** Binds host:port (0: any free port) and resolves with the port it got. */
  listen(host: string, port: number): Promise<number>;
  /** Stops taking calls, closes every stream with UNAVAILABLE, then shuts the server down. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Builds the distributor: DistributorService over a NodeRegistry, plus reflection and health.
 * A node is listed from its first Register message until its stream ends for any reason.
 *
 * Register, Watch and List are authenticated (see `registryToken` and `requireCertificateIdentity`);
 * health and reflection stay open. Refusals end the call with a status and a message saying why, and
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
  const auth = createRegistryAuth({
    token: options.registryToken,
    peerIdentities: options.peerIdentities,
    requireCertificateIdentity: options.requireCertificateIdentity,
  });
  const rateLimiter = new PeerRateLimiter({
    ratePerSecond: limits.registrationsPerSecond,
    burst: limits.registrationBurst,
    peers: limits.peers,
  });
  const refusals = new RefusalLog(log, limits.peers);
  const server = new Server({
    ...keepaliveChannelOptions(options.keepalive ?? DEFAULT_KEEPALIVE),
    // The largest valid registration; grpc-js refuses a larger message before it is even decoded.
    'grpc.max_receive_message_length': budget.maxRequestBytes,
    ...options.telemetry?.serverOptions(log),
  });
  const health = new HealthImplementation({ '': 'SERVING', [SERVICE_NAME]: 'SERVING' });
  const encoder = new SnapshotEncoder();
  const openStreams = new Set<{ close(error: ServiceError): void }>();
  options.telemetry?.watchRegistry(registry, () => openStreams.size);

  /** Checks a Watch or List call's credentials: the error to end it with (logged), if any. */
  const refusalOf = (call: ServerSurfaceCall): ServiceError | undefined => {
    try {
      auth.authenticate(call);
      return undefined;
    } catch (error) {
      const serviceError = toServiceError(error);
      refusals.refused(observedHost(call.getPeer()), serviceError, { method: call.getPath() });
      return serviceError;
    }
  };

  const register = (call: ServerDuplexStream<RegisterRequest, RegisterResponse>): void => {
    const peer = observedHost(call.getPeer());
    let lease: Lease | undefined;
    let unsubscribe: (() => void) | undefined;
    let finished = false;
    const finish = (reason: string): void => {
      if (finished) return;
      finished = true;
      openStreams.delete(stream);
      unsubscribe?.();
      lease?.leave(reason);
    };
    const stream = {
      close(error: ServiceError): void {
        finish(error.message);
        call.emit('error', { code: error.code, details: error.message });
      },
    };
    openStreams.add(stream);
    const refuse = (error: unknown): void => {
      const serviceError = toServiceError(error);
      refusals.refused(peer, serviceError, { method: call.getPath(), node: lease?.id });
      stream.close(serviceError);
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

    call.on('data', (request: RegisterRequest) => {
      if (finished) return;
      try {
        const kind = request.kind;
        if (!lease) {
          if (!rateLimiter.tryTake(peer)) {
            throw exhausted(
              `too many registrations from ${peer}: at most ${limits.registrationsPerSecond} a second ` +
                `(bursts of ${limits.registrationBurst})`,
            );
          }
          if (kind?.$case !== 'node') throw invalidMessage('the first message must describe the node');
          // Who may use the name comes before the costly checks (the descriptor set is parsed).
          validateName(kind.value.name, limits);
          const principal = auth.principalFor(caller, kind.value.name, peer);
          const routeKeys = validateNodeDescription(kind.value, limits);
          const host = kind.value.host || peer;
          validateHost(host, limits);
          const joined = registry.join(
            kind.value,
            host,
            () =>
              stream.close(
                new ServiceError(status.ABORTED, 'replaced by a newer registration of the same node'),
              ),
            principal,
            routeKeys,
          );
          lease = joined;
          const write = createSnapshotWriter(call as unknown as WritableCall<Buffer>, (snapshot) =>
            encoder.registerResponse(joined.id, snapshot),
          );
          unsubscribe = registry.subscribe(write);
          write(registry.snapshot());
        } else if (kind?.$case === 'state') {
          if (!stateChanges.tryTake(performance.now())) {
            throw exhausted(
              `too many state changes: at most ${limits.stateChangesPerSecond} a second ` +
                `(bursts of ${limits.stateChangeBurst})`,
            );
          }
          if (kind.value !== NodeState.NODE_STATE_SERVING && kind.value !== NodeState.NODE_STATE_DRAINING) {
            throw invalidMessage('state must be NODE_STATE_SERVING or NODE_STATE_DRAINING');
          }
          lease.setState(kind.value);
        } else {
          throw invalidMessage('only the first message may describe the node; later ones carry a state');
        }
      } catch (error) {
        refuse(error);
      }
    });
    call.on('end', () => {
      finish('closed by the node');
      call.end();
    });
    call.on('cancelled', () => finish('cancelled'));
    call.on('error', () => finish('stream error'));
  };

  const watch = (call: ServerWritableStream<WatchRequest, WatchResponse>): void => {
    const refusal = refusalOf(call);
    if (refusal) {
      call.emit('error', { code: refusal.code, details: refusal.message });
      return;
    }
    const write = createSnapshotWriter(call as unknown as WritableCall<Buffer>, (snapshot) =>
      encoder.watchResponse(snapshot),
    );
    const unsubscribe = registry.subscribe(write);
    const stream = {
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
    write(registry.snapshot());
  };

  const list = (call: ServerUnaryCall<ListRequest, ListResponse>, callback: sendUnaryData<ListResponse>) => {
    const refusal = refusalOf(call);
    if (refusal) callback({ code: refusal.code, details: refusal.message });
    else callback(null, { snapshot: registry.snapshot() });
  };

  const implementation: DistributorServiceServer = { register, watch, list };
  server.addService(PRE_ENCODED_DISTRIBUTOR_SERVICE, implementation);
  health.addToServer(server);
  addReflection(server, [SERVICE_NAME]);

  return {
    registry,
    listen: (host, port) => listen(server, host, port, options.credentials),
    async stop(graceMs = 5_000) {
      health.setStatus('', 'NOT_SERVING');
      health.setStatus(SERVICE_NAME, 'NOT_SERVING');
      const closing = new ServiceError(status.UNAVAILABLE, 'the distributor is shutting down');
      registry.unsubscribeAll();
      for (const stream of [...openStreams]) stream.close(closing);
      await shutdown(server, graceMs);
    },
  };
}

function exhausted(message: string): ServiceError {
  return new ServiceError(status.RESOURCE_EXHAUSTED, message);
}

function invalidMessage(message: string): ServiceError {
  return new ServiceError(status.INVALID_ARGUMENT, `invalid registration: ${message}`);
}

/** The address a peer connected from, as others can dial it: "::ffff:127.0.0.1:5000" → "127.0.0.1". */
export function observedHost(peer: string): string {
  const withoutPort = peer.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  return withoutPort.startsWith('::ffff:') && withoutPort.includes('.') ? withoutPort.slice(7) : withoutPort;
}
