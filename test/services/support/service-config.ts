import type { ServiceConfig, StorageConfig } from '../../../src/services/common/service-config.js';

/** A service configuration for tests: 127.0.0.1, a port the OS chooses, quiet logs. */
export function testServiceConfig(distributor: string, storage: StorageConfig): ServiceConfig {
  return { host: '127.0.0.1', port: 0, distributor, advertiseHost: '', storage, logLevel: 'silent' };
}
