import { type DescEnum, type DescField, type DescMessage, ScalarType } from '@bufbuild/protobuf';
import { ANY_TYPE } from './any-types.js';
import { protoComment } from './proto-comments.js';
import { WRAPPER_SCALARS } from './wrapper-types.js';

/** A JSON Schema (draft 2020-12, the dialect of OpenAPI 3.1), as a plain object. */
export type JsonSchema = { [keyword: string]: unknown };

/** Where the schemas of named types live in the document. */
const COMPONENTS = '#/components/schemas/';

/**
 * JSON Schemas of protobuf types as the gateway reads and writes them (request-transcoder.ts,
 * response-renderer.ts), which is close to proto3 JSON with the book's differences:
 *
 * - fields by their proto name (`page_size`; the gateway also takes the JSON name `pageSize`);
 * - 32-bit integers are integers (a string of digits is taken too); 64-bit integers are numbers when
 *   exact and decimal strings otherwise; float and double may be "NaN", "Infinity", "-Infinity";
 * - enums by value name or number (a number without a name is answered as a number), bytes as
 *   base64, google.protobuf.Timestamp as an RFC 3339 string in UTC,
 *   Duration as "1.5s", the wrapper types as their bare value, Struct, ListValue, Value and
 *   FieldMask as proto3 JSON writes them (an object, an array, any value, "fooBar,baz"), NullValue
 *   as null; Any as `{"@type": "<type URL>", ...}`, a component of its own (see {@link anySchema});
 * - an answer shows every field, an unset message field as `null`, and of a oneof only the member
 *   that is set: a message found only in answers lists its other fields as required.
 *
 * Messages and enums become named schemas (by full name, e.g. `shop.v1.Goods`) in `components`,
 * referred to with `$ref`, so recursive types work; the well-known types above are inlined. Each
 * service registers descriptors of its own, so two may define one full name differently (one
 * deployed before a field was added, say): the first met gives the schema (openapi.ts meets the
 * contract's operations first, then the others, by path). Telling the
 * definitions apart would compare every type each one reaches, work that a registered descriptor
 * set can make quadratic, for a difference that lasts as long as a rolling deploy.
 */
export class ProtoSchemas {
  /** A Map, made an object by definition at the end: a proto type may be named `constructor`. */
  readonly #components = new Map<string, JsonSchema>();
  readonly #inputTypes: Set<string>;
  readonly #reservedNames: ReadonlySet<string>;

  /**
   * @param inputTypes the full names of the messages that requests may carry (see
   *   {@link messagesReachedFrom}): their fields are never required, and unknown fields are allowed.
   * @param reservedNames component names the document uses for schemas of its own: a proto type of
   *   that full name (a message of no package named `ErrorEnvelope`) is named with `-2` after it
   *   (a proto name has no `-`, so that meets no real type's).
   */
  constructor(inputTypes: ReadonlySet<string>, reservedNames: Iterable<string> = []) {
    this.#inputTypes = new Set(inputTypes);
    this.#reservedNames = new Set(reservedNames);
  }

  /**
   * More full names of messages that requests may carry, for the types named from now on: a type
   * already named keeps its schema.
   */
  addInputTypes(names: Iterable<string>): void {
    for (const name of names) this.#inputTypes.add(name);
  }

  /** The named schemas made so far, for `components.schemas`, sorted by name. */
  components(): Record<string, JsonSchema> {
    return Object.fromEntries([...this.#components].sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  /** The schema of a field's value in JSON, with the field's comment as its description. */
  field(field: DescField): JsonSchema {
    return described(this.value(field), protoComment(field));
  }

  /** The schema of a field's value in JSON, without description (for a parameter, which has one). */
  value(field: DescField): JsonSchema {
    return this.#fieldValue(field);
  }

  /** An object schema of some of a message's fields (a request body less its path variables). */
  object(message: DescMessage, fields: readonly DescField[]): JsonSchema {
    return described({ type: 'object', properties: this.#properties(fields) }, protoComment(message));
  }

  /** Field schemas by field name, defined rather than assigned: a field may be named `__proto__`. */
  #properties(fields: readonly DescField[]): JsonSchema {
    return Object.fromEntries(fields.map((field) => [field.name, this.field(field)]));
  }

  /** The component name of a type: its full name, unless the document's own schemas hold that. */
  #nameOf(typeName: string): string {
    return this.#reservedNames.has(typeName) ? `${typeName}-2` : typeName;
  }

  #fieldValue(field: DescField): JsonSchema {
    switch (field.fieldKind) {
      case 'scalar':
        return scalarSchema(field.scalar);
      case 'enum':
        return this.#enumRef(field.enum);
      case 'message':
        return this.#messageValue(field.message, true);
      case 'list':
        return {
          type: 'array',
          items:
            field.listKind === 'scalar'
              ? scalarSchema(field.scalar)
              : field.listKind === 'enum'
                ? this.#enumRef(field.enum)
                : this.#messageValue(field.message, false),
        };
      case 'map': {
        const value =
          field.mapKind === 'scalar'
            ? scalarSchema(field.scalar)
            : field.mapKind === 'enum'
              ? this.#enumRef(field.enum)
              : this.#messageValue(field.message, false);
        const keys = mapKeyPattern(field.mapKey);
        return {
          type: 'object',
          ...(keys ? { propertyNames: { pattern: keys } } : {}),
          additionalProperties: value,
        };
      }
    }
  }

  /** A message value: a well-known type inlined, else a reference; `nullable` for a singular field. */
  #messageValue(message: DescMessage, nullable: boolean): JsonSchema {
    const wellKnown = wellKnownSchema(message);
    if (wellKnown) return wellKnown;
    const ref = { $ref: this.#messageRef(message) };
    return nullable ? { oneOf: [ref, { type: 'null' }] } : ref;
  }

  #messageRef(message: DescMessage): string {
    const name = this.#nameOf(message.typeName);
    if (!this.#components.has(name) && message.typeName === ANY_TYPE) {
      // Its fields are not its JSON: written once, as protoc-gen-openapiv2's `protobufAny` is.
      this.#components.set(name, anySchema());
    } else if (!this.#components.has(name)) {
      // Claimed before the fields are walked, so that a recursive type refers to itself.
      this.#components.set(name, {});
      const properties = this.#properties(message.fields);
      const answersOnly = !this.#inputTypes.has(message.typeName);
      // An answer shows every field, except the members of a oneof that are not set.
      const required = answersOnly
        ? message.fields.filter((field) => field.oneof === undefined).map((field) => field.name)
        : [];
      this.#components.set(
        name,
        described(
          {
            type: 'object',
            properties,
            ...(required.length > 0 ? { required } : {}),
            ...(answersOnly ? { additionalProperties: false } : {}),
          },
          protoComment(message),
        ),
      );
    }
    return `${COMPONENTS}${name}`;
  }

  #enumRef(desc: DescEnum): JsonSchema {
    // Read and written as JSON null, as proto3 JSON has it.
    if (desc.typeName === 'google.protobuf.NullValue') return { type: 'null' };
    const name = this.#nameOf(desc.typeName);
    if (!this.#components.has(name)) {
      const values = desc.values.map((value) => {
        const comment = protoComment(value);
        const item = `- \`${value.name}\` (${value.number})`;
        return comment ? `${item}: ${comment}` : item;
      });
      const comment = protoComment(desc);
      this.#components.set(name, {
        // As proto3 JSON has it: the gateway takes a value by its name or by its number, and
        // answers with the name, or with the number of a value its descriptor does not name (a
        // service built from a newer contract than it registered, or one that sets any int32).
        anyOf: [
          { type: 'string', enum: desc.values.map((value) => value.name) },
          { type: 'integer', format: 'int32', minimum: INT32_MIN, maximum: INT32_MAX },
        ],
        description: [comment, values.join('\n'), ENUM_NUMBERS].filter(Boolean).join('\n\n'),
      });
    }
    return { $ref: `${COMPONENTS}${name}` };
  }
}

/**
 * The full names of every message that a request can carry, from the given fields down: the
 * messages those fields hold, and theirs, recursively (map values and list elements included).
 */
export function messagesReachedFrom(fields: Iterable<DescField>): Set<string> {
  const reached = new Set<string>();
  const visit = (message: DescMessage): void => {
    if (reached.has(message.typeName) || wellKnownSchema(message) || message.typeName === ANY_TYPE) return;
    reached.add(message.typeName);
    for (const field of message.fields) {
      const held = heldMessage(field);
      if (held) visit(held);
    }
  };
  for (const field of fields) {
    const held = heldMessage(field);
    if (held) visit(held);
  }
  return reached;
}

function heldMessage(field: DescField): DescMessage | undefined {
  switch (field.fieldKind) {
    case 'message':
      return field.message;
    case 'list':
      return field.listKind === 'message' ? field.message : undefined;
    case 'map':
      return field.mapKind === 'message' ? field.message : undefined;
    default:
      return undefined;
  }
}

/** What an enum's schema says of numbers, beside the list of names. */
const ENUM_NUMBERS =
  'Given by name or by number: a query string or a form takes the numbers listed, a JSON body any ' +
  'int32 of an open (proto3) enum. An answer gives the name, or the number of a value not listed.';

const UINT32_MAX = 4294967295;
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

/** The schema of a scalar's JSON value. */
export function scalarSchema(scalar: ScalarType): JsonSchema {
  switch (scalar) {
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: 'integer', format: 'int32' };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: 'integer', format: 'uint32', minimum: 0, maximum: UINT32_MAX };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      // A number while exact (|n| < 2^53), a decimal string beyond: both are accepted in requests.
      return { type: ['integer', 'string'], format: 'int64', pattern: '^-?[0-9]+$' };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: ['integer', 'string'], format: 'uint64', minimum: 0, pattern: '^[0-9]+$' };
    case ScalarType.FLOAT:
      return floatSchema('float');
    case ScalarType.DOUBLE:
      return floatSchema('double');
    case ScalarType.BOOL:
      return { type: 'boolean' };
    case ScalarType.STRING:
      return { type: 'string' };
    case ScalarType.BYTES:
      return { type: 'string', contentEncoding: 'base64' };
  }
}

function floatSchema(format: 'float' | 'double'): JsonSchema {
  return {
    oneOf: [
      { type: 'number', format },
      { type: 'string', enum: ['NaN', 'Infinity', '-Infinity'] },
    ],
  };
}

/** The well-known messages the gateway writes as JSON scalars, or undefined for any other message. */
function wellKnownSchema(message: DescMessage): JsonSchema | undefined {
  switch (message.typeName) {
    case 'google.protobuf.Timestamp':
      // null: unset, or a time a JavaScript Date cannot hold.
      return { type: ['string', 'null'], format: 'date-time' };
    case 'google.protobuf.Duration':
      return { type: ['string', 'null'], pattern: '^-?[0-9]+(\\.[0-9]{1,9})?s$' };
    // As proto3 JSON writes them (struct-json.ts).
    case 'google.protobuf.Struct':
      return { type: ['object', 'null'] };
    case 'google.protobuf.ListValue':
      return { type: ['array', 'null'] };
    case 'google.protobuf.Value':
      return { description: 'Any JSON value.' };
    case 'google.protobuf.FieldMask':
      return { type: ['string', 'null'], description: 'Field paths in lowerCamelCase, separated by commas.' };
  }
  const wrapped = WRAPPER_SCALARS[message.typeName];
  return wrapped === undefined ? undefined : orNull(scalarSchema(wrapped));
}

/**
 * google.protobuf.Any as the gateway reads and writes it (proto3 JSON, as protoc-gen-openapiv2's
 * `protobufAny` has it): the type URL under "@type", then the fields of the message it holds, or
 * that message's JSON under "value" for a well-known type with a JSON form of its own.
 */
function anySchema(): JsonSchema {
  return {
    type: 'object',
    properties: {
      '@type': {
        type: 'string',
        description:
          'The type URL of the message held, e.g. "type.googleapis.com/pkg.v1.Msg": a message the ' +
          "service's descriptors define, or a well-known type.",
      },
    },
    additionalProperties: true,
    description:
      'A message of any type: "@type" names it, and its fields follow (or, for a well-known type with ' +
      'a JSON form of its own, such as google.protobuf.Timestamp, its JSON under "value"). An answer ' +
      'holding a type the service\'s descriptors do not define gives its bytes in base64 under "value".',
  };
}

/** The same schema, also allowing `null`. */
function orNull(schema: JsonSchema): JsonSchema {
  if (typeof schema.type === 'string') return { ...schema, type: [schema.type, 'null'] };
  if (Array.isArray(schema.type)) return { ...schema, type: [...schema.type, 'null'] };
  return { oneOf: [...((schema.oneOf as JsonSchema[] | undefined) ?? [schema]), { type: 'null' }] };
}

/** JSON object keys of a map: the key type's text (strings: anything). */
function mapKeyPattern(key: ScalarType): string | undefined {
  switch (key) {
    case ScalarType.BOOL:
      return '^(true|false)$';
    case ScalarType.STRING:
      return undefined;
    default:
      return '^-?[0-9]+$';
  }
}

function described(schema: JsonSchema, description: string | undefined): JsonSchema {
  return description ? { ...schema, description } : schema;
}

/** The schema with a note after its description. */
export function withNote(schema: JsonSchema, note: string): JsonSchema {
  const description = typeof schema.description === 'string' ? `${schema.description}\n\n${note}` : note;
  return { ...schema, description };
}
