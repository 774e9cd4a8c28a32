import { PurchasesServiceService } from '../../gen/services.js';
import { defineService } from '../common/define-service.js';
import { MysqlPurchasesStore } from './mysql-purchases-store.js';
import { createPurchasesHandlers } from './purchases-handlers.js';
import type { PurchasesStore } from './purchases-store.js';
import { SqlitePurchasesStore } from './sqlite-purchases-store.js';

/** The purchases service: who bought what, on port 9030 by default; its handler option is the clock. */
export const purchasesService = defineService({
  name: 'purchases',
  grpc: { name: 'shop.v1.PurchasesService', definition: PurchasesServiceService },
  port: { env: 'PURCHASES_PORT', default: 9030 },
  stores: {
    sqlite: (file, options): PurchasesStore => new SqlitePurchasesStore(file, options),
    mysql: (options): PurchasesStore => new MysqlPurchasesStore(options),
  },
  handlers: createPurchasesHandlers,
});
