import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ClientUnaryCall, Metadata } from '@grpc/grpc-js';
import type { Route } from './route-table.js';

/** One request on its way through the gateway. */
export interface Exchange {
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  readonly route: Route;
  /** The route's path variables, decoded, in template order. */
  readonly pathValues: readonly string[];
  /** The query string, after the "?". */
  readonly query: string;
  readonly key: number;
  /** Its place among its connection's requests (see Connection.started); 0 without one. */
  readonly turn: number;
  /** When its upstream call must end (ms since the epoch): set again when the call waited its turn. */
  deadline: number;
  /** Its method is idempotent (GET, HEAD, DELETE): doing it twice does what doing it once does. */
  readonly idempotent: boolean;
  /**
   * A call of this write was cut after it was sent (see cutAfterSent): the service may have
   * written, so a failure answered later must not say that nothing was.
   */
  outcomeUnknown: boolean;
  /** The request's Idempotency-Key, sent to the service as `idempotency-key` metadata. */
  readonly idempotencyKey: string | undefined;
  /** The request's id (X-Request-Id), in its log lines; undefined when ids are off. */
  readonly requestId: string | undefined;
  /** The metadata of its upstream calls: Idempotency-Key, request id and trace context. */
  readonly metadata: Metadata;
  /** The upstream call running, to cancel if the client leaves. */
  call: ClientUnaryCall | undefined;
  /** The client closed its connection: there is nobody to answer. */
  gone: boolean;
  /** The request's body was read to its end (or it had none): the connection can be kept. */
  bodyRead: boolean;
  /** Why the gateway cut its answer short after the status was sent (see RequestTelemetry.cutShort). */
  cutShort: string | undefined;
  /**
   * The client took nothing of its streamed answer for `--unread-answer-timeout-ms`, and the
   * gateway closed the connection (see PageStreamer): the answer is incomplete by the client's doing.
   */
  clientStoppedReading?: boolean;
}
