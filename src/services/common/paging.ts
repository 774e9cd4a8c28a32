import { invalidArgument } from '../../common/service-error.js';

/**
 * Paging of the list methods, in the style of Google's AIP-158 (see proto/services.proto): keyset
 * pages in id order, an opaque token naming the last id of the page before.
 *
 * Why keyset rather than offsets: a row added or deleted while a caller pages shifts every offset
 * after it, so an offset page may list a row twice or skip one; "the rows after id N" never does,
 * and the database reads it from the primary key or the (userid, id) index without counting the
 * rows before it.
 */

/** The page size of a request that asks for none (page_size 0 or absent). */
export const DEFAULT_PAGE_SIZE = 1_000;
/** The largest page: a larger page_size is taken as this. */
export const MAX_PAGE_SIZE = 1_000;
/**
 * A page stops taking rows once the text of those it holds reaches this many bytes, so a page of the
 * largest goods (64 KiB descriptions) stays near 1 MiB: far below the 4 MiB gRPC messages are
 * limited to, and little memory in the service and the gateway.
 */
export const PAGE_TEXT_BYTES = 1024 * 1024;

/** Which page a store is asked for. */
export interface PageQuery {
  /** Rows with a larger id than this; 0 for the first page. */
  readonly afterId: number;
  /** The most rows of the page. */
  readonly size: number;
}

/** One page as a store read it. */
export interface StoredPage<Row> {
  readonly rows: Row[];
  /** The `afterId` of the next page, or undefined when no row follows this page. */
  readonly nextAfterId: number | undefined;
}

/** What a list request says about paging (the generated request types carry these two fields). */
export interface PageFields {
  pageSize?: number | undefined;
  pageToken?: string | undefined;
}

/**
 * The page a request asks for. `scope` names the list a token belongs to ("goods",
 * "purchases/7"): a token of another list, or one that was never made, is INVALID_ARGUMENT, as
 * AIP-158 asks of a token whose request does not match.
 */
export function pageQuery(request: PageFields, scope: string): PageQuery {
  const requested = request.pageSize ?? 0;
  if (!Number.isInteger(requested) || requested < 0) {
    throw invalidArgument('page_size must not be negative');
  }
  const size = requested === 0 ? DEFAULT_PAGE_SIZE : Math.min(requested, MAX_PAGE_SIZE);
  const token = request.pageToken ?? '';
  return { afterId: token === '' ? 0 : decodePageToken(token, scope), size };
}

/** Whether a query is for the first page (where an empty list is the book's "no data"). */
export function isFirstPage(query: PageQuery): boolean {
  return query.afterId === 0;
}

/** The next_page_token of a page: empty on the last page. */
export function nextPageToken(page: StoredPage<unknown>, scope: string): string {
  if (page.nextAfterId === undefined) return '';
  return Buffer.from(`${scope}/${page.nextAfterId}`, 'utf8').toString('base64url');
}

const LAST_ID = /^[1-9]\d{0,9}$/;
const MAX_ID = 2 ** 31 - 1;

function decodePageToken(token: string, scope: string): number {
  // Only what nextPageToken makes is accepted: canonical base64url of "<scope>/<id>".
  const text = Buffer.from(token, 'base64url').toString('utf8');
  const prefix = `${scope}/`;
  const id = text.slice(prefix.length);
  if (
    !text.startsWith(prefix) ||
    !LAST_ID.test(id) ||
    Number(id) > MAX_ID ||
    Buffer.from(text, 'utf8').toString('base64url') !== token
  ) {
    throw invalidArgument('page_token is not a token of this list');
  }
  return Number(id);
}

/**
 * Takes the rows of one page from rows in id order (an array, or a database cursor that stops when
 * the loop leaves it): at most `size`, and no more once the text taken reaches `maxBytes` (the row
 * that crosses it is kept, so a page always holds at least one row). Give it one row more than the
 * page may hold, so that whether more follow is known without another query.
 */
export function takePage<Row extends { readonly id: number }>(
  rows: Iterable<Row>,
  size: number,
  maxBytes = Number.POSITIVE_INFINITY,
  bytesOf: (row: Row) => number = () => 0,
): StoredPage<Row> {
  const taken: Row[] = [];
  let bytes = 0;
  for (const row of rows) {
    const last = taken.at(-1);
    if (last && (taken.length >= size || bytes >= maxBytes)) return { rows: taken, nextAfterId: last.id };
    taken.push(row);
    bytes += bytesOf(row);
  }
  return { rows: taken, nextAfterId: undefined };
}
