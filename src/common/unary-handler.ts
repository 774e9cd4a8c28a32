import { type handleUnaryCall, type ServerUnaryCall, status } from '@grpc/grpc-js';
import { errorCause, limiterOf } from './log-limiter.js';
import type { Logger } from './logger.js';
import { requestLogFields } from './request-context.js';
import { toServiceError } from './service-error.js';
import { MalformedRequest } from './strict-requests.js';

/**
 * Adapts an async function to a grpc-js unary handler. A request that did not decode (see
 * strict-requests.ts) is refused with INVALID_ARGUMENT before it. What it returns is the response;
 * what it throws becomes a status: a ServiceError keeps its code and message, anything else is
 * INTERNAL with a plain message. Server faults are logged with their cause, one line per method,
 * status and cause per interval (see LogLimiter: an outage under load fails every call the same
 * way); a caller's mistakes are not errors. Each line names the call's request (see
 * requestLogFields), its method and status as the interceptor's `call handled` line does
 * (`grpcMethod`, the status's name as `code`): one name and one type per field across a request's
 * lines, which a log store that types a field by its first value needs.
 */
export function unaryHandler<Request, Response>(
  log: Logger,
  handler: (request: Request, call: ServerUnaryCall<Request, Response>) => Promise<Response>,
): handleUnaryCall<Request, Response> {
  return (call, callback) => {
    const request: unknown = call.request;
    const answer =
      request instanceof MalformedRequest ? Promise.reject(request.toError()) : handler(call.request, call);
    answer.then(
      (response) => callback(null, response),
      (thrown: unknown) => {
        const error = toServiceError(thrown);
        if (error.isServerFault) {
          const cause = error.cause ?? error;
          const grpcMethod = call.getPath().slice(1);
          limiterOf(log).error(
            `${grpcMethod} ${error.code} ${errorCause(cause)}`,
            { err: cause, grpcMethod, code: status[error.code], ...requestLogFields(call.metadata) },
            error.message,
          );
        } else {
          log.debug(
            {
              grpcMethod: call.getPath().slice(1),
              code: status[error.code],
              ...requestLogFields(call.metadata),
            },
            error.message,
          );
        }
        const metadata = error.trailers();
        callback({ code: error.code, details: error.message, ...(metadata ? { metadata } : {}) });
      },
    );
  };
}
