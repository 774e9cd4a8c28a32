import type { ServiceSpec } from '../common/start-service.js';
import { MysqlPurchasesStore } from './mysql-purchases-store.js';
import { createPurchasesServer, PURCHASES_SERVICE_NAME } from './purchases-server.js';
import type { PurchasesStore } from './purchases-store.js';
import { SqlitePurchasesStore } from './sqlite-purchases-store.js';

/**
 * The purchases node: the book's routes (POST shows no body fields so the REST answer stays the
 * seed's bare envelope, though gRPC returns the new id) and its stores.
 */
export const purchasesSpec: ServiceSpec<PurchasesStore> = {
  name: 'purchases',
  serviceName: PURCHASES_SERVICE_NAME,
  routes: [
    {
      httpMethod: 'POST',
      path: '/purchases',
      grpcMethod: `${PURCHASES_SERVICE_NAME}/CreatePurchase`,
      responseFields: [],
    },
    {
      httpMethod: 'GET',
      path: '/purchases',
      grpcMethod: `${PURCHASES_SERVICE_NAME}/ListPurchases`,
      responseFields: ['results'],
    },
  ],
  openSqlite: (file, options) => new SqlitePurchasesStore(file, options),
  openMysql: (options) => new MysqlPurchasesStore(options),
  createServer: createPurchasesServer,
};
