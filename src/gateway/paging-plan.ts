import { type DescField, type DescMethod, type Registry, ScalarType } from '@bufbuild/protobuf';
import { WELL_KNOWN_ANY_TYPES } from './any-types.js';
import { ENVELOPE_ROOM } from './envelope.js';
import { rememberingLastAnswer } from './repeat-answer-memo.js';
import { compileResponseRenderer, type ResponseRenderer } from './response-renderer.js';
import { Wire, WireReader } from './wire-reader.js';

/** One page of a list rendered for the streamed whole list. */
export interface RenderedPage {
  /**
   * The page as the route's plain renderer makes it: {@link ENVELOPE_ROOM} free bytes, then
   * `,"results":[…]` and `}`. A list of one page is answered with exactly this, as before paging.
   */
  readonly rendered: Buffer;
  /** Where the list's elements start in `rendered` (just after its `[`); they end 2 bytes before its end. */
  readonly itemsStart: number;
  /** The next_page_token of the page, as its bytes; empty on the last page. */
  readonly nextPageToken: Buffer;
}

/**
 * How the gateway pages a route whose method pages in the style of AIP-158. Found from the
 * descriptors alone, like everything the gateway knows about a route (see {@link compilePagingPlan}).
 */
export interface PagingPlan {
  /** Renders a page for the streamed whole list. */
  readonly renderPage: (bytes: Buffer) => RenderedPage;
  /** Renders the answer to a REST request for one page: the route's fields, then `next_page_token`. */
  readonly renderOnePage: ResponseRenderer;
  /** Whether the REST request asked for one page: its request message sets page_size or page_token. */
  asksForOnePage(request: Buffer): boolean;
  /** The request of the page after a page: the first request with `page_token` set to its token. */
  withToken(request: Buffer, token: Buffer): Buffer;
}

/**
 * The paging plan of a route, or undefined when the route does not page. A route pages when its
 * method's request has `int32 page_size` and `string page_token`, its response has
 * `string next_page_token`, and the route shows exactly one response field, a repeated one: the
 * list. The REST answer is then the whole list, followed page by page; a REST request that gives
 * `page_size` or `page_token` gets that one page, with `next_page_token` after the list.
 */
export function compilePagingPlan(
  method: DescMethod,
  responseFields: readonly string[],
  types: Registry = WELL_KNOWN_ANY_TYPES,
): PagingPlan | undefined {
  const pageSize = method.input.fields.find((field) => field.name === 'page_size');
  const pageToken = method.input.fields.find((field) => field.name === 'page_token');
  const nextToken = method.output.fields.find((field) => field.name === 'next_page_token');
  const list = method.output.fields.find((field) => field.name === responseFields[0]);
  if (
    !isScalar(pageSize, ScalarType.INT32) ||
    !isScalar(pageToken, ScalarType.STRING) ||
    !isScalar(nextToken, ScalarType.STRING) ||
    responseFields.length !== 1 ||
    list?.fieldKind !== 'list'
  ) {
    return undefined;
  }
  const render = rememberingLastAnswer(compileResponseRenderer(method.output, responseFields, types));
  // The renderer writes `,"<list>":[` right after the envelope's room: the elements follow it.
  const itemsStart = ENVELOPE_ROOM + Buffer.byteLength(`,${JSON.stringify(list.name)}:[`);
  const nextTokenNumber = nextToken.number;
  const tokenTag = Buffer.from(varint((pageToken.number << 3) | Wire.LengthDelimited));
  const pagingFields = new Set([pageSize.number, pageToken.number]);
  return {
    renderPage: (bytes) => ({
      rendered: render(bytes),
      itemsStart,
      nextPageToken: lastStringField(bytes, nextTokenNumber),
    }),
    renderOnePage: rememberingLastAnswer(
      compileResponseRenderer(method.output, [...responseFields, nextToken.name], types),
    ),
    asksForOnePage: (request) => hasField(request, pagingFields),
    withToken: (request, token) =>
      // A field given again replaces the earlier value when the message is parsed.
      Buffer.concat([request, tokenTag, Buffer.from(varint(token.length)), token]),
  };
}

function isScalar(
  field: DescField | undefined,
  type: ScalarType,
): field is DescField & { fieldKind: 'scalar' } {
  return field?.fieldKind === 'scalar' && field.scalar === type && !field.oneof;
}

/** The value of the last occurrence of a top-level string field (the one parsing keeps), or empty. */
function lastStringField(bytes: Buffer, number: number): Buffer {
  const reader = new WireReader(bytes);
  let value = EMPTY;
  while (reader.pos < bytes.length) {
    const tag = reader.varint32();
    if (tag >>> 3 === number && (tag & 7) === Wire.LengthDelimited) {
      const end = reader.delimitedEnd();
      // A copy: the message's buffer is not the gateway's to keep.
      value = Buffer.from(bytes.subarray(reader.pos, end));
      reader.pos = end;
    } else {
      reader.skip(tag & 7, tag >>> 3);
    }
  }
  return value;
}

/** Whether a message sets one of these top-level fields. */
function hasField(bytes: Buffer, numbers: ReadonlySet<number>): boolean {
  const reader = new WireReader(bytes);
  while (reader.pos < bytes.length) {
    const tag = reader.varint32();
    if (numbers.has(tag >>> 3)) return true;
    reader.skip(tag & 7, tag >>> 3);
  }
  return false;
}

const EMPTY = Buffer.alloc(0);

function varint(value: number): number[] {
  const bytes: number[] = [];
  let rest = value >>> 0;
  while (rest >= 0x80) {
    bytes.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  bytes.push(rest);
  return bytes;
}
