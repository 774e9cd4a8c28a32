import type { Registry } from '@bufbuild/protobuf';
import type { HttpRoute } from '../common/http-routes.js';
import { WELL_KNOWN_ANY_TYPES } from './any-types.js';
import { compilePagingPlan, type PagingPlan } from './paging-plan.js';
import { rememberingLastAnswer } from './repeat-answer-memo.js';
import { compileRequestDecoder, type RequestDecoder } from './request-decoder.js';
import { compileResponseRenderer, type ResponseRenderer } from './response-renderer.js';

/**
 * Everything one route needs per request, compiled once from the node's descriptors: the gRPC path
 * to call, how to build the request message from REST input, how to render the response. A request
 * then does no descriptor lookup at all.
 */
export interface CallPlan {
  /** The route as the node's descriptors declare it (see HttpRoute). */
  readonly route: HttpRoute;
  /** "package.Service/Method". */
  readonly grpcMethod: string;
  /** "/package.Service/Method", the HTTP/2 path grpc-js calls. */
  readonly path: string;
  readonly decode: RequestDecoder;
  /** The response fields as JSON text to follow the envelope (see compileResponseRenderer). */
  readonly render: ResponseRenderer;
  /** How to follow the pages of a method that pages (AIP-158), or undefined (see compilePagingPlan). */
  readonly paging: PagingPlan | undefined;
}

/**
 * Compiles the plan of one route. `types`: the messages a google.protobuf.Any in its requests and
 * answers may hold, those of the node's descriptor set (see any-types.ts). Throws with a message naming the problem when the route cannot be
 * served (the distributor checks routes at registration, but a gateway must not trust its input to
 * stay up).
 */
export function compileCallPlan(route: HttpRoute, types: Registry = WELL_KNOWN_ANY_TYPES): CallPlan {
  const envelopeFields = route.envelopeFields.map((field) => field.name);
  return {
    route,
    grpcMethod: route.grpcMethod,
    path: `/${route.grpcMethod}`,
    decode: compileRequestDecoder(route, types),
    render: rememberingLastAnswer(compileResponseRenderer(route.method.output, envelopeFields, types)),
    paging: compilePagingPlan(route.method, envelopeFields, types),
  };
}
