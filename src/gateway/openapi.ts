import type { DescField } from '@bufbuild/protobuf';
import { mayBeCrossOriginWrite } from './cross-origin-writes.js';
import { KEYED_METHODS } from './idempotency-header.js';
import { isTextualMessage, queryParameters } from './openapi-query-parameters.js';
import { cutComment, protoComment } from './proto-comments.js';
import { type JsonSchema, messagesReachedFrom, ProtoSchemas, withNote } from './proto-json-schema.js';
import { BODY_METHODS } from './request-input.js';
import { grpcMethodName, type RestOperation } from './rest-operation.js';

/** An OpenAPI 3.1 document, as the plain object served at /openapi.json. */
export interface OpenApiDocument {
  readonly openapi: '3.1.0';
  readonly info: { title: string; version: string; description: string };
  /** The services whose operations were left out for the document's size (see {@link OpenApiOptions.maxBytes}). */
  readonly 'x-left-out-services'?: string[];
  readonly servers: { url: string; description: string }[];
  readonly tags: { name: string; description?: string }[];
  readonly paths: Record<string, Record<string, JsonSchema>>;
  readonly components: {
    schemas: Record<string, JsonSchema>;
    responses: Record<string, JsonSchema>;
    parameters: Record<string, JsonSchema>;
    headers: Record<string, JsonSchema>;
  };
}

/** Options of {@link createOpenApiDocument}. */
export interface OpenApiOptions {
  /** `info.title`. Default "grpc-shop gateway". */
  title?: string;
  /** `info.version`: the version of this document (the gateway gives its registry revision). */
  version: string;
  /**
   * Full names of the services that the distributor pins to their component (the shop's contract):
   * their operations give the schemas of the type names they use. Default: none.
   */
  pinnedServices?: { has(serviceName: string): boolean };
  /**
   * The most bytes the document may take as JSON: past it, the operations of the services outside
   * the pinned ones are left out, the largest first, and the document says which. Default
   * {@link MAX_DOCUMENT_BYTES}.
   */
  maxBytes?: number;
}

/**
 * The default bound of the document's size. The shop's own is 35 KB; a registered descriptor
 * set can make one of many megabytes (a POST of a 5,000-field body on 64 routes: 36 MB), which the
 * /docs/ page would have to parse and render in the browser.
 */
export const MAX_DOCUMENT_BYTES = 4 * 2 ** 20;

/**
 * A statement of the gateway's own answers and of the mapping of gRPC faults, each with the book's
 * envelope: the one list of error statuses the document shows, and for which operations.
 */
const ERROR_RESPONSES: readonly {
  status: string;
  name: string;
  description: string;
  retryAfter?: boolean;
  applies?: (operation: RestOperation) => boolean;
}[] = [
  {
    status: '400',
    name: 'BadRequest',
    description:
      'The request could not be read: a body or a query string that is not UTF-8, a body not JSON or not a JSON object, a malformed ' +
      '`Idempotency-Key` (or two of them), a path with a malformed or non-UTF-8 %-escape, no `Host` (HTTP/1.1) or several, or malformed HTTP.',
  },
  {
    status: '403',
    name: 'Forbidden',
    description:
      'A browser said the request comes from a page of another origin (`Sec-Fetch-Site`, or an `Origin` that is not the `Host`) not listed in `--cors-origins` (`key` is null): a form or a `no-cors` fetch of another site may not write. Tools that send neither header are not concerned.',
    applies: (operation) => mayBeCrossOriginWrite(operation.httpMethod),
  },
  {
    status: '404',
    name: 'NotFound',
    description:
      'No route for this method and path: the service serving it has not registered (`key` is null).',
  },
  {
    status: '405',
    name: 'MethodNotAllowed',
    description: 'The path is served, but not with this method.',
  },
  {
    status: '408',
    name: 'RequestTimeout',
    description: 'The request took too long to arrive.',
  },
  {
    status: '421',
    name: 'MisdirectedRequest',
    description:
      "The `Host` names the gateway by a name it is not known by (any IP address, `localhost` and the machine's own name are; `--allowed-hosts` adds others): a web page that rebinds its own name to the gateway's address cannot call it.",
  },
  {
    status: '413',
    name: 'PayloadTooLarge',
    description: "The request body is larger than the gateway's limit (1 MiB by default).",
    applies: readsBody,
  },
  {
    status: '414',
    name: 'URITooLong',
    description:
      "The request line (method, URL and version) alone is over Node's limit for a request's head, 16 KiB.",
  },
  {
    status: '415',
    name: 'UnsupportedMediaType',
    description:
      'The body is neither `application/json` nor `application/x-www-form-urlencoded` (in UTF-8, or US-ASCII), or comes in a `Content-Encoding` (send it unencoded).',
    applies: readsBody,
  },
  {
    status: '417',
    name: 'ExpectationFailed',
    description:
      'An `Expect` header other than `100-continue`, which is the one expectation the gateway meets: send that, or none.',
  },
  {
    status: '409',
    name: 'Conflict',
    description:
      'The writes of this `Idempotency-Key` kept rolling back, each a concurrent request with the same key (gRPC ABORTED): retry after `Retry-After` seconds, with the same key.',
    retryAfter: true,
    applies: takesIdempotencyKey,
  },
  {
    status: '422',
    name: 'UnprocessableContent',
    description:
      'The `Idempotency-Key` was already used with a different request (gRPC FAILED_PRECONDITION).',
    applies: takesIdempotencyKey,
  },
  {
    status: '429',
    name: 'TooManyRequests',
    description:
      'The service is overloaded, or a limit of its own applies, such as the wait after failed sign-ins (gRPC RESOURCE_EXHAUSTED; `errormessage` says which): retry after `Retry-After` seconds.',
    retryAfter: true,
  },
  {
    status: '431',
    name: 'RequestHeaderFieldsTooLarge',
    description: 'The request headers are too large.',
  },
  {
    status: '500',
    name: 'InternalError',
    description:
      'The service or the gateway failed (gRPC INTERNAL, UNKNOWN, DATA_LOSS, UNIMPLEMENTED). For a POST answered ' +
      'UNKNOWN, "the write may have been done": the service could not confirm it (under its `Idempotency-Key`, if ' +
      'the operation takes one and the request had one, a retry is safe).',
  },
  {
    status: '501',
    name: 'NotImplemented',
    description:
      'A `Transfer-Encoding` the gateway does not take: send a body with `Content-Length` or chunked.',
  },
  {
    status: '502',
    name: 'BadGateway',
    description: "The service's answer is over gRPC's message size limit; asking again would meet it too.",
  },
  {
    status: '503',
    name: 'ServiceUnavailable',
    description:
      'No serving instance for the route right now, or none the gateway can reach, the gateway has no route table or no route yet, is stopping, ' +
      'has too many connections open, requests in flight on the connection, request bodies being read or long lists being streamed, ' +
      'or the service refused the call or it was cut (gRPC UNAVAILABLE, ' +
      'CANCELLED): retry after `Retry-After` seconds.',
    retryAfter: true,
  },
  {
    status: '504',
    name: 'GatewayTimeout',
    description:
      "The service did not answer within the gateway's deadline (gRPC DEADLINE_EXCEEDED), or a POST's call was cut " +
      'off after it was sent: the write may still happen (under its `Idempotency-Key`, if it has one).',
  },
];

const DOCUMENT_DESCRIPTION = `The REST surface of the shop, generated from the gRPC contracts that the running services
registered with the distributor: it changes as services come and go.

Every answer is one JSON object that starts with the book's envelope: \`key\` (the gateway's count of
requests), \`errorcode\` (0 success, 1 failure) and \`errormessage\` ("success" on success), then the
operation's fields. A business failure (a missing or ill-typed parameter is "Invalid Parameters",
an empty list "no data", a wrong password "Invalid password") is HTTP 200 with \`errorcode\` 1, as in
the book; failures of the gateway or of a service have their HTTP status and the same envelope.

GET and DELETE take their parameters from the query string; POST, PUT and PATCH from a JSON or
form body. Numbers may be given as strings ("1000"); a value that does not convert to the field's
type is "Invalid Parameters". Parameters the operation does not know are ignored.`;

const METHOD_ORDER = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH'];
const ERROR_ENVELOPE = 'ErrorEnvelope';
const ENVELOPE_REF = `#/components/schemas/${ERROR_ENVELOPE}`;

/**
 * Builds the OpenAPI 3.1 document of a set of REST operations: per operation its parameters (path,
 * query, the `Idempotency-Key` header of writes) and request body typed from the proto fields, its
 * answer as the book's envelope with the operation's fields, the error statuses of the gateway, and
 * the proto comments as descriptions. Operations are sorted by path, then method, so the document
 * does not depend on the order services registered in.
 */
export function createOpenApiDocument(
  operations: readonly RestOperation[],
  options: OpenApiOptions,
): OpenApiDocument {
  const maxBytes = options.maxBytes ?? MAX_DOCUMENT_BYTES;
  const isPinned = (operation: RestOperation) =>
    options.pinnedServices?.has(operation.method.parent.typeName) === true;
  const whole = buildDocument(operations, options, []);
  const sizes = new Map<string, number>();
  let total = byteSize(whole.document.components);
  for (const [operation, object] of whole.objects) {
    const size = byteSize(object);
    total += size;
    if (isPinned(operation)) continue;
    const service = operation.method.parent.typeName;
    sizes.set(service, (sizes.get(service) ?? 0) + size);
  }
  if (total <= maxBytes) return whole.document;
  // The largest contributions go first, until what the others' operations make fits. Their types'
  // schemas may still not fit (a service can register thousands of messages): then every service
  // outside the contract is left out, so that the contract's are always documented.
  const leftOut = new Set<string>();
  for (const [service, size] of [...sizes].sort(([, a], [, b]) => b - a)) {
    if (total <= maxBytes) break;
    leftOut.add(service);
    total -= size;
  }
  const kept = (service: ReadonlySet<string>) =>
    operations.filter((operation) => !service.has(operation.method.parent.typeName));
  const smaller = buildDocument(kept(leftOut), options, [...leftOut].sort());
  if (byteSize(smaller.document) <= maxBytes) return smaller.document;
  const outside = new Set(sizes.keys());
  return buildDocument(kept(outside), options, [...outside].sort()).document;
}

/** The document of some operations, and the object of each; `leftOut`: services not in it. */
function buildDocument(
  operations: readonly RestOperation[],
  options: OpenApiOptions,
  leftOut: readonly string[],
): { document: OpenApiDocument; objects: Map<RestOperation, JsonSchema> } {
  const sorted = [...operations].sort(
    (a, b) =>
      (a.pathTemplate < b.pathTemplate ? -1 : a.pathTemplate > b.pathTemplate ? 1 : 0) ||
      methodRank(a.httpMethod) - methodRank(b.httpMethod),
  );
  // The pinned services' operations are made first, so that they name the schemas of the types they
  // use, as their own requests carry them: any node may register a service outside the contract, and
  // one that defines its own `shop.v1.Goods` on a path sorting before /goods, or takes one in its
  // requests, would otherwise document goods' answers.
  const pinned = options.pinnedServices;
  const isPinned = (operation: RestOperation) => pinned?.has(operation.method.parent.typeName) === true;
  const first = sorted.filter(isPinned);
  const then = sorted.filter((operation) => !isPinned(operation));
  const schemas = new ProtoSchemas(messagesReachedFrom(first.flatMap(requestCarriedFields)), [
    ERROR_ENVELOPE,
  ]);
  const paths: Record<string, Record<string, JsonSchema>> = {};
  const tags = new Map<string, string | undefined>();
  const operationIds = new Map<RestOperation, string>();
  const takenIds = new Set<string>();
  // The contract's operations take their ids first too: a client generated from the document calls
  // an operation by its id, and another service's `GoodsService.ListGoods` on a path sorting first
  // would otherwise be `GoodsService_ListGoods`.
  for (const operation of [...first, ...then]) {
    const service = operation.method.parent;
    if (!tags.has(service.typeName)) tags.set(service.typeName, protoComment(service));
    let operationId = `${service.name}_${operation.method.name}`;
    for (let n = 2; takenIds.has(operationId); n++)
      operationId = `${service.name}_${operation.method.name}_${n}`;
    takenIds.add(operationId);
    operationIds.set(operation, operationId);
  }
  const objects = new Map<RestOperation, JsonSchema>();
  for (const operation of first) {
    objects.set(operation, operationObject(operation, operationIds.get(operation)!, schemas));
  }
  schemas.addInputTypes(messagesReachedFrom(then.flatMap(requestCarriedFields)));
  for (const operation of then) {
    objects.set(operation, operationObject(operation, operationIds.get(operation)!, schemas));
  }
  for (const operation of sorted) {
    paths[operation.pathTemplate] ??= {};
    paths[operation.pathTemplate]![operation.httpMethod.toLowerCase()] = objects.get(operation)!;
  }
  const document: OpenApiDocument = {
    openapi: '3.1.0',
    info: {
      title: options.title ?? 'grpc-shop gateway',
      version: options.version,
      description:
        leftOut.length === 0
          ? DOCUMENT_DESCRIPTION
          : `${DOCUMENT_DESCRIPTION}\n\n${leftOutNote(leftOut, options)}`,
    },
    ...(leftOut.length > 0 ? { 'x-left-out-services': [...leftOut] } : {}),
    // Relative to the document (OpenAPI 3.1, Server Object): behind a proxy that serves the gateway
    // under a prefix (/api/openapi.json), "Try it out" calls /api/goods. Without it, the default
    // server is "/", and the page called /goods on the proxy, which is none of the gateway's.
    servers: [{ url: '.', description: 'the gateway that served this document' }],
    tags: [...tags].map(([name, description]) => (description ? { name, description } : { name })),
    paths,
    components: {
      schemas: { [ERROR_ENVELOPE]: errorEnvelopeSchema(), ...schemas.components() },
      responses: Object.fromEntries(
        ERROR_RESPONSES.map((error) => [
          error.name,
          {
            description: error.description,
            ...(error.retryAfter
              ? { headers: { 'Retry-After': { $ref: '#/components/headers/RetryAfter' } } }
              : {}),
            content: { 'application/json': { schema: { $ref: ENVELOPE_REF } } },
          },
        ]),
      ),
      parameters: {
        IdempotencyKey: {
          name: 'Idempotency-Key',
          in: 'header',
          required: false,
          description:
            'Makes the write happen at most once: a repeat with the same key and request gets the first ' +
            'answer; the same key with another request is 422. Kept 24 hours.',
          schema: { type: 'string', pattern: '^[!-~]{1,255}$' },
        },
      },
      headers: {
        RetryAfter: {
          description: 'Seconds to wait before asking again.',
          schema: { type: 'integer', minimum: 0 },
        },
      },
    },
  };
  return { document, objects };
}

function leftOutNote(leftOut: readonly string[], options: OpenApiOptions): string {
  const limit = `${((options.maxBytes ?? MAX_DOCUMENT_BYTES) / 2 ** 20).toFixed(1)} MiB`;
  return (
    `Left out of this document to keep it under ${limit} (their routes are served all the same): ` +
    `the operations of ${leftOut.map((service) => `\`${service}\``).join(', ')}.`
  );
}

/** The size of a part of the document as JSON, in bytes. */
function byteSize(part: unknown): number {
  return Buffer.byteLength(JSON.stringify(part));
}

function operationObject(operation: RestOperation, operationId: string, schemas: ProtoSchemas): JsonSchema {
  // A route's description is the method's leading comment, taken uncut by http-routes.ts.
  const description =
    operation.description === undefined ? protoComment(operation.method) : cutComment(operation.description);
  const parameters: JsonSchema[] = [];
  for (const param of operation.pathParams) {
    parameters.push({
      name: param.name,
      in: 'path',
      required: true,
      ...describedBy(protoComment(param.field)),
      schema: schemas.value(param.field),
    });
  }
  const query = queryParameters(operation, schemas);
  parameters.push(...query.parameters);
  if (takesIdempotencyKey(operation)) {
    parameters.push({ $ref: '#/components/parameters/IdempotencyKey' });
  }
  const responses: Record<string, JsonSchema> = {
    '200': {
      description:
        'The book\'s envelope: `errorcode` 0 and "success" with the fields below, or `errorcode` 1 ' +
        'and the reason of a business failure (still HTTP 200).',
      content: { 'application/json': { schema: envelopeSchema(operation, schemas) } },
    },
  };
  for (const error of ERROR_RESPONSES) {
    if (error.applies && !error.applies(operation)) continue;
    responses[error.status] = { $ref: `#/components/responses/${error.name}` };
  }
  const body = requestBody(operation, schemas);
  return {
    tags: [operation.method.parent.typeName],
    summary: operation.method.name,
    ...describedBy([description, query.note].filter(Boolean).join('\n\n')),
    operationId,
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(body ? { requestBody: body } : {}),
    responses,
    'x-grpc-method': grpcMethodName(operation.method),
  };
}

/**
 * Whether the gateway reads the body of an operation's requests: one that takes a body, and any
 * POST, PUT or PATCH (its body is read, and so refused when too large or of another type, even
 * where the route takes all its fields from the query).
 */
function readsBody(operation: RestOperation): boolean {
  return operation.body.kind !== 'none' || BODY_METHODS.has(operation.httpMethod);
}

function requestBody(operation: RestOperation, schemas: ProtoSchemas): JsonSchema | undefined {
  let schema: JsonSchema;
  switch (operation.body.kind) {
    case 'none':
      return undefined;
    case 'all': {
      const bound = pathBoundFields(operation);
      const fields = operation.method.input.fields.filter((field) => !bound.has(field));
      schema = schemas.object(operation.method.input, fields);
      break;
    }
    case 'field':
      schema = schemas.field(operation.body.field);
      break;
  }
  // A form is a list of fields: it can be a message's (the request's, or a body field's), not a
  // scalar, a list or a well-known type written as one value, which a form body is refused for.
  const form =
    operation.body.kind === 'all' ||
    (operation.body.field.fieldKind === 'message' &&
      !isTextualMessage(operation.body.field.message.typeName));
  return {
    required: false,
    content: {
      'application/json': { schema },
      // A form carries no nested messages; the gateway reads the same fields from it.
      ...(form ? { 'application/x-www-form-urlencoded': { schema } } : {}),
    },
  };
}

/** The answer of a routed request: the envelope, then the operation's fields on success. */
function envelopeSchema(operation: RestOperation, schemas: ProtoSchemas): JsonSchema {
  // A Map, made an object by definition: an operation's field may be named `__proto__`.
  const properties = new Map<string, JsonSchema>(
    Object.entries({
      key: {
        type: 'integer',
        minimum: 0,
        description: "The request's number: the gateway counts the requests it routes, from 0.",
      },
      errorcode: { type: 'integer', enum: [0, 1], description: '0: success; 1: failure.' },
      errormessage: { type: 'string', description: '"success", or what went wrong.' },
    }),
  );
  for (const field of operation.envelopeFields) {
    properties.set(field.name, withNote(schemas.field(field), 'Present when `errorcode` is 0.'));
  }
  for (const field of operation.onePageFields ?? []) {
    if (properties.has(field.name)) continue;
    properties.set(
      field.name,
      withNote(
        schemas.field(field),
        'Present when the request asks for one page (gives `page_size` or `page_token`); otherwise the ' +
          'gateway follows every page and answers the whole list.',
      ),
    );
  }
  return {
    type: 'object',
    required: ['key', 'errorcode', 'errormessage'],
    properties: Object.fromEntries(properties),
    additionalProperties: false,
  };
}

function errorEnvelopeSchema(): JsonSchema {
  return {
    type: 'object',
    description: "The book's envelope of a failure.",
    required: ['key', 'errorcode', 'errormessage'],
    properties: {
      key: {
        type: ['integer', 'null'],
        minimum: 0,
        description: "The request's number; null when it matched no route.",
      },
      errorcode: { const: 1 },
      errormessage: { type: 'string', description: 'What went wrong.' },
    },
    additionalProperties: false,
  };
}

/** The request fields a request can carry: path, query and body. */
function requestCarriedFields(operation: RestOperation): DescField[] {
  const fields = [...operation.pathParams.map((param) => param.field), ...operation.queryFields];
  if (operation.body.kind === 'all') fields.push(...operation.method.input.fields);
  if (operation.body.kind === 'field') fields.push(operation.body.field);
  return fields;
}

/** Top-level request fields that the path sets (a dotted variable sets a nested field instead). */
function pathBoundFields(operation: RestOperation): Set<DescField> {
  return new Set(
    operation.pathParams
      .filter((param) => !param.name.includes('.') && param.field.parent === operation.method.input)
      .map((param) => param.field),
  );
}

function methodRank(method: string): number {
  const rank = METHOD_ORDER.indexOf(method);
  return rank < 0 ? METHOD_ORDER.length : rank;
}

/**
 * Whether an operation takes an `Idempotency-Key`: a write whose method makes it once per key. The
 * gateway passes the header on for every POST and DELETE, but a method without the option ignores it.
 */
function takesIdempotencyKey(operation: RestOperation): boolean {
  return KEYED_METHODS.has(operation.httpMethod) && operation.writesOncePerKey === true;
}

function describedBy(description: string | undefined): { description?: string } {
  return description ? { description } : {};
}
