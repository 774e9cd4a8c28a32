import { randomBytes } from 'node:crypto';
import { createConnection } from 'mysql2/promise';

/** The server this machine's toolchain notes describe: local MariaDB, root, no password. */
export const DEFAULT_TEST_MYSQL_URL = 'mysql://root@127.0.0.1:3306/test';

/** Resolves with why the server cannot be used, or undefined when it answers. */
export async function probeMysql(url: string): Promise<string | undefined> {
  try {
    const connection = await createConnection({ uri: url, connectTimeout: 3_000 });
    await connection.query('SELECT 1');
    await connection.end();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** A database made for one test file, so that every file starts empty and ids count from 1. */
export interface TestDatabase {
  readonly url: string;
  drop(): Promise<void>;
}

/** Creates a fresh, uniquely named database on the server of `serverUrl`. */
export async function createTestDatabase(serverUrl: string): Promise<TestDatabase> {
  const name = `shop_test_${randomBytes(6).toString('hex')}`;
  const admin = await createConnection({ uri: serverUrl });
  await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const connection = await createConnection({ uri: serverUrl });
      await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await connection.end();
    },
  };
}
