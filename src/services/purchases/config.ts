import {
  loadServiceConfig,
  type ServiceConfig,
  type ServiceConfigSpec,
  serviceUsage,
} from '../common/service-config.js';

export const PURCHASES_CONFIG: ServiceConfigSpec = {
  name: 'purchases',
  portEnv: 'PURCHASES_PORT',
  defaultPort: 9030,
};

/** The usage text printed with a configuration error. */
export const PURCHASES_USAGE = serviceUsage(PURCHASES_CONFIG);

/** Reads the purchases service's flags and environment; throws ConfigError on a bad value. */
export function loadPurchasesConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ServiceConfig {
  return loadServiceConfig(PURCHASES_CONFIG, argv, env);
}
