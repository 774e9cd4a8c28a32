import type { Pool } from 'mysql2/promise';
import type { PoolStats } from './database-telemetry.js';

/**
 * The pool's occupancy, read from mysql2's pool (its connection lists are not public API: a
 * version that renames them reads as an empty pool rather than failing a scrape).
 */
export function poolStats(pool: Pool, max: number): PoolStats {
  const core = (pool as unknown as { pool?: Record<string, { length?: number } | undefined> }).pool ?? {};
  const all = core._allConnections?.length ?? 0;
  const idle = core._freeConnections?.length ?? 0;
  return { used: Math.max(0, all - idle), idle, waiting: core._connectionQueue?.length ?? 0, max };
}
