import { silentLogger } from '../../common/logger.js';
import { PurchasesServiceService } from '../../gen/services.js';
import {
  createServiceServer,
  type ServiceServer,
  type ServiceServerOptions,
} from '../common/service-server.js';
import { createPurchasesHandlers, type PurchasesHandlersOptions } from './purchases-handlers.js';
import type { PurchasesStore } from './purchases-store.js';

/** The fully qualified name of the purchases service. */
export const PURCHASES_SERVICE_NAME = 'shop.v1.PurchasesService';

/** Options of {@link createPurchasesServer}. */
export type PurchasesServerOptions = ServiceServerOptions<PurchasesStore> & PurchasesHandlersOptions;

/** Builds the purchases server over a store, with reflection and health, without listening. */
export function createPurchasesServer(options: PurchasesServerOptions): ServiceServer {
  const log = options.log ?? silentLogger();
  return createServiceServer({
    ...options,
    log,
    serviceName: PURCHASES_SERVICE_NAME,
    definition: PurchasesServiceService,
    implementation: createPurchasesHandlers(options.store, log, options),
  });
}
