import { Server, type ServerDuplexStream, type ServerWritableStream, status } from '@grpc/grpc-js';
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
  DistributorServiceService,
  NodeState,
  type RegisterRequest,
  type RegisterResponse,
  type WatchRequest,
  type WatchResponse,
} from '../gen/distributor.js';
import { type Lease, NodeRegistry } from './node-registry.js';
import { validateNodeDescription } from './node-validation.js';
import { createSnapshotWriter } from './snapshot-writer.js';

const SERVICE_NAME = 'shop.v1.DistributorService';

/** Options of {@link createDistributorServer}. */
export interface DistributorServerOptions {
  /** The registry to serve; a fresh one by default. */
  registry?: NodeRegistry;
  log?: Logger;
  /** How quickly a peer that vanished without closing its connection is dropped. */
  keepalive?: KeepaliveOptions;
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
 */
export function createDistributorServer(options: DistributorServerOptions = {}): DistributorServer {
  const log = options.log ?? silentLogger();
  const registry = options.registry ?? new NodeRegistry({ log });
  const server = new Server({
    ...keepaliveChannelOptions(options.keepalive ?? DEFAULT_KEEPALIVE),
    // A registration holds at most a 256 KiB descriptor set plus its routes.
    'grpc.max_receive_message_length': 1024 * 1024,
  });
  const health = new HealthImplementation({ '': 'SERVING', [SERVICE_NAME]: 'SERVING' });
  const openStreams = new Set<{ close(error: ServiceError): void }>();

  const register = (call: ServerDuplexStream<RegisterRequest, RegisterResponse>): void => {
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

    call.on('data', (request: RegisterRequest) => {
      if (finished) return;
      try {
        const kind = request.kind;
        if (!lease) {
          if (kind?.$case !== 'node') throw invalidMessage('the first message must describe the node');
          validateNodeDescription(kind.value);
          const joined = registry.join(kind.value, kind.value.host || observedHost(call.getPeer()), () =>
            stream.close(
              new ServiceError(status.ABORTED, 'replaced by a newer registration of the same node'),
            ),
          );
          lease = joined;
          const write = createSnapshotWriter(call, (snapshot) => ({ nodeId: joined.id, snapshot }));
          unsubscribe = registry.subscribe(write);
          write(registry.snapshot());
        } else if (kind?.$case === 'state') {
          if (kind.value !== NodeState.NODE_STATE_SERVING && kind.value !== NodeState.NODE_STATE_DRAINING) {
            throw invalidMessage('state must be NODE_STATE_SERVING or NODE_STATE_DRAINING');
          }
          lease.setState(kind.value);
        } else {
          throw invalidMessage('only the first message may describe the node; later ones carry a state');
        }
      } catch (error) {
        const serviceError = toServiceError(error);
        log.warn({ event: 'refused', peer: call.getPeer(), node: lease?.id }, serviceError.message);
        stream.close(serviceError);
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
    const write = createSnapshotWriter(call, (snapshot) => ({ snapshot }));
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

  const implementation: DistributorServiceServer = {
    register,
    watch,
    list: (_call, callback) => callback(null, { snapshot: registry.snapshot() }),
  };
  server.addService(DistributorServiceService, implementation);
  health.addToServer(server);
  addReflection(server, [SERVICE_NAME]);

  return {
    registry,
    listen: (host, port) => listen(server, host, port),
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

function invalidMessage(message: string): ServiceError {
  return new ServiceError(status.INVALID_ARGUMENT, `invalid registration: ${message}`);
}

/** The address a peer connected from, as others can dial it: "::ffff:127.0.0.1:5000" → "127.0.0.1". */
export function observedHost(peer: string): string {
  const withoutPort = peer.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  return withoutPort.startsWith('::ffff:') && withoutPort.includes('.') ? withoutPort.slice(7) : withoutPort;
}
