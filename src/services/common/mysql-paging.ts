import type { ExecuteValues, RowDataPacket } from 'mysql2/promise';
import type { TraceSpan } from '../../common/trace-span.js';
import type { MysqlDatabase } from './mysql-database.js';
import type { StoredPage } from './paging.js';
import type { PageReader } from './sql-executor.js';

/**
 * Keyset pages on MySQL/InnoDB that skip no row written while a caller pages.
 *
 * InnoDB hands out an AUTO_INCREMENT id at INSERT, but the row becomes visible at COMMIT, and a
 * keyed write's transaction (claim, write, record, COMMIT) spans several round trips. So a page's
 * consistent read may list id N+1 while N is still uncommitted; its token then names an id past N,
 * and N, committed a moment later, would never be listed to that caller. (SQLite runs one writer at
 * a time: its commit order is id order, and it needs none of this.)
 *
 * Locking reads would wait for such rows, but a transaction whose client died before its COMMIT
 * holds its locks on the server until the session times out (wait_timeout, 300 s): every page over
 * its row would wait out the lock timeout and fail. So instead:
 *
 * 1. The page is read as always (a consistent read). If its ids run without a gap from
 *    afterId + 1 to its last id, no uncommitted row can sit among them: that is the page, at no
 *    extra cost.
 * 2. Otherwise the ids of that range are read again at READ UNCOMMITTED, on the same connection. An
 *    id found there and not on the page was written and not committed when the page was read (or
 *    committed since): "in flight". (A row being deleted is missing from that read, which is
 *    harmless: only ids the page lacks matter.)
 * 3. The page ends before the first id in flight: its token names its last row before it, so the
 *    next page starts below that id and lists it once committed (or not at all if rolled back).
 * 4. If no row of the page comes before it, the page is read again after a short wait, for at most
 *    IN_FLIGHT_WAIT_MS in all; then the page is answered as read, past the id in flight (which that
 *    caller will not see if it commits later). An empty page instead would be "no data" on the
 *    first page, and an empty page with a token would have callers loop; a transaction that never
 *    commits (its client gone) must cost a page that bounded wait, not its listing.
 *
 * What this cannot see: an id handed out whose row the server has not put into the index yet,
 * a window of microseconds inside one INSERT statement.
 */

/** How long, in all, a page whose first row lies past an id in flight waits for it (see above). */
export const IN_FLIGHT_WAIT_MS = 100;
/** The first wait before a page is read again; each next one doubles, up to what is left. */
const FIRST_RETRY_MS = 2;

/** What one list's page needs to be read on MySQL. */
export interface MysqlPageRead<Row extends { readonly id: number }> {
  readonly afterId: number;
  /** The page's main statement, naming the operation in metrics and traces. */
  readonly statement: string;
  /** Reads the page (a consistent read, then takePage) on the reader's connection. */
  read(reader: PageReader): Promise<StoredPage<Row>>;
  /** A SELECT of `id` of the list's rows in afterId < id <= lastId, given its values. */
  readonly idsSql: string;
  idsValues(afterId: number, lastId: number): ExecuteValues;
}

interface IdRow extends RowDataPacket {
  id: number;
}

/**
 * One page that lists no id past one still in flight below it (see above), but for the bounded
 * wait: past IN_FLIGHT_WAIT_MS, a page none of whose rows comes before such an id is answered as read.
 */
export async function readPageHoldingBackInFlight<Row extends { readonly id: number }>(
  db: MysqlDatabase,
  page: MysqlPageRead<Row>,
  parent?: TraceSpan,
): Promise<StoredPage<Row>> {
  const started = performance.now();
  const readOnce = () =>
    db.read(
      page.statement,
      async (reader) => holdBackInFlight(reader, page, await page.read(reader)),
      parent,
    );
  let { stored, blocked } = await readOnce();
  let wait = FIRST_RETRY_MS;
  while (blocked) {
    const left = IN_FLIGHT_WAIT_MS - (performance.now() - started);
    if (left <= 0) break;
    await new Promise((resolve) => setTimeout(resolve, Math.min(wait, left)));
    wait *= 2;
    try {
      ({ stored, blocked } = await readOnce());
    } catch {
      // A read again that fails (its timeout, a connection lost) loses nothing: the page read
      // before is answered, as it would be once the wait is over.
      break;
    }
  }
  return stored;
}

/** Whether the page's ids are afterId + 1, afterId + 2, ... with none missing. */
export function runsWithoutGap(afterId: number, rows: readonly { readonly id: number }[]): boolean {
  // Ids are unique and ascending: they have no gap exactly when the last is afterId + their count.
  const last = rows.at(-1);
  return last === undefined || last.id === afterId + rows.length;
}

async function holdBackInFlight<Row extends { readonly id: number }>(
  reader: PageReader,
  page: MysqlPageRead<Row>,
  stored: StoredPage<Row>,
): Promise<{ stored: StoredPage<Row>; blocked: boolean }> {
  const unchanged = { stored, blocked: false };
  const last = stored.rows.at(-1);
  if (!last || runsWithoutGap(page.afterId, stored.rows)) return unchanged;
  const written = await reader.selectUncommitted<IdRow>(page.idsSql, page.idsValues(page.afterId, last.id));
  const listed = new Set(stored.rows.map((row) => row.id));
  let inFlight: number | undefined;
  for (const { id } of written) {
    if (!listed.has(id) && (inFlight === undefined || id < inFlight)) inFlight = id;
  }
  if (inFlight === undefined) return unchanged;
  const before = stored.rows.filter((row) => row.id < inFlight);
  const lastBefore = before.at(-1);
  if (!lastBefore) return { stored, blocked: true };
  return { stored: { rows: before, nextAfterId: lastBefore.id }, blocked: false };
}
