/**
 * `distributor:///` for any grpc-js client: see {@link registerDistributorResolver}.
 *
 * @packageDocumentation
 */

// A distributor:/// channel made with these options resolves through the distributor even with a
// proxy in the environment, which grpc-js would otherwise send the whole channel to.
export { channelOptionsFor } from '../common/proxy-choice.js';
// mTLS for the Watch and for the calls, as the README shows: a project that installs the package
// cannot import src/common/tls.ts (the package exports this entry alone).
export {
  type ChannelTlsOptions,
  channelCredentials,
  secureNamingChannelOptions,
  type TlsFilePaths,
  type TlsFiles,
} from '../common/tls.js';
export { RegistryWatcher, type RegistryWatcherOptions } from '../registry-client/registry-watcher.js';
export {
  DISTRIBUTOR_SCHEME,
  type DistributorResolverOptions,
  type DistributorResolverRegistration,
  endpointsFor,
  registerDistributorResolver,
} from './distributor-resolver.js';
