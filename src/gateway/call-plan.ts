import type { DescMethod, FileRegistry } from '@bufbuild/protobuf';
import { compilePagingPlan, type PagingPlan } from './paging-plan.js';
import { compileRequestTranscoder, type RequestTranscoder } from './request-transcoder.js';
import { compileResponseRenderer, type ResponseRenderer } from './response-renderer.js';

/**
 * Everything one route needs per request, compiled once from the node's descriptors: the gRPC path
 * to call, how to build the request message from REST input, how to render the response. A request
 * then does no descriptor lookup at all.
 */
export interface CallPlan {
  /** "package.Service/Method", as registered. */
  readonly grpcMethod: string;
  /** "/package.Service/Method", the HTTP/2 path grpc-js calls. */
  readonly path: string;
  /** The method's descriptor, from the node's descriptor set (for the OpenAPI document). */
  readonly method: DescMethod;
  /** The response fields the REST answer shows after the envelope, as registered. */
  readonly responseFields: readonly string[];
  readonly transcoder: RequestTranscoder;
  /** The response fields as JSON text to follow the envelope (see compileResponseRenderer). */
  readonly render: ResponseRenderer;
  /** How to follow the pages of a method that pages (AIP-158), or undefined (see compilePagingPlan). */
  readonly paging: PagingPlan | undefined;
}

const GRPC_METHOD = /^([A-Za-z_][A-Za-z0-9_.]*)\/([A-Za-z_][A-Za-z0-9_]*)$/;

/**
 * Compiles the plan of one route from a registry of the node's files. Throws with a message naming
 * the problem when the method is missing, not unary, or a response field does not exist (the
 * distributor checks the same, but a gateway must not trust its input to stay up).
 */
export function compileCallPlan(
  registry: FileRegistry,
  grpcMethod: string,
  responseFields: readonly string[],
): CallPlan {
  const match = GRPC_METHOD.exec(grpcMethod);
  if (!match) throw new Error(`"${grpcMethod}" is not a gRPC method name (package.Service/Method)`);
  const [, serviceName, methodName] = match;
  const method = registry
    .getService(serviceName!)
    ?.methods.find((candidate) => candidate.name === methodName);
  if (!method) throw new Error(`the descriptor set has no ${grpcMethod}`);
  if (method.methodKind !== 'unary') throw new Error(`${grpcMethod} is not a unary method`);
  return {
    grpcMethod,
    path: `/${serviceName}/${methodName}`,
    method,
    responseFields: [...responseFields],
    transcoder: compileRequestTranscoder(method.input),
    render: compileResponseRenderer(method.output, responseFields),
    paging: compilePagingPlan(method, responseFields),
  };
}
