import type { ServiceSpec } from '../common/start-service.js';
import { createMembersServer, MEMBERS_SERVICE_NAME } from './members-server.js';
import type { MembersStore } from './members-store.js';
import { MysqlMembersStore } from './mysql-members-store.js';
import { SqliteMembersStore } from './sqlite-members-store.js';

/**
 * The members node: the book's routes (GET /members is sign-in and shows `userid`; POST shows no
 * body fields so the REST answer stays the seed's bare envelope) and its stores.
 */
export const membersSpec: ServiceSpec<MembersStore> = {
  name: 'members',
  serviceName: MEMBERS_SERVICE_NAME,
  routes: [
    {
      httpMethod: 'POST',
      path: '/members',
      grpcMethod: `${MEMBERS_SERVICE_NAME}/CreateMember`,
      responseFields: [],
    },
    {
      httpMethod: 'GET',
      path: '/members',
      grpcMethod: `${MEMBERS_SERVICE_NAME}/SignIn`,
      responseFields: ['userid'],
    },
    {
      httpMethod: 'DELETE',
      path: '/members',
      grpcMethod: `${MEMBERS_SERVICE_NAME}/DeleteMember`,
      responseFields: [],
    },
  ],
  openSqlite: (file, options) => new SqliteMembersStore(file, options),
  openMysql: (options) => new MysqlMembersStore(options),
  createServer: createMembersServer,
};
