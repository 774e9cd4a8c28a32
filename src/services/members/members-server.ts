import { silentLogger } from '../../common/logger.js';
import { MembersServiceService } from '../../gen/services.js';
import {
  createServiceServer,
  type ServiceServer,
  type ServiceServerOptions,
} from '../common/service-server.js';
import { createMembersHandlers, type MembersHandlersOptions } from './members-handlers.js';
import type { MembersStore } from './members-store.js';

/** The fully qualified name of the members service. */
export const MEMBERS_SERVICE_NAME = 'shop.v1.MembersService';

/** Options of {@link createMembersServer}. */
export type MembersServerOptions = ServiceServerOptions<MembersStore> & MembersHandlersOptions;

/** Builds the members server over a store, with reflection and health, without listening. */
export function createMembersServer(options: MembersServerOptions): ServiceServer {
  const log = options.log ?? silentLogger();
  return createServiceServer({
    ...options,
    log,
    serviceName: MEMBERS_SERVICE_NAME,
    definition: MembersServiceService,
    implementation: createMembersHandlers(options.store, log, options),
  });
}
