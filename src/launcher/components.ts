import { oneOf, type SettingsTable, setting } from '../common/settings.js';
import { DISTRIBUTOR_SETTINGS } from '../distributor/config.js';
import { GATEWAY_SETTINGS } from '../gateway/config.js';
import { serviceSettings } from '../services/common/service-config.js';
import { GOODS_CONFIG } from '../services/goods/config.js';
import { MEMBERS_CONFIG } from '../services/members/config.js';
import { PURCHASES_CONFIG } from '../services/purchases/config.js';

/** One component of the shop: its process entry (relative to this folder) and its settings. */
export interface ShopComponent {
  readonly name: string;
  /** The compiled entry point, relative to src/launcher (dist/launcher once built). */
  readonly entry: string;
  readonly settings: SettingsTable;
}

/** The shop's components in start order: the distributor first, the gateway last. */
export const SHOP_COMPONENTS: readonly ShopComponent[] = [
  { name: 'distributor', entry: '../distributor/main.js', settings: DISTRIBUTOR_SETTINGS },
  { name: 'goods', entry: '../services/goods/main.js', settings: serviceSettings(GOODS_CONFIG) },
  { name: 'members', entry: '../services/members/main.js', settings: serviceSettings(MEMBERS_CONFIG) },
  { name: 'purchases', entry: '../services/purchases/main.js', settings: serviceSettings(PURCHASES_CONFIG) },
  { name: 'gateway', entry: '../gateway/main.js', settings: GATEWAY_SETTINGS },
];

/** The launcher's own settings (`npm start`); every other variable passes through to the components. */
export const LAUNCHER_SETTINGS = {
  logFormat: setting({
    env: 'LOG_FORMAT',
    default: 'pretty',
    help: "`npm start`: pretty prints readable lines; json keeps the components' JSON log lines as they are",
    parse: oneOf(['pretty', 'json'] as const),
  }),
} as const;
