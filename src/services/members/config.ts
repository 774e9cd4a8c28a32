import {
  loadServiceConfig,
  type ServiceConfig,
  type ServiceConfigSpec,
  serviceUsage,
} from '../common/service-config.js';

export const MEMBERS_CONFIG: ServiceConfigSpec = {
  name: 'members',
  portEnv: 'MEMBERS_PORT',
  defaultPort: 9020,
};

/** The usage text printed with a configuration error. */
export const MEMBERS_USAGE = serviceUsage(MEMBERS_CONFIG);

/** Reads the members service's flags and environment; throws ConfigError on a bad value. */
export function loadMembersConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ServiceConfig {
  return loadServiceConfig(MEMBERS_CONFIG, argv, env);
}
