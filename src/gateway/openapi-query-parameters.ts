import type { DescField, DescMessage } from '@bufbuild/protobuf';
import { patchMaskField } from './patch-field-mask.js';
import { protoComment } from './proto-comments.js';
import type { JsonSchema, ProtoSchemas } from './proto-json-schema.js';
import type { RestOperation } from './rest-operation.js';
import { WRAPPER_SCALARS } from './wrapper-types.js';

/**
 * How many messages deep nested query parameters are listed: `a.b.c.d` at most. The gateway takes
 * deeper ones too (request-decoder.ts); a document listing every path of a wide contract would
 * grow as its width to this power.
 */
export const MAX_QUERY_NESTING = 3;

/**
 * The query parameters listed for one operation at most. A descriptor set of 115 KB (64 GET routes
 * of a message of 5,000 fields) made a document of 24 MB, every field a parameter of every route,
 * a weight the /docs/ page may freeze on; past this, the operation's description says that more are
 * taken.
 */
export const MAX_QUERY_PARAMETERS = 256;

/** The query parameters of an operation, and what its description should add about those left out. */
export interface QueryParameters {
  readonly parameters: JsonSchema[];
  /** A note for the operation's description when some parameters are not listed, else undefined. */
  readonly note: string | undefined;
}

/** A field met on the way down: the dotted name of its parent (or ''), and the messages above it. */
interface QueryEntry {
  readonly field: DescField;
  readonly prefix: string;
  readonly above: ReadonlySet<string>;
}

/**
 * The query parameters of an operation as the gateway reads them (request-decoder.ts): each field
 * the query may set that text can carry (scalars, enums, lists of them, the well-known types written
 * as one string), and the fields of a message field by dotted name (`page.size`), as grpc-gateway
 * takes them; a map of scalars or enums as OpenAPI's `deepObject` (`labels[env]=prod`), one key per
 * entry as the gateway takes it. Listed breadth first, so that when the list is cut (see {@link MAX_QUERY_PARAMETERS},
 * {@link MAX_QUERY_NESTING}) the deepest go first; a message already on the way down (a recursive
 * type) is not entered again, so its fields are listed at its first level only. Fields a path
 * variable sets (`{page.size}`) are left out: the path wins.
 */
export function queryParameters(operation: RestOperation, schemas: ProtoSchemas): QueryParameters {
  const pathBound = new Set(operation.pathParams.map((param) => param.name));
  const maskFilled = patchMaskField(operation);
  const parameters: JsonSchema[] = [];
  let cut = false;
  let recursionSkipped = false;
  let tooDeep = false;
  const top = new Set([operation.method.input.typeName]);
  let level: QueryEntry[] = operation.queryFields.map((field) => ({ field, prefix: '', above: top }));
  for (let depth = 0; level.length > 0; depth++) {
    const next: QueryEntry[] = [];
    for (const { field, prefix, above } of level) {
      const name = `${prefix}${field.name}`;
      if (pathBound.has(name)) continue;
      const inner = enterable(field);
      if (inner) {
        if (above.has(inner.typeName)) recursionSkipped = true;
        else if (depth >= MAX_QUERY_NESTING) tooDeep = true;
        else {
          const below = new Set(above).add(inner.typeName);
          for (const child of inner.fields) {
            // No more than could be listed: a level of wide messages holding wide messages would
            // otherwise queue the product of their widths before the list is found full.
            if (next.length >= MAX_QUERY_PARAMETERS) {
              cut = true;
              break;
            }
            next.push({ field: child, prefix: `${name}.`, above: below });
          }
        }
        continue;
      }
      if (!fromText(field)) continue;
      if (parameters.length >= MAX_QUERY_PARAMETERS) {
        cut = true;
        return { parameters, note: noteOf(operation, cut, tooDeep, recursionSkipped) };
      }
      const description = describedAs(field, maskFilled);
      parameters.push({
        name,
        in: 'query',
        required: false,
        ...(description ? { description } : {}),
        schema: schemas.value(field),
        ...styleOf(field),
      });
    }
    level = next;
  }
  return { parameters, note: noteOf(operation, cut, tooDeep, recursionSkipped) };
}

function noteOf(
  operation: RestOperation,
  cut: boolean,
  tooDeep: boolean,
  recursionSkipped: boolean,
): string | undefined {
  const reasons: string[] = [];
  if (cut) reasons.push(`at most ${MAX_QUERY_PARAMETERS} are listed per operation`);
  if (tooDeep) reasons.push(`nested messages are listed ${MAX_QUERY_NESTING} deep`);
  if (recursionSkipped) reasons.push("a recursive message's fields are listed at its first level");
  if (reasons.length === 0) return undefined;
  return (
    `Not every query parameter is listed (${reasons.join('; ')}): the query may set any field of ` +
    `\`${operation.method.input.typeName}\` that the path and the body leave, nested ones by dotted name.`
  );
}

/** The message whose fields a query sets by dotted names below this field, if it is one. */
function enterable(field: DescField): DescMessage | undefined {
  if (field.fieldKind !== 'message' || isTextualMessage(field.message.typeName)) return undefined;
  return field.message;
}

/**
 * Whether a query parameter of the field's own name sets it: scalars, enums, lists of them, the
 * well-known messages written as one string, and maps of scalars or enums by key (`labels[env]=prod`);
 * not other messages (their fields are listed by dotted name) nor maps of messages, which a query
 * cannot carry.
 */
function fromText(field: DescField): boolean {
  switch (field.fieldKind) {
    case 'scalar':
    case 'enum':
      return true;
    case 'list':
      return field.listKind !== 'message' || isTextualMessage(field.message.typeName);
    case 'message':
      return isTextualMessage(field.message.typeName);
    case 'map':
      return field.mapKind !== 'message';
  }
}

/** How OpenAPI writes the field in a query: a list as one key per element, a map as `name[key]`. */
function styleOf(field: DescField): { style?: string; explode?: boolean } {
  if (field.fieldKind === 'list') return { style: 'form', explode: true };
  if (field.fieldKind === 'map') return { style: 'deepObject', explode: true };
  return {};
}

/**
 * The parameter's description: its proto comment, and for the FieldMask a PATCH fills from its body
 * (patch-field-mask.ts) what the gateway puts there when the query leaves it out.
 */
function describedAs(field: DescField, maskFilled: DescField | undefined): string | undefined {
  const comment = protoComment(field);
  if (field !== maskFilled) return comment;
  const filled =
    'Left out, the gateway sets it to the fields the body names (as grpc-gateway does for a PATCH), ' +
    'so that only those are updated.';
  return comment ? `${comment}\n\n${filled}` : filled;
}

/** Whether the gateway writes a message as one JSON value, not an object of fields. */
export function isTextualMessage(typeName: string): boolean {
  return (
    typeName === 'google.protobuf.Timestamp' ||
    typeName === 'google.protobuf.Duration' ||
    // Read from text as one string (`mask=a,b`), never `mask.paths`, and written as one.
    typeName === 'google.protobuf.FieldMask' ||
    WRAPPER_SCALARS[typeName] !== undefined
  );
}
