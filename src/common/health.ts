import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatusMap } from 'grpc-health-check';

/** What grpc-health-check keeps of its Watch calls (private in its types). */
interface HealthWatchers {
  watchers: Map<string, Set<unknown>>;
  removeWatcher(service: string, watcher: unknown): void;
}

/**
 * The most characters of an unknown service name a Check's NOT_FOUND message repeats: the library
 * puts the whole name in it, and a status message travels in an HTTP/2 header block, which a
 * grpc-js client takes up to 64 KiB of: a longer one never reached it, and its call waited for its
 * deadline (for ever without one).
 */
export const MAX_NAME_IN_CHECK_MESSAGE = 256;

/**
 * grpc-health-check's standard grpc.health.v1.Health, with two faults of the library mended:
 *
 * - A Watch call leaves nothing behind once it ends. The library keeps a set of watchers per
 *   service name a Watch asked for (any name: an unknown one is answered SERVICE_UNKNOWN and
 *   watched) and, when a call is cancelled, takes its watcher out of the set but never the emptied
 *   set out of its map: Watch calls for ever new names, each up to a request's size, grew the
 *   process without bound, long after every one of them had ended. Here a name goes with its last
 *   watcher.
 * - A Check of an unknown name is answered NOT_FOUND with at most
 *   {@link MAX_NAME_IN_CHECK_MESSAGE} characters of the name in its message, so that the answer
 *   always reaches the caller.
 */
export function createHealth(statuses: ServingStatusMap): HealthImplementation {
  const health = new HealthImplementation(statuses);
  const addToServer = health.addToServer.bind(health);
  health.addToServer = (server: HealthServer) => {
    const bounded: HealthServer = {
      addService(definition, implementation) {
        const check = implementation.check as unknown as CheckHandler | undefined;
        const mended = check && (boundedCheck(check) as unknown as (typeof implementation)[string]);
        server.addService(definition, mended ? { ...implementation, check: mended } : implementation);
      },
    };
    addToServer(bounded);
  };
  const inside = health as unknown as Partial<HealthWatchers>;
  const { watchers, removeWatcher } = inside;
  // A library version that keeps its watchers otherwise is left as it is.
  if (!(watchers instanceof Map) || typeof removeWatcher !== 'function') return health;
  inside.removeWatcher = (service, watcher) => {
    removeWatcher.call(health, service, watcher);
    if (watchers.get(service)?.size === 0) watchers.delete(service);
  };
  return health;
}

/** How many service names have a Watch call open (tests look). */
export function watchedNames(health: HealthImplementation): number {
  const { watchers } = health as unknown as Partial<HealthWatchers>;
  return watchers instanceof Map ? watchers.size : 0;
}

/** A server as grpc-health-check adds itself to one. */
type HealthServer = Parameters<HealthImplementation['addToServer']>[0];

type CheckHandler = (
  call: ServerUnaryCall<{ service?: string }, unknown>,
  callback: sendUnaryData<unknown>,
) => void;

/** The library's Check, its refusal of an unknown name cut to a message any client takes. */
function boundedCheck(check: CheckHandler): CheckHandler {
  return (call, callback) =>
    check(call, (error, ...rest) => {
      const name = call.request?.service;
      if (
        error?.details !== undefined &&
        typeof name === 'string' &&
        name.length > MAX_NAME_IN_CHECK_MESSAGE &&
        error.details.includes(name)
      ) {
        const cut = `${[...name].slice(0, MAX_NAME_IN_CHECK_MESSAGE).join('')}…`;
        callback({ ...error, details: error.details.replace(name, cut) }, ...rest);
      } else {
        callback(error, ...rest);
      }
    });
}
