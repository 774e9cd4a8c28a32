import { GoodsServiceService } from '../../gen/services.js';
import { defineService } from '../common/define-service.js';
import { createGoodsHandlers } from './goods-handlers.js';
import type { GoodsStore } from './goods-store.js';
import { MysqlGoodsStore } from './mysql-goods-store.js';
import { SqliteGoodsStore } from './sqlite-goods-store.js';

/** The goods service: the catalogue of goods, on port 9010 by default. */
export const goodsService = defineService({
  name: 'goods',
  grpc: { name: 'shop.v1.GoodsService', definition: GoodsServiceService },
  port: { env: 'GOODS_PORT', default: 9010 },
  stores: {
    sqlite: (file, options): GoodsStore => new SqliteGoodsStore(file, options),
    mysql: (options): GoodsStore => new MysqlGoodsStore(options),
  },
  handlers: createGoodsHandlers,
});
