import { MembersServiceService } from '../../gen/services.js';
import { defineService } from '../common/define-service.js';
import { createMembersHandlers } from './members-handlers.js';
import type { MembersStore } from './members-store.js';
import { MysqlMembersStore } from './mysql-members-store.js';
import { SqliteMembersStore } from './sqlite-members-store.js';

/**
 * The members service: accounts and sign-in, on port 9020 by default. Its handler options are the
 * password hashing parameters and limits (members-handlers.ts).
 */
export const membersService = defineService({
  name: 'members',
  grpc: { name: 'shop.v1.MembersService', definition: MembersServiceService },
  port: { env: 'MEMBERS_PORT', default: 9020 },
  stores: {
    sqlite: (file, options): MembersStore => new SqliteMembersStore(file, options),
    mysql: (options): MembersStore => new MysqlMembersStore(options),
  },
  handlers: createMembersHandlers,
});
