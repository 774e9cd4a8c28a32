import type { ServiceSpec } from '../common/start-service.js';
import { MysqlPurchasesStore } from './mysql-purchases-store.js';
import { createPurchasesServer, PURCHASES_SERVICE_NAME } from './purchases-server.js';
import type { PurchasesStore } from './purchases-store.js';
import { SqlitePurchasesStore } from './sqlite-purchases-store.js';

/**
 * The purchases node and its stores. Its REST routes are the google.api.http options of
 * PurchasesService in proto/services.proto, sent with its descriptor set.
 */
export const purchasesSpec: ServiceSpec<PurchasesStore> = {
  name: 'purchases',
  serviceName: PURCHASES_SERVICE_NAME,
  openSqlite: (file, options) => new SqlitePurchasesStore(file, options),
  openMysql: (options) => new MysqlPurchasesStore(options),
  createServer: createPurchasesServer,
};
