import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { DEFAULT_TEST_MYSQL_URL, probeMysql } from './mysql.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The MariaDB/MySQL server URL the MySQL tests use, or '' when they must skip. */
    mysqlUrl: string;
  }
}

/**
 * Finds the MySQL server once for the whole run. Under CI=true a missing server fails the run;
 * elsewhere the MySQL tests skip and the reason is printed.
 */
export default async function setup(project: TestProject): Promise<void> {
  const url = process.env.MYSQL_URL || DEFAULT_TEST_MYSQL_URL;
  const problem = await probeMysql(url);
  if (problem && process.env.CI === 'true') {
    throw new Error(`MySQL is required when CI=true but ${redact(url)} is unreachable: ${problem}`);
  }
  if (problem) {
    process.stderr.write(`\n[test] MySQL tests will skip: ${redact(url)} is unreachable (${problem}).\n`);
  }
  project.provide('mysqlUrl', problem ? '' : url);
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}
