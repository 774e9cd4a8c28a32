import {
  type Metadata,
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type ServerMethodDefinition,
  status,
} from '@grpc/grpc-js';
import type { Logger } from './logger.js';
import { type GrpcCallMetrics, type GrpcMethodLabels, grpcType, secondsSince } from './metrics.js';
import {
  attachCallContext,
  type CallContext,
  isValidRequestId,
  isValidTraceparent,
  isValidTracestate,
  REQUEST_ID_HEADER,
  runInCallContext,
  TRACEPARENT_HEADER,
  TRACESTATE_HEADER,
  type TraceCarrier,
} from './request-context.js';
import { activeTracer, type TraceSpan } from './tracing.js';

/** Options of {@link serverTelemetryInterceptor}. */
export interface ServerTelemetryOptions {
  /** Server-side call metrics; none: no metric is recorded. */
  metrics?: GrpcCallMetrics | undefined;
  /**
   * Give each call a {@link CallContext} with its request id (from `x-request-id` metadata), which
   * the handler finds by the call's metadata (see requestLogFields) to name the request in its lines.
   */
  requestIds?: boolean;
  /** At debug level, one line per call: method, status code, duration (and the request id). */
  log?: Logger;
}

/**
 * The server interceptor of a component's gRPC server: counts and times every call by method and
 * status code (started, handled, handling seconds); makes a server span per call when tracing is on,
 * a child of the caller's `traceparent`; and gives each call a context that names the request
 * (and, while tracing, carries its span to the database spans below the handler). Undefined when there is nothing to do, so that a server without telemetry pays nothing.
 */
export function serverTelemetryInterceptor(options: ServerTelemetryOptions): ServerInterceptor | undefined {
  const { metrics, requestIds = false, log } = options;
  const tracer = activeTracer();
  if (!metrics && !requestIds && !tracer && !log?.isLevelEnabled('debug')) return undefined;
  const labelsByPath = new Map<string, GrpcMethodLabels>();
  const labelsOf = (method: ServerMethodDefinition<unknown, unknown>): GrpcMethodLabels => {
    let labels = labelsByPath.get(method.path);
    if (!labels) {
      const type = grpcType(method.requestStream, method.responseStream);
      labels =
        metrics?.labelsFor(method.path, type) ??
        ({
          grpc_type: type,
          grpc_service: '',
          grpc_method: method.path.slice(method.path.lastIndexOf('/') + 1),
        } as const);
      labelsByPath.set(method.path, labels);
    }
    return labels;
  };

  return (method: ServerMethodDefinition<unknown, unknown>, call: ServerInterceptingCallInterface) => {
    const labels = labelsOf(method);
    const startedAt = performance.now();
    metrics?.started(labels);
    let span: TraceSpan | undefined;
    let context: CallContext | undefined;
    let finished = false;
    const finish = (code: number, details: string | undefined): void => {
      if (finished) return;
      finished = true;
      const seconds = secondsSince(startedAt);
      metrics?.handled(labels, code, seconds);
      if (log?.isLevelEnabled('debug')) {
        log.debug(
          {
            requestId: context?.requestId,
            grpcMethod: method.path,
            code: status[code] ?? code,
            durationMs: Math.round(seconds * 10_000) / 10,
          },
          'call handled',
        );
      }
      if (span) {
        span.setAttribute('rpc.grpc.status_code', code);
        if (SERVER_FAULTS.has(code)) span.fail(details ?? status[code] ?? String(code));
        span.end();
      }
    };
    return new ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, nextMetadata) {
            if (tracer) {
              span = tracer.startSpan(method.path.slice(1), 'server', carrierOf(metadata), {
                'rpc.system': 'grpc',
                'rpc.service': labels.grpc_service,
                'rpc.method': labels.grpc_method,
              });
            }
            if (requestIds || span) {
              context = {
                requestId: requestIds ? requestIdOf(metadata) : undefined,
                method: labels.grpc_method,
                span,
              };
              // The handler gets this very metadata object: grpc-js hands it on as it is, for the four
              // kinds of method, as long as no interceptor after this one replaces it.
              attachCallContext(metadata, context);
            }
            nextMetadata(metadata);
          },
          onReceiveHalfClose(nextHalfClose) {
            // A unary handler starts here. Only a sampled call runs in its context through every
            // promise (see request-context.ts): its database spans need the call's span.
            if (context && span?.isSampled()) runInCallContext(context, nextHalfClose);
            else nextHalfClose();
          },
          onCancel() {
            finish(status.CANCELLED, 'cancelled by the client');
          },
        });
      },
      sendStatus(sent, nextStatus) {
        finish(sent.code ?? status.UNKNOWN, sent.details);
        nextStatus(sent);
      },
    });
  };
}

/**
 * The codes that mark a server span as failed, after OpenTelemetry's gRPC conventions: the server's
 * own faults. A caller's mistake (INVALID_ARGUMENT, NOT_FOUND, ...) is an answer, not a failure.
 */
const SERVER_FAULTS = new Set<number>([
  status.UNKNOWN,
  status.DEADLINE_EXCEEDED,
  status.UNIMPLEMENTED,
  status.INTERNAL,
  status.UNAVAILABLE,
  status.DATA_LOSS,
]);

/** The caller's request id, when it sent one that is valid. */
function requestIdOf(metadata: Metadata): string | undefined {
  const [value] = metadata.get(REQUEST_ID_HEADER);
  return isValidRequestId(value) ? value : undefined;
}

/** The caller's W3C trace context, when well formed. */
export function carrierOf(metadata: Metadata): TraceCarrier | undefined {
  const [traceparent] = metadata.get(TRACEPARENT_HEADER);
  if (!isValidTraceparent(traceparent)) return undefined;
  const [tracestate] = metadata.get(TRACESTATE_HEADER);
  return isValidTracestate(tracestate) ? { traceparent, tracestate } : { traceparent };
}
