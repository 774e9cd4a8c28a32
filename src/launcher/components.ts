import { oneOf, type SettingsTable, setting } from '../common/settings.js';
import { DISTRIBUTOR_SETTINGS } from '../distributor/config.js';
import { GATEWAY_SETTINGS } from '../gateway/config.js';
import type { AnyShopService } from '../services/common/define-service.js';
import { DATA_DIR_SETTING, serviceSettings } from '../services/common/service-config.js';
import { SHOP_SERVICES } from '../services/service-list.js';

/** One component of the shop: its process entry (relative to this folder) and its settings. */
export interface ShopComponent {
  readonly name: string;
  /** The compiled entry point, relative to src/launcher (dist/launcher once built). */
  readonly entry: string;
  readonly settings: SettingsTable;
}

/**
 * The components of a shop made of `services` in start order: the distributor first, then the
 * services (each runs its folder's main.js), the gateway last.
 */
export function shopComponents(services: readonly AnyShopService[]): readonly ShopComponent[] {
  return [
    { name: 'distributor', entry: '../distributor/main.js', settings: DISTRIBUTOR_SETTINGS },
    ...services.map((service) => ({
      name: service.name,
      entry: `../services/${service.name}/main.js`,
      settings: serviceSettings(service),
    })),
    { name: 'gateway', entry: '../gateway/main.js', settings: GATEWAY_SETTINGS },
  ];
}

/** The shop's components: those of src/services/service-list.ts. */
export const SHOP_COMPONENTS = shopComponents(SHOP_SERVICES);

/** The launcher's own settings (`npm start`); every other variable passes through to the components. */
export const LAUNCHER_SETTINGS = {
  logFormat: setting({
    env: 'LOG_FORMAT',
    default: 'pretty',
    help: "`npm start`: pretty prints readable lines; json makes every line one JSON record after its `[name]` prefix (`sed 's/^\\[[^]]*\\] //'` takes it off): the components' log lines as the same JSON (see Logs), the launcher's own and what a component printed outside its logger made like them (`source` says which; every line names its `component`); run it as `npm start -s`, or npm's own `> grpc-shop@… start` lines come first, unprefixed and not JSON",
    parse: oneOf(['pretty', 'json'] as const),
  }),
  /** Read as the services read it: the launcher keeps the run's registry-token there. */
  dataDir: DATA_DIR_SETTING,
} as const;
