import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createConnection } from 'mysql2/promise';
import { inject } from 'vitest';
import type { ShopService } from '../../../src/services/common/define-service.js';
import type { MysqlStoreOptions } from '../../../src/services/common/mysql-database-options.js';
import { parseMysqlUrl } from '../../../src/services/common/mysql-url.js';
import type { ServiceStore } from '../../../src/services/common/service-store.js';
import type { SqliteStoreOptions } from '../../../src/services/common/sqlite-database.js';
import { createTestDatabase } from '../../helpers/mysql.js';

/** A fresh store, with a side door to read its tables as they really are. */
export interface OpenedStore<Store> {
  readonly store: Store;
  /** Runs a read-only statement straight on the database, bypassing the store. */
  rawRows(sql: string, values?: unknown[]): Promise<Record<string, unknown>[]>;
  /** Runs a statement straight on the database, behind the store's back (to break things on purpose). */
  rawExec(sql: string, values?: unknown[]): Promise<void>;
  /** Opens one more store on the same database (another instance of the service); its owner closes it. */
  openAnother(): Store;
  /** Closes the store and deletes its database. */
  dispose(): Promise<void>;
  /** The database's URL on MySQL (for a connection of a test's own, holding a transaction open). */
  readonly url?: string;
}

/** One storage back end the same suite runs against. */
export interface Backend<Store> {
  readonly name: 'sqlite' | 'mysql';
  /** Why this back end cannot run here, or undefined when it can. */
  readonly skipReason: string | undefined;
  /** A title for `describe` that carries the skip reason, so a skipped run says why. */
  readonly title: string;
  /** A fresh store; `idempotency` applies to both back ends, the pool's options to MySQL only. */
  open(options?: Partial<MysqlStoreOptions> & SqliteStoreOptions): Promise<OpenedStore<Store>>;
}

/**
 * The back ends of one service: SQLite always (a temp file per store), MySQL when the global setup
 * found a server (a fresh database per store, so ids start at 1). Under CI=true the global setup
 * fails the run instead of letting MySQL skip.
 */
export function backendsOf<Store extends ServiceStore>(
  service: Pick<ShopService<Store>, 'name' | 'stores'>,
): Backend<Store>[] {
  const mysqlUrl = inject('mysqlUrl');
  const mysqlSkip = mysqlUrl ? undefined : 'MySQL unreachable here (see the global setup message)';
  return [
    {
      name: 'sqlite',
      skipReason: undefined,
      title: 'on SQLite',
      async open(options = {}) {
        const dir = await mkdtemp(join(tmpdir(), `shop-${service.name}-`));
        const file = join(dir, `${service.name}.sqlite`);
        const sqliteOptions = options.idempotency ? { idempotency: options.idempotency } : {};
        const store = service.stores.sqlite(file, sqliteOptions);
        return {
          store,
          async rawRows(sql, values = []) {
            const db = new Database(file, { readonly: true });
            try {
              return db.prepare(sql).all(...values) as Record<string, unknown>[];
            } finally {
              db.close();
            }
          },
          async rawExec(sql, values = []) {
            const db = new Database(file);
            try {
              if (values.length > 0) db.prepare(sql).run(...values);
              else db.exec(sql);
            } finally {
              db.close();
            }
          },
          openAnother: () => service.stores.sqlite(file, sqliteOptions),
          async dispose() {
            await store.close();
            await rm(dir, { recursive: true, force: true });
          },
        };
      },
    },
    {
      name: 'mysql',
      skipReason: mysqlSkip,
      title: mysqlSkip ? `on MySQL (skipped: ${mysqlSkip})` : 'on MySQL',
      async open(options = {}) {
        const database = await createTestDatabase(mysqlUrl);
        const storeOptions = { connection: parseMysqlUrl(database.url, 'test database'), ...options };
        const store = service.stores.mysql(storeOptions);
        return {
          store,
          url: database.url,
          async rawRows(sql, values = []) {
            const connection = await createConnection({ uri: database.url });
            try {
              const [rows] = await connection.query(sql, values);
              return rows as Record<string, unknown>[];
            } finally {
              await connection.end();
            }
          },
          async rawExec(sql, values = []) {
            const connection = await createConnection({ uri: database.url });
            try {
              await connection.query(sql, values);
            } finally {
              await connection.end();
            }
          },
          openAnother: () => service.stores.mysql(storeOptions),
          async dispose() {
            await store.close();
            await database.drop();
          },
        };
      },
    },
  ];
}
