import type { ServerResponse } from 'node:http';
import type { Metadata } from '@grpc/grpc-js';
import { REQUEST_ID_HEADER, TRACEPARENT_HEADER, TRACESTATE_HEADER } from '../common/request-context.js';
import type { TraceCarrier, TraceSpan } from '../common/trace-span.js';
import { callMetadata } from './idempotency-header.js';

/** What the gateway carries of one request's telemetry, from its start to its answer. */
export interface RequestTelemetry {
  /** The request's id, for log lines and the answer's `X-Request-Id`; undefined when ids are off. */
  readonly requestId: string | undefined;
  /** The route the gateway matched (its template), set once it has: the request's label and span name. */
  route: string | undefined;
  /** The metadata of the request's upstream calls: Idempotency-Key, request id, trace context. */
  metadata(idempotencyKey: string | undefined): Metadata;
  /**
   * Records the answer (its status; with none sent, 499 when the client left first, or the stop's
   * 503 when the gateway's stop closed its connection) and ends the request's span. The caller
   * calls it once, from the response's 'close' listener it has anyway, so that observing a request
   * adds no listener of its own.
   */
  closed(response: ServerResponse): void;
  /**
   * Marks an answer that did not reach its end after its status was sent: its status stays the one
   * sent (as nginx logs it, and as OpenTelemetry's `http.response.status_code` is what was sent),
   * and `errorType` says why (`error_type` on its series, `error.type` on its span). By default
   * the gateway cut it short (a page of a streamed list failed, the gateway stopped).
   */
  cutShort(reason: string, errorType?: IncompleteAnswer): void;
}

/**
 * Why an answer whose status was sent did not reach its end, as OpenTelemetry's `error.type` (a
 * label value, so a short fixed set): `answer_cut_short`, the gateway cut it (a page failed, a bug,
 * the gateway's stop), a fault of the gateway or a service; `client_closed`, the client closed its
 * connection before the end; `client_stopped_reading`, the client took nothing of it for
 * `--unread-answer-timeout-ms` and the gateway closed the connection. The two last are the client's
 * doing, as a 499 is: the status page does not count them among the errors.
 */
export const INCOMPLETE_ANSWERS = ['answer_cut_short', 'client_closed', 'client_stopped_reading'] as const;
export type IncompleteAnswer = (typeof INCOMPLETE_ANSWERS)[number];

/** The `error_type` of an answer the gateway cut short after its status was sent (the span's `error.type` too). */
export const ANSWER_CUT_SHORT: IncompleteAnswer = 'answer_cut_short';

/** For a request that nothing observes: shared, so its `route` is never read. */
export const NO_REQUEST_TELEMETRY: RequestTelemetry = {
  requestId: undefined,
  route: undefined,
  metadata: callMetadata,
  closed() {},
  cutShort() {},
};

/** Records an observed request's answer (see GatewayTelemetry.#recordAnswer). */
export type AnswerRecorder = (request: ObservedRequest, response: ServerResponse) => void;

/**
 * One observed request. A class, not an object literal with closures: the gateway keeps one per
 * request in flight, and every object that lives as long as a request is copied by the scavenges
 * it outlives and marked again by major collections (see docs/performance-log.md).
 */
export class ObservedRequest implements RequestTelemetry {
  route: string | undefined = undefined;
  /** Why the answer did not reach its end after its status was sent; undefined when it did. */
  cut: string | undefined = undefined;
  /** Who cut it, as its `error_type` (see IncompleteAnswer). */
  cutType: IncompleteAnswer = ANSWER_CUT_SHORT;
  readonly startedAt = performance.now();

  constructor(
    readonly requestId: string | undefined,
    readonly method: string,
    readonly path: string,
    /** The trace context the upstream calls carry: the server span's, or the caller's. */
    readonly carrier: TraceCarrier | undefined,
    readonly span: TraceSpan | undefined,
    readonly recordAnswer: AnswerRecorder,
  ) {}

  metadata(idempotencyKey: string | undefined): Metadata {
    const metadata = callMetadata(idempotencyKey);
    if (this.requestId !== undefined) metadata.set(REQUEST_ID_HEADER, this.requestId);
    const carrier = this.carrier;
    if (carrier?.traceparent) metadata.set(TRACEPARENT_HEADER, carrier.traceparent);
    if (carrier?.tracestate) metadata.set(TRACESTATE_HEADER, carrier.tracestate);
    return metadata;
  }

  closed(response: ServerResponse): void {
    this.recordAnswer(this, response);
  }

  cutShort(reason: string, errorType: IncompleteAnswer = ANSWER_CUT_SHORT): void {
    this.cut = reason;
    this.cutType = errorType;
  }
}
