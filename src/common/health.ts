import { type ServerUnaryCall, type ServerWritableStream, type sendUnaryData, status } from '@grpc/grpc-js';
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
 * Watch calls open at once in one process, by default. A Watch never ends by itself and needs no
 * credentials: without a bound, one connection opened some 18,000 of them before Node's own limit
 * closed it, and the process grew by 150 MB (found by probing). A load balancer or a channel with
 * health checking keeps one per connection.
 */
export const MAX_HEALTH_WATCHES = 1024;

/** The longest service name a Watch may watch: a fully qualified gRPC service name is far shorter. */
export const MAX_WATCHED_NAME_LENGTH = 1024;

/**
 * grpc-health-check's standard grpc.health.v1.Health, with its Watch calls bounded (see
 * {@link MAX_HEALTH_WATCHES}) and two faults of the library mended:
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
export function createHealth(
  statuses: ServingStatusMap,
  { maxWatches = MAX_HEALTH_WATCHES }: { maxWatches?: number } = {},
): HealthImplementation {
  const health = new HealthImplementation(statuses);
  const openWatches: OpenWatches = { calls: new Set(), endedWith: undefined };
  openWatchesOf.set(health, openWatches);
  const addToServer = health.addToServer.bind(health);
  health.addToServer = (server: HealthServer) => {
    const bounded: HealthServer = {
      addService(definition, implementation) {
        type Handler = (typeof implementation)[string];
        const check = implementation.check as unknown as CheckHandler | undefined;
        const watch = implementation.watch as unknown as WatchHandler | undefined;
        server.addService(definition, {
          ...implementation,
          ...(check ? { check: boundedCheck(check) as unknown as Handler } : {}),
          ...(watch ? { watch: boundedWatch(watch, maxWatches, openWatches) as unknown as Handler } : {}),
        });
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

/** The Watch calls open on a health service made by {@link createHealth}. */
interface OpenWatches {
  readonly calls: Set<WatchCall>;
  /** Set by {@link endHealthWatches}: the details every later Watch call is ended with at once. */
  endedWith: string | undefined;
}

/** The Watch calls open on each health service made by {@link createHealth}. */
const openWatchesOf = new WeakMap<HealthImplementation, OpenWatches>();

/**
 * Ends every Watch call open on `health` with UNAVAILABLE and `details`, after the statuses already
 * written to it: for a server that stops, once its health says NOT_SERVING. A Watch never ends by
 * itself, so one held open (a load balancer's, a monitoring probe's: health needs no credentials)
 * would otherwise hold the server's stop for its whole grace, as a call in flight would. A Watch
 * that starts later is ended so at once.
 */
export function endHealthWatches(health: HealthImplementation, details: string): void {
  const open = openWatchesOf.get(health);
  if (!open) return;
  // A Watch whose HEADERS came before the stop's GOAWAY and whose request comes after this runs
  // its handler later: ended then too, else it held the stop for its whole grace.
  open.endedWith = details;
  const calls = [...open.calls];
  open.calls.clear();
  // Nobody is left to tell: later statuses must not be written to the calls ended here.
  (health as unknown as Partial<HealthWatchers>).watchers?.clear();
  for (const call of calls) call.emit('error', { code: status.UNAVAILABLE, details });
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

type WatchCall = ServerWritableStream<{ service?: string }, unknown>;
type WatchHandler = (call: WatchCall) => void;

/**
 * The library's Watch, for names of at most {@link MAX_WATCHED_NAME_LENGTH} characters and at most
 * `maxWatches` calls open at once: past either, the call ends at once (INVALID_ARGUMENT,
 * RESOURCE_EXHAUSTED) instead of being held for ever.
 */
function boundedWatch(watch: WatchHandler, maxWatches: number, openWatches: OpenWatches): WatchHandler {
  let open = 0;
  return (call) => {
    if (openWatches.endedWith !== undefined) {
      call.emit('error', { code: status.UNAVAILABLE, details: openWatches.endedWith });
      return;
    }
    const name = call.request?.service ?? '';
    if (name.length > MAX_WATCHED_NAME_LENGTH) {
      call.emit('error', {
        code: status.INVALID_ARGUMENT,
        details: `service name longer than ${MAX_WATCHED_NAME_LENGTH} characters`,
      });
      return;
    }
    if (open >= maxWatches) {
      call.emit('error', {
        code: status.RESOURCE_EXHAUSTED,
        details: `${maxWatches} health Watch calls are open: use Check, or close one`,
      });
      return;
    }
    open++;
    openWatches.calls.add(call);
    let counted = true;
    const release = (): void => {
      if (!counted) return;
      counted = false;
      open--;
      openWatches.calls.delete(call);
    };
    call.once('cancelled', release);
    call.once('close', release);
    call.once('finish', release);
    watch(call);
  };
}

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
        // A function, not a string: in a replacement string "$&" and its kind are patterns, and a
        // name of them made the message the whole name over and over (128 times at most).
        callback({ ...error, details: error.details.replace(name, () => cut) }, ...rest);
      } else {
        callback(error, ...rest);
      }
    });
}
