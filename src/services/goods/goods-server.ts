import { silentLogger } from '../../common/logger.js';
import { GoodsServiceService } from '../../gen/services.js';
import {
  createServiceServer,
  type ServiceServer,
  type ServiceServerOptions,
} from '../common/service-server.js';
import { createGoodsHandlers } from './goods-handlers.js';
import type { GoodsStore } from './goods-store.js';

/** The fully qualified name of the goods service. */
export const GOODS_SERVICE_NAME = 'shop.v1.GoodsService';

/** Builds the goods server over a store, with reflection and health, without listening. */
export function createGoodsServer(options: ServiceServerOptions<GoodsStore>): ServiceServer {
  const log = options.log ?? silentLogger();
  return createServiceServer({
    ...options,
    log,
    serviceName: GOODS_SERVICE_NAME,
    definition: GoodsServiceService,
    implementation: createGoodsHandlers(options.store, log),
  });
}
