import {
  loadServiceConfig,
  type ServiceConfig,
  type ServiceConfigSpec,
  serviceUsage,
} from '../common/service-config.js';

export const GOODS_CONFIG: ServiceConfigSpec = { name: 'goods', portEnv: 'GOODS_PORT', defaultPort: 9010 };

/** The usage text printed with a configuration error. */
export const GOODS_USAGE = serviceUsage(GOODS_CONFIG);

/** Reads the goods service's flags and environment; throws ConfigError on a bad value. */
export function loadGoodsConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ServiceConfig {
  return loadServiceConfig(GOODS_CONFIG, argv, env);
}
