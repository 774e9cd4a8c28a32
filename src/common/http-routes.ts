import {
  createFileRegistry,
  type DescExtension,
  type DescField,
  type DescMethod,
  type FileRegistry,
  fromBinary,
  getOption,
  hasOption,
} from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { leadingComments } from './descriptor-comments.js';
import { loadShopDescriptorSet } from './descriptors.js';
import { type PathTemplate, PathTemplateError, parsePathTemplate } from './path-template.js';

/**
 * The REST routes of gRPC methods, read from their `google.api.http` options (HttpRule, see
 * third_party/google/api/http.proto) and the shop's `shop.v1.envelope_fields` option
 * (proto/envelope.proto). This is the one model of the REST surface: the distributor validates it
 * at registration, the gateway routes and transcodes from it, and an OpenAPI generator can read
 * every part of an operation from it (path template and variables, body, query fields, the fields
 * the answer shows, the method's comments).
 */

/** Where a request's body goes. */
export type BodyBinding =
  /** No body: every field not bound by the path comes from the query string. */
  | { readonly kind: 'none' }
  /** `body: "*"`: the body is the request message; fields bound by the path excepted. No query. */
  | { readonly kind: 'all' }
  /** `body: "<field>"`: the body is that top-level field; the other fields come from the query. */
  | { readonly kind: 'field'; readonly field: DescField };

/** A path variable bound to a request field. */
export interface PathVariable {
  /** The field path as the template writes it, e.g. "id" or "book.id". */
  readonly fieldPath: string;
  /** The fields along the path, the last one the value's: a scalar or an enum. */
  readonly fields: readonly DescField[];
}

/** One REST binding of a gRPC method: the HttpRule itself or one of its additional bindings. */
export interface HttpRoute {
  /** The HTTP method, upper case: GET, PUT, POST, DELETE or PATCH. */
  readonly httpMethod: string;
  /** The path template, parsed ({@link PathTemplate.text} is the template as written). */
  readonly template: PathTemplate;
  /**
   * The route's identity: "METHOD shape", e.g. "DELETE /goods/*" for DELETE /goods/{id}. Two routes
   * with one key match the same requests: one node cannot declare both, two services cannot share one.
   */
  readonly key: string;
  /** The gRPC method; its `input` and `output` are the request and response messages. */
  readonly method: DescMethod;
  /** "package.Service/Method". */
  readonly grpcMethod: string;
  readonly body: BodyBinding;
  /** The template's variables in template order, each bound to a request field. */
  readonly pathVariables: readonly PathVariable[];
  /**
   * The top-level request fields a query string may set (a nested field by a dotted name, e.g.
   * `page.size`): every field the path and the body leave, none when the body is the whole message.
   */
  readonly queryFields: readonly DescField[];
  /** The response fields the REST body shows after key, errorcode and errormessage, in order. */
  readonly envelopeFields: readonly DescField[];
  /** The method's leading comments in the proto, if the descriptor set carries them. */
  readonly description: string | undefined;
  /**
   * The method makes its write at most once per `idempotency-key` (its `shop.v1.idempotency_key`
   * option): a keyed request refused by one instance may go to another.
   */
  readonly writesOncePerKey: boolean;
  /** 0 for the rule itself, n for its n-th additional binding. */
  readonly binding: number;
}

/** What {@link readHttpRoutes} found: the routes of every method it could read, and the problems. */
export interface HttpRoutes {
  readonly routes: HttpRoute[];
  /** One sentence per method that declares routes it cannot have; its routes are left out. */
  readonly problems: string[];
}

/** The envelope's own keys: a response field of one of these names would repeat a key. */
export const ENVELOPE_KEYS: ReadonlySet<string> = new Set(['key', 'errorcode', 'errormessage']);

/**
 * The gateway's own pages, which it answers before routing, whatever the method (GET and HEAD; any
 * other method is refused there): see operator-page-answers.ts.
 */
export const GATEWAY_PAGES: ReadonlySet<string> = new Set([
  '/healthz',
  '/readyz',
  '/metrics',
  '/status',
  '/status.js',
  '/status.json',
]);

/**
 * The paths of the gateway's API documentation (api-docs.ts), answered before routing too:
 * /openapi.json, and /docs with every path below it.
 */
export const GATEWAY_DOCS = { document: '/openapi.json', folder: 'docs' } as const;

/**
 * The gateway page every path of `template` is, if it is one (see {@link GATEWAY_PAGES}): a route
 * there could never be reached. Templates that only some page paths match (`GET /{name}`) keep
 * their other paths, and stay.
 */
function gatewayPageOf(template: PathTemplate): string | undefined {
  const first = template.segments[0];
  if (first?.kind === 'literal' && first.value === GATEWAY_DOCS.folder) {
    // A verb after "docs" itself ("/docs:x", or "/docs/**:x" with "**" taking no segment) makes a
    // path that is neither /docs nor below it: the gateway routes it.
    const bare = template.segments.length === 1 || template.segments[1]!.kind === 'multi';
    if (template.verb === undefined || !bare) return `/${GATEWAY_DOCS.folder}`;
    return undefined;
  }
  if (template.verb !== undefined || !template.segments.every((segment) => segment.kind === 'literal')) {
    return undefined;
  }
  const path = `/${template.segments.map((segment) => (segment as { value: string }).value).join('/')}`;
  return GATEWAY_PAGES.has(path) || path === GATEWAY_DOCS.document ? path : undefined;
}

/** The shape of a decoded google.api.HttpRule (read reflectively: no generated code needed). */
interface HttpRuleValue {
  readonly pattern: { readonly case: string | undefined; readonly value?: unknown };
  readonly body: string;
  readonly responseBody: string;
  readonly additionalBindings: readonly HttpRuleValue[];
}

const PATTERN_METHODS: Record<string, string> = {
  get: 'GET',
  put: 'PUT',
  post: 'POST',
  delete: 'DELETE',
  patch: 'PATCH',
};

let options: { http: DescExtension; envelope: DescExtension; idempotencyKey: DescExtension } | undefined;

/**
 * The method options, from the gateway's own copy of their definitions (google/api/http.proto,
 * vendored unchanged, proto/envelope.proto and proto/idempotency.proto): options are read by field
 * number, so a node's descriptor set need not be trusted to define them the same way; one that
 * declares another option at such a number, or ours with another type, is not read there (see
 * isOursIn).
 */
function methodOptions(): { http: DescExtension; envelope: DescExtension; idempotencyKey: DescExtension } {
  if (!options) {
    const registry = createFileRegistry(loadShopDescriptorSet());
    const http = registry.getExtension('google.api.http');
    const envelope = registry.getExtension('shop.v1.envelope_fields');
    const idempotencyKey = registry.getExtension('shop.v1.idempotency_key');
    if (!http || !envelope || !idempotencyKey)
      throw new Error('the embedded descriptors lack google.api.http, envelope_fields or idempotency_key');
    options = { http, envelope, idempotencyKey };
  }
  return options;
}

/**
 * Whether an option read by its number is the one the gateway knows in this node's descriptors: it
 * is not when they declare another extension at that number (numbers from 50000 on are anyone's
 * to use in-house), whose value means something else. A shop option read there could turn retries
 * on for a write that does not honour keys.
 */
function isOursIn(registry: FileRegistry, option: DescExtension): boolean {
  const declared = registry.getExtensionFor(option.extendee, option.number);
  if (declared === undefined) return true;
  return (
    declared.typeName === option.typeName &&
    declared.fieldKind === option.fieldKind &&
    declared.scalar === option.scalar &&
    declared.message?.typeName === option.message?.typeName
  );
}

/** A registry of a serialized FileDescriptorSet; throws when it does not parse or resolve. */
export function registryOfDescriptorSet(bytes: Uint8Array): FileRegistry {
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes));
}

/**
 * Reads the routes of every method of every service in a registry (a node serves every service its
 * descriptor set defines), in file, service, method and binding order. A method whose rule breaks
 * the HttpRule rules or the gateway's (unary methods only, no custom methods, no response_body, no
 * body on GET) contributes a problem instead of routes. Routes that repeat a key are problems too.
 */
export function readHttpRoutes(registry: FileRegistry): HttpRoutes {
  const { http, envelope, idempotencyKey } = methodOptions();
  const readsHttp = isOursIn(registry, http);
  const readsEnvelope = isOursIn(registry, envelope);
  const readsIdempotencyKey = isOursIn(registry, idempotencyKey);
  const routes: HttpRoute[] = [];
  const problems: string[] = [];
  const keys = new Map<string, string>();
  for (const file of registry.files) {
    for (const service of file.services) {
      for (const method of service.methods) {
        if (!readsHttp || !hasOption(method, http)) continue;
        const grpcMethod = `${service.typeName}/${method.name}`;
        try {
          const rule = getOption(method, http) as unknown as HttpRuleValue;
          const envelopeFields = readsEnvelope
            ? readEnvelopeFields(method, getOption(method, envelope) as string[])
            : [];
          const writesOncePerKey = readsIdempotencyKey && getOption(method, idempotencyKey) === true;
          const read = [rule, ...rule.additionalBindings].map((binding, index) => ({
            ...readBinding(method, grpcMethod, binding, index, envelopeFields),
            writesOncePerKey,
          }));
          for (const route of read) {
            const holder = keys.get(route.key);
            if (holder) throw new Error(`${route.key} is declared twice (also by ${holder})`);
            keys.set(route.key, grpcMethod);
          }
          routes.push(...read);
        } catch (error) {
          problems.push(`${grpcMethod}: ${(error as Error).message}`);
        }
      }
    }
  }
  return { routes, problems };
}

function readBinding(
  method: DescMethod,
  grpcMethod: string,
  rule: HttpRuleValue,
  binding: number,
  envelopeFields: readonly DescField[],
): Omit<HttpRoute, 'writesOncePerKey'> {
  if (binding > 0 && rule.additionalBindings.length > 0) {
    throw new Error('an additional binding cannot have additional bindings');
  }
  const { case: kind, value } = rule.pattern;
  if (kind === undefined) throw new Error('the http rule sets no method and path');
  if (kind === 'custom') throw new Error('custom HTTP methods are not supported');
  const httpMethod = PATTERN_METHODS[kind];
  if (!httpMethod || typeof value !== 'string') throw new Error(`unknown http rule pattern "${kind}"`);
  if (method.methodKind !== 'unary') throw new Error('only unary methods can have REST routes');
  if (rule.responseBody) {
    throw new Error('response_body is not supported: name the fields with (shop.v1.envelope_fields)');
  }
  let template: PathTemplate;
  try {
    template = parsePathTemplate(value);
  } catch (error) {
    if (error instanceof PathTemplateError) throw new Error(error.message);
    throw error;
  }
  const page = gatewayPageOf(template);
  if (page !== undefined) {
    throw new Error(
      `${httpMethod} ${value}: ${page} is the gateway's own page, answered before any route: choose another path`,
    );
  }
  const pathVariables = template.variables.map((variable) => ({
    fieldPath: variable.fieldPath,
    fields: resolveVariable(method, variable.fieldPath),
  }));
  const body = readBody(method, rule.body, httpMethod, pathVariables);
  const bound = new Set(
    pathVariables.filter((variable) => variable.fields.length === 1).map((variable) => variable.fields[0]),
  );
  if (body.kind === 'field') bound.add(body.field);
  return {
    httpMethod,
    template,
    key: `${httpMethod} ${template.shape}`,
    method,
    grpcMethod,
    body,
    pathVariables,
    queryFields: body.kind === 'all' ? [] : method.input.fields.filter((field) => !bound.has(field)),
    envelopeFields,
    description: leadingComments(method),
    binding,
  };
}

function resolveVariable(method: DescMethod, fieldPath: string): DescField[] {
  const fields: DescField[] = [];
  let message = method.input;
  const parts = fieldPath.split('.');
  parts.forEach((name, index) => {
    const field = message.fields.find((candidate) => candidate.name === name);
    if (!field) throw new Error(`path variable "${fieldPath}": ${message.typeName} has no field "${name}"`);
    fields.push(field);
    if (index < parts.length - 1) {
      if (field.fieldKind !== 'message') {
        throw new Error(`path variable "${fieldPath}": "${name}" is not a singular message field`);
      }
      message = field.message;
    } else if (field.fieldKind !== 'scalar' && field.fieldKind !== 'enum') {
      throw new Error(`path variable "${fieldPath}" must name a singular scalar or enum field`);
    }
  });
  return fields;
}

function readBody(
  method: DescMethod,
  body: string,
  httpMethod: string,
  pathVariables: readonly PathVariable[],
): BodyBinding {
  if (body === '') return { kind: 'none' };
  if (httpMethod === 'GET') throw new Error('a GET route cannot have a body');
  if (body === '*') return { kind: 'all' };
  const field = method.input.fields.find((candidate) => candidate.name === body);
  if (!field) throw new Error(`body "${body}": ${method.input.typeName} has no such field`);
  // The field itself bound by the path too is refused; a field inside it may be, as AIP-134's
  // update writes it (`patch: "/v1/{book.name=shelves/*/books/*}" body: "book"`): the path wins there.
  if (pathVariables.some((variable) => variable.fields.length === 1 && variable.fields[0] === field)) {
    throw new Error(`body "${body}" is also bound by the path`);
  }
  return { kind: 'field', field };
}

function readEnvelopeFields(method: DescMethod, names: readonly string[]): DescField[] {
  const fields: DescField[] = [];
  for (const name of names) {
    const field = method.output.fields.find((candidate) => candidate.name === name);
    if (!field) throw new Error(`envelope field "${name}": ${method.output.typeName} has no such field`);
    if (ENVELOPE_KEYS.has(name)) throw new Error(`envelope field "${name}" would repeat an envelope key`);
    if (fields.includes(field)) throw new Error(`envelope field "${name}" is listed twice`);
    refuseGroupsBelow(field, name, new Set());
    fields.push(field);
  }
  return fields;
}

/**
 * Refuses an envelope field that holds, at any depth, a proto2 group (or an editions field of
 * DELIMITED encoding): the gateway's renderer does not read them, and would skip the route.
 */
function refuseGroupsBelow(field: DescField, name: string, seen: Set<string>): void {
  if (field.fieldKind !== 'message' && !(field.fieldKind === 'list' && field.listKind === 'message')) {
    if (field.fieldKind === 'map' && field.mapKind === 'message') walkGroups(field.message, name, seen);
    return;
  }
  if (field.delimitedEncoding) {
    throw new Error(`envelope field "${name}": field "${field.name}" uses group encoding, not supported`);
  }
  walkGroups(field.message, name, seen);
}

function walkGroups(message: DescField['parent'], name: string, seen: Set<string>): void {
  if (seen.has(message.typeName)) return;
  seen.add(message.typeName);
  for (const inner of message.fields) refuseGroupsBelow(inner, name, seen);
}
