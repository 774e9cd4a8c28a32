import type { ServiceSpec } from '../common/start-service.js';
import { createGoodsServer, GOODS_SERVICE_NAME } from './goods-server.js';
import type { GoodsStore } from './goods-store.js';
import { MysqlGoodsStore } from './mysql-goods-store.js';
import { SqliteGoodsStore } from './sqlite-goods-store.js';

/**
 * The goods node: the routes it announces (the book's REST surface; POST shows no body fields so the
 * REST answer stays the seed's bare envelope, though gRPC returns the new id) and its stores.
 */
export const goodsSpec: ServiceSpec<GoodsStore> = {
  name: 'goods',
  serviceName: GOODS_SERVICE_NAME,
  routes: [
    {
      httpMethod: 'POST',
      path: '/goods',
      grpcMethod: `${GOODS_SERVICE_NAME}/CreateGoods`,
      responseFields: [],
    },
    {
      httpMethod: 'GET',
      path: '/goods',
      grpcMethod: `${GOODS_SERVICE_NAME}/ListGoods`,
      responseFields: ['results'],
    },
    {
      httpMethod: 'DELETE',
      path: '/goods',
      grpcMethod: `${GOODS_SERVICE_NAME}/DeleteGoods`,
      responseFields: [],
    },
  ],
  openSqlite: (file, options) => new SqliteGoodsStore(file, options),
  openMysql: (options) => new MysqlGoodsStore(options),
  createServer: createGoodsServer,
};
