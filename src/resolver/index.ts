/**
 * `distributor:///` for any grpc-js client: see {@link registerDistributorResolver}.
 *
 * @packageDocumentation
 */

export { RegistryWatcher, type RegistryWatcherOptions } from '../registry-client/registry-watcher.js';
export {
  DISTRIBUTOR_SCHEME,
  type DistributorResolverOptions,
  type DistributorResolverRegistration,
  endpointsFor,
  registerDistributorResolver,
} from './distributor-resolver.js';
