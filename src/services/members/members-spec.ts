import type { ServiceSpec } from '../common/start-service.js';
import { createMembersServer, MEMBERS_SERVICE_NAME } from './members-server.js';
import type { MembersStore } from './members-store.js';
import { MysqlMembersStore } from './mysql-members-store.js';
import { SqliteMembersStore } from './sqlite-members-store.js';

/**
 * The members node and its stores. Its REST routes are the google.api.http options of MembersService
 * in proto/services.proto, sent with its descriptor set.
 */
export const membersSpec: ServiceSpec<MembersStore> = {
  name: 'members',
  serviceName: MEMBERS_SERVICE_NAME,
  openSqlite: (file, options) => new SqliteMembersStore(file, options),
  openMysql: (options) => new MysqlMembersStore(options),
  createServer: createMembersServer,
};
