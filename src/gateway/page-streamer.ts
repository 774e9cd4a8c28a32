import type { ServerResponse } from 'node:http';
import { type ClientUnaryCall, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import type { Logger } from '../common/logger.js';
import type { CallPlan } from './call-plan.js';
import { errorBody, successBody } from './envelope.js';
import { type GatewayError, gatewayErrors } from './gateway-error.js';
import type { InstancePool } from './instance-pool.js';
import type { PagingPlan, RenderedPage } from './paging-plan.js';
import type { Instance } from './route-table.js';
import { SLICE_BYTES } from './sliced-write.js';

/** The part of a gateway request the streamer works with. */
export interface PagedExchange {
  readonly response: ServerResponse;
  readonly key: number;
  /** The request's id, in log lines. */
  readonly requestId?: string | undefined;
  /** The metadata of every page's call (request id, trace context); none by default. */
  readonly metadata?: Metadata;
  /** The deadline of the first page's call. */
  readonly deadline: number;
  /** The upstream call running; the gateway cancels it when the client leaves. */
  call: ClientUnaryCall | undefined;
  /** The client has left: nobody to answer. */
  readonly gone: boolean;
  /** Set when the gateway cuts the answer short after its status was sent (a later page failed). */
  cutShort?: string | undefined;
  /** Set when the gateway closes the connection of a client that took nothing of the answer for too long. */
  clientStoppedReading?: boolean;
}

/** What the streamer needs of the gateway, so that its answers are the gateway's own. */
export interface PageStreamerOptions<E extends PagedExchange> {
  readonly pool: InstancePool;
  readonly log: Logger;
  /** The deadline of each page's call after the first, in ms. */
  readonly deadlineMs: number;
  /**
   * How long a client may take nothing of a streamed list before the gateway gives up on it, in ms
   * (`--unread-answer-timeout-ms`, as for any answer). Not the deadline: once the kernel's socket
   * buffers hold a few MB of a long list, a write's turn comes only when a third or so of its send
   * buffer has drained, which takes a client reading steadily at 100 to 300 KiB/s longer than 5 s.
   */
  readonly unreadAnswerTimeoutMs: number;
  /** Answers with a whole body, as every unpaged answer is. */
  answer(exchange: E, httpStatus: number, body: Buffer): void;
  /** Answers a failed call, as every failed call is (the status table, logging). */
  answerStatus(exchange: E, instance: Instance, error: ServiceError): void;
  /** Another instance for a call refused with UNAVAILABLE, or undefined (the gateway's retry rule). */
  otherInstance(exchange: E, failed: Instance): Instance | undefined;
  /** Whether the connection closes after a streamed answer. */
  closeAfter(exchange: E): boolean;
  /**
   * Lists of more than one page streamed at once, counting from before its first page a whole-list
   * request that was answered with a long list lately; past it, 503 with Retry-After.
   */
  readonly maxStreamedLists: number;
  /** Answers one of the gateway's own errors. */
  answerError(exchange: E, error: GatewayError): void;
}

/** Encodes the REST input of a request for another plan, or returns undefined when it cannot. */
export type Reencode = (plan: CallPlan) => Buffer | undefined;

/** An instance, its paging plan, and the request message encoded for it (without a page_token). */
interface Target {
  readonly instance: Instance;
  readonly paging: PagingPlan;
  readonly request: Buffer;
}

/** A call that failed, with the instance that failed it. */
class CallFailure extends Error {
  override readonly name = 'CallFailure';

  constructor(
    readonly instance: Instance,
    readonly status: ServiceError,
  ) {
    super(status.message);
  }
}

const LIST_END = Buffer.from(']}');
/** How long a list answered longer than a page is held to the streamed-list bound before asking. */
const LONG_LIST_MEMORY_MS = 10 * 60_000;
/** Long lists remembered at once: each is a method and a request message of a few bytes. */
const MAX_LONG_LISTS_KNOWN = 1_024;
const COMMA = 0x2c;

/**
 * Answers the REST requests of routes that page (see compilePagingPlan).
 *
 * - A request without `page_size` and `page_token` gets the whole list, as in the book: the gateway
 *   asks for the first page (the service's default size) and, while an answer has a
 *   next_page_token, for the page after it. A list of one page is answered as before paging, byte
 *   for byte, with Content-Length. A longer one is streamed with chunked transfer encoding: the
 *   envelope and the first page's elements at once, each later page's elements as they come, then
 *   `]}`. The next page is asked for while the last one is being sent, and written only once the
 *   client has taken the one before, so the gateway holds about two pages, whatever the length of
 *   the list, and no message comes near gRPC's 4 MiB limit.
 * - A request with either gets that one page: `…,"results":[…],"next_page_token":"…"}`, the token
 *   empty on the last page.
 *
 * A failure before anything is sent is answered as any failed call. Once the status line is out it
 * cannot change: the gateway logs the failure once and aborts the connection, so the body lacks its
 * last chunk and its closing `]}`, and HTTP clients report the answer as incomplete. A client that
 * takes nothing of the answer for `unreadAnswerTimeoutMs` (a slice of 64 KiB, see #writeTaken) is
 * cut off the same way. Each page's call has its own deadline, and a page refused with UNAVAILABLE is tried
 * once more on another instance, as any GET is. At most `maxStreamedLists` lists are streamed at
 * once; a request answered with a long list is held to that bound from before its first page is
 * asked for the next time.
 */
export class PageStreamer<E extends PagedExchange> {
  readonly #options: PageStreamerOptions<E>;
  /** Lists of more than one page being streamed now, or known long and waiting for their first page. */
  #streaming = 0;
  /**
   * The whole lists (by method and request) last answered longer than a page, with when (ms, on
   * the monotonic clock), oldest first: at most MAX_LONG_LISTS_KNOWN.
   */
  readonly #longLists = new Map<string, number>();

  constructor(options: PageStreamerOptions<E>) {
    this.#options = options;
  }

  /** Answers a request of a paging route, its request message `request` encoded for `instance`. */
  start(exchange: E, instance: Instance, request: Buffer, reencode: Reencode): void {
    const target: Target = { instance, paging: instance.plan.paging!, request };
    const answered = target.paging.asksForOnePage(request)
      ? this.#onePage(exchange, target, reencode)
      : this.#wholeList(exchange, target, reencode);
    answered.catch((error: unknown) => {
      this.#options.log.error(
        { err: error, key: exchange.key, requestId: exchange.requestId },
        'bug while answering a paged list',
      );
      if (exchange.response.headersSent) {
        exchange.cutShort = 'bug while answering a paged list';
        exchange.response.destroy();
      } else this.#options.answer(exchange, 500, errorBody(exchange.key, 'Internal error in the gateway'));
    });
  }

  async #onePage(exchange: E, target: Target, reencode: Reencode): Promise<void> {
    let rendered: Buffer;
    try {
      ({ value: rendered } = await this.#fetch(
        exchange,
        target,
        undefined,
        exchange.deadline,
        reencode,
        onePage,
      ));
    } catch (error) {
      this.#failBeforeAnswer(exchange, error);
      return;
    }
    if (!exchange.gone) this.#options.answer(exchange, 200, successBody(exchange.key, rendered));
  }

  async #wholeList(exchange: E, first: Target, reencode: Reencode): Promise<void> {
    // A list known to be long takes its place among the streamed lists before its first page is
    // asked for: refused only after, a flood of such requests cost a first page each (up to 1 MiB,
    // rendered): 300 at once held 709 MB. Known by its request, not its method: GET /purchases and
    // GET /purchases/{userid} both list purchases, and a user's short list must not wait for a slot.
    const list = `${first.instance.plan.path} ${first.request.toString('latin1')}`;
    let counted = false;
    if (this.#knownLong(list)) {
      if (!this.#admitStream(exchange)) return;
      counted = true;
    }
    try {
      let fetched: { value: RenderedPage; target: Target };
      try {
        fetched = await this.#fetch(exchange, first, undefined, exchange.deadline, reencode, wholeList);
      } catch (error) {
        this.#failBeforeAnswer(exchange, error);
        return;
      }
      if (exchange.gone) return;
      const page = fetched.value;
      if (page.nextPageToken.length === 0) {
        this.#longLists.delete(list);
        this.#options.answer(exchange, 200, successBody(exchange.key, page.rendered));
        return;
      }
      this.#rememberLong(list);
      if (!counted) {
        if (!this.#admitStream(exchange)) return;
        counted = true;
      }
      await this.#stream(exchange, page, fetched.target, reencode);
    } finally {
      if (counted) this.#streaming--;
    }
  }

  /**
   * Counts one more streamed list, or answers 503 when there are as many as allowed: each holds
   * about two pages of up to 1 MiB and its client's unread answer (a few hundred clients that read
   * slowly, or not at all, held a gigabyte).
   */
  #admitStream(exchange: E): boolean {
    if (this.#streaming >= this.#options.maxStreamedLists) {
      this.#options.answerError(exchange, gatewayErrors.tooManyStreamedLists());
      return false;
    }
    this.#streaming++;
    return true;
  }

  /** Whether `list` was answered longer than a page, and not shorter since, in the last LONG_LIST_MEMORY_MS. */
  #knownLong(list: string): boolean {
    const lastLong = this.#longLists.get(list);
    if (lastLong === undefined) return false;
    if (performance.now() - lastLong < LONG_LIST_MEMORY_MS) return true;
    this.#longLists.delete(list);
    return false;
  }

  #rememberLong(list: string): void {
    // Deleted first, so that the map stays oldest first.
    this.#longLists.delete(list);
    this.#longLists.set(list, performance.now());
    if (this.#longLists.size > MAX_LONG_LISTS_KNOWN) {
      this.#longLists.delete(this.#longLists.keys().next().value!);
    }
  }

  /** Streams a list whose first page is `page` and has a next one (see the class). */
  async #stream(exchange: E, first: RenderedPage, firstTarget: Target, reencode: Reencode): Promise<void> {
    const { response, key } = exchange;
    let page = first;
    let fetched: { value: RenderedPage; target: Target };
    const headers = ['Content-Type', 'application/json'];
    if (exchange.requestId !== undefined) headers.push('X-Request-Id', exchange.requestId);
    if (this.#options.closeAfter(exchange)) headers.push('Connection', 'close');
    response.writeHead(200, headers);
    if (response.req.method === 'HEAD') {
      // HEAD has GET's status and headers and no body (Node writes none): the pages after the first
      // would be asked for and rendered for nothing, the hundred pages of a 100,000-row list, with
      // one of the maxStreamedLists places held all along.
      response.end();
      return;
    }
    // The envelope, `,"results":[` and the first page's elements: the body without its `]}`.
    const head = successBody(key, page.rendered);
    let written = this.#writeTaken(exchange, head.subarray(0, head.length - LIST_END.length));
    let anyItem = page.rendered.length - LIST_END.length > page.itemsStart;
    let pages = 1;
    let target = firstTarget;
    while (page.nextPageToken.length > 0) {
      const next = this.#fetch(
        exchange,
        target,
        page.nextPageToken,
        Date.now() + this.#options.deadlineMs,
        reencode,
        wholeList,
      );
      // Handled below, after the wait: a failure meanwhile must not count as unhandled.
      next.catch(() => {});
      if (!(await written)) return;
      try {
        fetched = await next;
      } catch (error) {
        this.#abort(exchange, error, pages);
        return;
      }
      if (exchange.gone) return;
      page = fetched.value;
      target = fetched.target;
      pages++;
      const end = page.rendered.length - LIST_END.length;
      if (end > page.itemsStart) {
        // The byte before the elements is the page's own `[`: a comma takes its place.
        const start = anyItem ? page.itemsStart - 1 : page.itemsStart;
        if (anyItem) page.rendered[start] = COMMA;
        written = this.#writeTaken(exchange, page.rendered.subarray(start, end));
        anyItem = true;
      }
    }
    if (await written) response.end(LIST_END);
  }

  /**
   * One page's call, tried once more on another instance if refused with UNAVAILABLE. Resolves with
   * the rendered answer and the target that gave it (later pages go there too); rejects with a
   * CallFailure.
   */
  async #fetch<T>(
    exchange: E,
    target: Target,
    token: Buffer | undefined,
    deadline: number,
    reencode: Reencode,
    render: (paging: PagingPlan) => (bytes: Buffer) => T,
  ): Promise<{ value: T; target: Target }> {
    try {
      return { value: await this.#call(exchange, target, token, deadline, render), target };
    } catch (error) {
      if (!(error instanceof CallFailure) || error.status.code !== status.UNAVAILABLE || exchange.gone) {
        throw error;
      }
      const other = this.#elsewhere(exchange, target, reencode);
      if (!other) throw error;
      this.#options.log.debug(
        {
          key: exchange.key,
          requestId: exchange.requestId,
          from: target.instance.nodeId,
          to: other.instance.nodeId,
        },
        'retrying a page elsewhere',
      );
      return { value: await this.#call(exchange, other, token, deadline, render), target: other };
    }
  }

  #call<T>(
    exchange: E,
    target: Target,
    token: Buffer | undefined,
    deadline: number,
    render: (paging: PagingPlan) => (bytes: Buffer) => T,
  ): Promise<T> {
    const { instance, paging, request } = target;
    const { upstream, plan } = instance;
    const bytes = token ? paging.withToken(request, token) : request;
    // An instance that left the registry since the page before (a crash, a stop) has its channel
    // closed once that page's call ended: the pool answers UNAVAILABLE, so the page goes to another
    // instance, or the answer is cut short as a failed page, not as a bug of the gateway.
    return new Promise((resolve, reject) => {
      exchange.call = this.#options.pool.call(
        upstream,
        plan.path,
        render(paging),
        bytes,
        exchange.metadata ?? new Metadata(),
        deadline,
        (error: ServiceError | null, value?: T) => {
          exchange.call = undefined;
          if (error) reject(new CallFailure(instance, error));
          else resolve(value!);
        },
      );
    });
  }

  /** The target of a retry: another serving instance of a plan that pages, with the request for it. */
  #elsewhere(exchange: E, failed: Target, reencode: Reencode): Target | undefined {
    const other = this.#options.otherInstance(exchange, failed.instance);
    const paging = other?.plan.paging;
    if (!other || !paging) return undefined;
    const request = other.plan === failed.instance.plan ? failed.request : reencode(other.plan);
    return request ? { instance: other, paging, request } : undefined;
  }

  /**
   * Writes `bytes` a slice of SLICE_BYTES at a time, each once the one before has gone to the kernel
   * (see sliced-write.ts); resolves true once all of it has, false when the client has left, or has
   * taken nothing of a slice for `unreadAnswerTimeoutMs`: then the connection is aborted. A page is
   * up to 1 MiB: waiting for it whole cut off any client slower than about 200 KB/s.
   */
  #writeTaken(exchange: E, bytes: Buffer): Promise<boolean> {
    const { response } = exchange;
    if (exchange.gone || response.destroyed) return Promise.resolve(false);
    return new Promise((resolve) => {
      let offset = 0;
      let timer: NodeJS.Timeout | undefined;
      const done = (taken: boolean): void => {
        clearTimeout(timer);
        response.off('close', onClose);
        response.off('socket', startClock);
        resolve(taken);
      };
      const startClock = (): void => {
        timer = setTimeout(stalled, this.#options.unreadAnswerTimeoutMs);
      };
      const onClose = (): void => done(false);
      const stalled = (): void => {
        this.#options.log.warn(
          { key: exchange.key, requestId: exchange.requestId, waitedMs: this.#options.unreadAnswerTimeoutMs },
          'the client stopped reading a streamed list: connection aborted',
        );
        exchange.clientStoppedReading = true;
        done(false);
        response.destroy();
      };
      const next = (error?: Error | null): void => {
        clearTimeout(timer);
        if (error || exchange.gone || response.destroyed) {
          done(false);
          return;
        }
        if (offset >= bytes.length) {
          done(true);
          return;
        }
        const end = Math.min(offset + SLICE_BYTES, bytes.length);
        const slice = bytes.subarray(offset, end);
        offset = end;
        // An answer pipelined behind others gets the connection's socket once they have gone:
        // until then the client is taking theirs, not stalling on this one.
        if (response.socket) startClock();
        else response.once('socket', startClock);
        response.write(slice, next);
      };
      response.once('close', onClose);
      next();
    });
  }

  #failBeforeAnswer(exchange: E, error: unknown): void {
    if (!(error instanceof CallFailure)) throw error;
    if (!exchange.gone) this.#options.answerStatus(exchange, error.instance, error.status);
  }

  /** A page after the first failed: the status is sent, so the answer can only be cut short. */
  #abort(exchange: E, error: unknown, pagesSent: number): void {
    if (!(error instanceof CallFailure)) throw error;
    if (exchange.gone) return;
    this.#options.log.error(
      {
        key: exchange.key,
        requestId: exchange.requestId,
        node: error.instance.nodeId,
        grpcMethod: error.instance.plan.grpcMethod,
        code: status[error.status.code] ?? error.status.code,
        details: error.status.details,
        pagesSent,
      },
      'a page of a streamed list failed after the answer had begun: connection aborted',
    );
    exchange.cutShort = `a page failed after the answer had begun: ${status[error.status.code] ?? error.status.code}`;
    exchange.response.destroy();
  }
}

const onePage = (paging: PagingPlan): ((bytes: Buffer) => Buffer) => paging.renderOnePage;
const wholeList = (paging: PagingPlan): ((bytes: Buffer) => RenderedPage) => paging.renderPage;
