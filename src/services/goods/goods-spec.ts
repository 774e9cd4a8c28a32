import type { ServiceSpec } from '../common/start-service.js';
import { createGoodsServer, GOODS_SERVICE_NAME } from './goods-server.js';
import type { GoodsStore } from './goods-store.js';
import { MysqlGoodsStore } from './mysql-goods-store.js';
import { SqliteGoodsStore } from './sqlite-goods-store.js';

/**
 * The goods node and its stores. Its REST routes are the google.api.http options of GoodsService in
 * proto/services.proto, sent with its descriptor set.
 */
export const goodsSpec: ServiceSpec<GoodsStore> = {
  name: 'goods',
  serviceName: GOODS_SERVICE_NAME,
  openSqlite: (file, options) => new SqliteGoodsStore(file, options),
  openMysql: (options) => new MysqlGoodsStore(options),
  createServer: createGoodsServer,
};
