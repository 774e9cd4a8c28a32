import type { DescField, DescMethod } from '@bufbuild/protobuf';

/**
 * One REST operation of the gateway, described from the contract: what the OpenAPI generator
 * (openapi.ts) documents. It is the shape of an HttpRule binding (google/api/http.proto) resolved
 * against its method's descriptors: route-table-operations.ts makes it from the HttpRoute of each
 * route the gateway serves (src/common/http-routes.ts).
 *
 * Every field of the request message is either bound by the path, carried by the body, or read
 * from the query string; fields in none of the three cannot be set over REST.
 */
export interface RestOperation {
  /** The HTTP method, upper case: GET, POST, PUT, PATCH or DELETE. */
  readonly httpMethod: string;
  /**
   * The path in OpenAPI's template form, each variable as `{name}`: "/goods" or "/goods/{id}". An
   * HttpRule variable with a pattern (`{name=shelves/*}`) is written `{name}` here.
   */
  readonly pathTemplate: string;
  /** The template's variables, in template order; each must appear in `pathTemplate`. */
  readonly pathParams: readonly RestPathParam[];
  /** The request fields the query string sets, each by its proto name (top-level fields only). */
  readonly queryFields: readonly DescField[];
  /** Where the request body goes, if the operation has one. */
  readonly body: RestBody;
  /**
   * The gRPC method called: its request (`input`) and response (`output`) messages type the
   * parameters and the answer, its service names the operation's tag, and its proto comment is the
   * operation's description unless `description` says otherwise.
   */
  readonly method: DescMethod;
  /**
   * The response fields the REST answer shows after `key`, `errorcode` and `errormessage`, in this
   * order (`results`, `userid`): fields of `method.output`.
   */
  readonly envelopeFields: readonly DescField[];
  /**
   * Fields shown after `envelopeFields` only when the request asks for one page of a list that the
   * gateway otherwise follows to its end (`next_page_token`, see paging-plan.ts). Default: none.
   */
  readonly onePageFields?: readonly DescField[];
  /** The operation's description; default: the proto comment of `method`. */
  readonly description?: string;
  /**
   * Its method makes its write at most once per `Idempotency-Key` (see HttpRoute.writesOncePerKey):
   * the header, and the 422 of a key reused, are documented for it. Default: no.
   */
  readonly writesOncePerKey?: boolean;
}

/** A path variable and the request field it sets. */
export interface RestPathParam {
  /** The name as the template writes it: "id", or a dotted path such as "book.id". */
  readonly name: string;
  /** The scalar or enum field it sets (for a dotted path, the last field of the path). */
  readonly field: DescField;
}

/** Where a REST request's body goes: HttpRule's `body`. */
export type RestBody =
  /** No body (`body` unset): GET and DELETE. */
  | { readonly kind: 'none' }
  /** `body: "*"`: the body is the request message, less the fields the path binds. */
  | { readonly kind: 'all' }
  /** `body: "<field>"`: the body is that top-level field of the request message. */
  | { readonly kind: 'field'; readonly field: DescField };

/** "package.Service/Method", the way routes and logs name a gRPC method. */
export function grpcMethodName(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}
