import { HealthImplementation, type ServingStatusMap } from 'grpc-health-check';

/** What grpc-health-check keeps of its Watch calls (private in its types). */
interface HealthWatchers {
  watchers: Map<string, Set<unknown>>;
  removeWatcher(service: string, watcher: unknown): void;
}

/**
 * grpc-health-check's standard grpc.health.v1.Health, except that a Watch call leaves nothing
 * behind once it ends. The library keeps a set of watchers per service name a Watch asked for
 * (any name: an unknown one is answered SERVICE_UNKNOWN and watched) and, when a call is
 * cancelled, takes its watcher out of the set but never the emptied set out of its map: Watch
 * calls for ever new names, each up to a request's size, grew the process without bound, long
 * after every one of them had ended. Here a name goes with its last watcher.
 */
export function createHealth(statuses: ServingStatusMap): HealthImplementation {
  const health = new HealthImplementation(statuses);
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
