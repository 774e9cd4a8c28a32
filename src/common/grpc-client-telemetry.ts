import {
  InterceptingCall,
  type Interceptor,
  type InterceptorOptions,
  type Metadata,
  type NextCall,
  type StatusObject,
} from '@grpc/grpc-js';
import { carrierOf } from './grpc-server-telemetry.js';
import { type GrpcCallMetrics, type GrpcMethodLabels, grpcType, secondsSince } from './metrics.js';
import { TRACEPARENT_HEADER, TRACESTATE_HEADER } from './request-context.js';
import { activeTracer, type TraceSpan } from './tracing.js';

/** Options of {@link clientTelemetryInterceptor}. */
export interface ClientTelemetryOptions {
  /** Client-side call metrics; none: no metric is recorded. */
  metrics?: GrpcCallMetrics | undefined;
}

/**
 * A client interceptor for the channels a component calls services on: counts and times every call
 * by method and status code (`grpc_client_*`), and, when tracing is on, makes a client span per call
 * attempt. The span's parent is the `traceparent` the caller put in the call's metadata (the
 * gateway's HTTP span); the metadata sent on names the client span instead, so the service's server
 * span becomes its child. Undefined when there is nothing to do.
 */
export function clientTelemetryInterceptor({ metrics }: ClientTelemetryOptions): Interceptor | undefined {
  const tracer = activeTracer();
  if (!metrics && !tracer) return undefined;
  const labelsByPath = new Map<string, GrpcMethodLabels>();
  return (options: InterceptorOptions, nextCall: NextCall) => {
    const { path, requestStream, responseStream } = options.method_definition;
    let labels = labelsByPath.get(path);
    if (!labels) {
      labels = metrics?.labelsFor(path, grpcType(requestStream, responseStream)) ?? {
        grpc_type: grpcType(requestStream, responseStream),
        grpc_service: '',
        grpc_method: path.slice(path.lastIndexOf('/') + 1),
      };
      labelsByPath.set(path, labels);
    }
    const methodLabels = labels;
    const startedAt = performance.now();
    metrics?.started(methodLabels);
    let span: TraceSpan | undefined;
    return new InterceptingCall(nextCall(options), {
      start(metadata: Metadata, _listener, next) {
        let sent = metadata;
        if (tracer) {
          const parent = carrierOf(metadata);
          span = tracer.startSpan(path.slice(1), 'client', parent, {
            'rpc.system': 'grpc',
            'rpc.service': methodLabels.grpc_service,
            'rpc.method': methodLabels.grpc_method,
          });
          const { traceparent, tracestate } = span.carrier();
          // An unsampled call passes its parent's context on as it came: nothing to change.
          if (traceparent !== parent?.traceparent || tracestate !== parent?.tracestate) {
            // The caller may reuse its metadata (a retry, the next page): its traceparent stays the parent's.
            sent = metadata.clone();
            if (traceparent) sent.set(TRACEPARENT_HEADER, traceparent);
            if (tracestate) sent.set(TRACESTATE_HEADER, tracestate);
            else sent.remove(TRACESTATE_HEADER);
          }
        }
        next(sent, {
          onReceiveStatus(received: StatusObject, nextStatus: (status: StatusObject) => void) {
            metrics?.handled(methodLabels, received.code, secondsSince(startedAt));
            if (span) {
              span.setAttribute('rpc.grpc.status_code', received.code);
              if (received.code !== 0) span.fail(received.details);
              span.end();
            }
            nextStatus(received);
          },
        });
      },
    });
  };
}
