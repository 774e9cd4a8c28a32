import {
  type DescField,
  type DescMessage,
  fromJson,
  type JsonObject,
  type Registry,
  ScalarType,
  toBinary,
} from '@bufbuild/protobuf';
import { hasCustomJsonRepresentation } from '@bufbuild/protobuf/wkt';
import type { HttpRoute } from '../common/http-routes.js';
import { ANY_TYPE, anyMessageType, WELL_KNOWN_ANY_TYPES } from './any-types.js';
import { fieldNamed } from './field-named.js';
import { gatewayErrors } from './gateway-error.js';
import { encodedMask, fieldMaskOfBody, patchMaskField } from './patch-field-mask.js';
import { durationJsonOfText } from './query-duration.js';
import { percentEscapesAreUtf8, type RequestInput } from './request-input.js';

/**
 * A parameter that cannot become its field's value. The gateway answers it as the book does, with
 * "Invalid Parameters"; the message (which field, what was expected) is for logs.
 */
export class InvalidParameterError extends Error {
  override readonly name = 'InvalidParameterError';
}

/** What a REST request gives for its request message. */
export interface RestRequest {
  /** The values of the route's path variables, decoded, in template order. */
  readonly pathValues: readonly string[];
  /** The query string, after the "?" (empty if none). */
  readonly query: string;
  /** The body, as read for the route (NO_INPUT when it has none or the route takes none). */
  readonly body: RequestInput;
}

/** Builds the protobuf bytes of one route's request message from a REST request. */
export type RequestDecoder = (request: RestRequest) => Buffer;

/** Deeper message nesting than this in a body is refused, so a recursive type cannot exhaust the stack. */
const MAX_DEPTH = 32;

/**
 * Compiles the decoder of one route, following its HttpRule: path variables set their fields; the
 * body is the whole message (`body: "*"`) or one field; the query string sets the fields the route
 * leaves to it (see {@link HttpRoute.queryFields}), nested ones by dotted names (`a.b=1`).
 *
 * The message is built by @bufbuild/protobuf's proto3 JSON parser (`fromJson`), so a JSON body reads
 * as proto3 JSON does: a field by its proto or JSON name, numbers of any integer type as JSON numbers
 * or numeric strings ("1000" is 1000; "1.9", "abc" or a value out of the type's range is invalid),
 * 64-bit integers exact, floats also "NaN" and "Infinity", `null` for unset, one member per oneof, the
 * well-known types in their JSON forms. Keys that name no field are dropped first (the book's
 * clients send `passwordConfirm`), so that the parser can run strict: an enum name the enum lacks is
 * invalid rather than silently unset, as proto3's "ignore unknown fields" would have it.
 *
 * Text (query strings, form bodies, path segments) has no types, so a small adapter gives each value
 * its field's JSON type first, and is stricter than JSON where text would be ambiguous: integers are
 * decimal digits only, floats decimal numbers (or "NaN", "Infinity", "-Infinity") only, bools `true` or `false`, enums a name or a
 * number the enum defines; a repeated field takes its key once per element, a map of scalars or
 * enums one key per entry (`labels[env]=prod`); a singular field given twice, a map without a key,
 * or a message other than a well-known type with a string form is invalid.
 *
 * A `google.protobuf.Any` is read as proto3 JSON has it: `{"@type": "type.googleapis.com/pkg.Msg",
 * ...the fields of pkg.Msg}`, or `{"@type": ..., "value": <its JSON>}` for a well-known type with a
 * JSON form of its own (Timestamp, Duration, the wrappers, Struct, Value, ListValue, FieldMask,
 * Any), `{}` for an empty one. `types` are the messages it may name: the node's descriptor set and
 * the well-known types (see any-types.ts); another name, or none, is invalid. Its payload is checked
 * as any message is (unknown keys dropped, numbers and base64 as strict), and counts for the depth.
 * The service gets the type URL as `type.googleapis.com/<name>`, whatever its prefix in the request.
 *
 * Where two sources name one field, the path wins over the body and the query. A PATCH whose body
 * is one field gets its request's one FieldMask filled from the body's keys when the query sets
 * none, as grpc-gateway does (see patch-field-mask.ts).
 *
 * Throws {@link InvalidParameterError} for values the request message cannot take, and the
 * gateway's 400 for a query string whose %-escapes are not UTF-8.
 */
export function compileRequestDecoder(
  route: HttpRoute,
  types: Registry = WELL_KNOWN_ANY_TYPES,
): RequestDecoder {
  const input = route.method.input;
  const queryFields = new Set(route.queryFields);
  const bodyField = route.body.kind === 'field' ? route.body.field : undefined;
  const maskField = patchMaskField(route);
  return ({ pathValues, query, body }) => {
    let json = emptyObject();
    if (route.body.kind === 'all') {
      if (body.kind === 'json') json = Object.assign(emptyObject(), body.object);
      else if (body.kind === 'text') addText(input, json, body.params, undefined);
      // A list or a scalar read for another instance's plan, whose body is one field.
      else if (body.kind === 'json-value') throw gatewayErrors.notAnObject();
    } else if (bodyField && body.kind !== 'none') {
      if (body.kind === 'json') {
        json[bodyField.name] = body.object as JsonObject;
      } else if (body.kind === 'json-value') {
        json[bodyField.name] = body.value as JsonObject[string];
      } else if (bodyField.fieldKind === 'message') {
        const value = emptyObject();
        addText(bodyField.message, value, body.params, undefined);
        json[bodyField.name] = value;
      } else {
        throw new InvalidParameterError(`${bodyField.name} cannot be given in a form`);
      }
    }
    if (queryFields.size > 0 && query.length > 0) {
      // Malformed text, as a body or a path that is not UTF-8 is: 400, not the book's "Invalid Parameters".
      if (!percentEscapesAreUtf8(query)) throw gatewayErrors.queryNotUtf8();
      addText(input, json, new URLSearchParams(query), queryFields);
    }
    route.pathVariables.forEach((variable, index) => {
      setPath(
        json,
        variable.fields,
        textToJson(variable.fields[variable.fields.length - 1]!, pathValues[index]!),
      );
    });
    let message: ReturnType<typeof fromJson>;
    try {
      message = fromJson(input, knownFieldsOnly(input, json, 0, types), {
        recursionLimit: MAX_DEPTH,
        registry: types,
      });
    } catch (error) {
      if (error instanceof InvalidParameterError) throw error;
      throw new InvalidParameterError(withoutValues((error as Error).message));
    }
    let bytes: Uint8Array;
    try {
      bytes = toBinary(input, message);
    } catch (error) {
      // A proto2 `required` field the request left unset (a node may register proto2 messages).
      throw new InvalidParameterError(encodingProblem((error as Error).message));
    }
    if (maskField && bodyField?.fieldKind === 'message' && body.kind === 'json') {
      // grpc-gateway's patch feature (see patch-field-mask.ts), unless the query set the mask.
      const set = (message as unknown as Record<string, { paths?: string[] } | undefined>)[
        maskField.localName
      ];
      if (!set?.paths?.length) {
        const mask = encodedMask(maskField, fieldMaskOfBody(bodyField.message, body.object as JsonObject));
        return Buffer.concat([bytes, mask]);
      }
    }
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

/** protobuf-es's account of a message it could not encode, naming the field but no value. */
function encodingProblem(message: string): string {
  const field = /^cannot encode field ([\w.]+) to binary/.exec(message);
  if (!field) return 'the request message does not encode';
  return `${field[1]}: ${message.endsWith('required field not set') ? 'required field not set' : 'cannot be encoded'}`;
}

const FROM_JSON = ' from JSON';

/**
 * protobuf-es's account of JSON it could not decode, without the value it quotes: the message is
 * logged, and a password sent as a number would be in it ("expected string, got 12345678"). What
 * stays: the field or message, and the type it expected when it says so.
 */
export function withoutValues(message: string): string {
  const end = message.indexOf(FROM_JSON);
  if (end < 0) return 'the JSON does not decode to the request message';
  const expected = /^: (?:list item #\d+: )?(expected [\w. ()]+?)(?:,|:|$)/.exec(
    message.slice(end + FROM_JSON.length),
  );
  return `${message.slice(0, end + FROM_JSON.length)}${expected ? `: ${expected[1]}` : ''}`;
}

/**
 * A copy of a JSON object of `message` without the keys that name no field, at every depth of plain
 * messages and of the messages Anys hold (the other well-known types have JSON forms of their own
 * and are left to the parser).
 */
function knownFieldsOnly(message: DescMessage, json: JsonObject, depth: number, types: Registry): JsonObject {
  if (depth > MAX_DEPTH) throw new InvalidParameterError(`${message.typeName}: nested too deeply`);
  const known = emptyObject();
  for (const key of Object.keys(json)) {
    const field = fieldNamed(message, key);
    if (!field) continue;
    const value = checkNumberStrings(field, json[key]);
    const nested = field.fieldKind === 'message' || field.fieldKind === 'list' || field.fieldKind === 'map';
    const type = nested && 'message' in field ? field.message : undefined;
    if (!type || value === null) {
      known[key] = value as JsonObject[string];
      continue;
    }
    let clean: (item: JsonObject[string]) => JsonObject[string];
    if (type.typeName === ANY_TYPE) {
      clean = (item) => knownAnyFields(item, depth + 1, types, field.name);
    } else if (type.typeName.startsWith('google.protobuf.')) {
      known[key] = value as JsonObject[string];
      continue;
    } else {
      clean = (item) => (isObject(item) ? knownFieldsOnly(type, item, depth + 1, types) : item);
    }
    if (field.fieldKind === 'message') {
      known[key] = clean(value as JsonObject[string]);
    } else if (field.fieldKind === 'list') {
      known[key] = Array.isArray(value) ? value.map(clean) : (value as JsonObject[string]);
    } else {
      known[key] = isObject(value) ? mapValues(value, clean) : (value as JsonObject[string]);
    }
  }
  return known;
}

/**
 * The JSON of a google.protobuf.Any checked as {@link knownFieldsOnly} checks a message: its type
 * must be one of `types`, and its payload is checked as that type's. Anything but an object is left
 * to the parser, which refuses it.
 */
function knownAnyFields(
  value: JsonObject[string],
  depth: number,
  types: Registry,
  name: string,
): JsonObject[string] {
  if (!isObject(value)) return value;
  if (depth > MAX_DEPTH) throw new InvalidParameterError(`${name}: nested too deeply`);
  const keys = Object.keys(value);
  // An empty Any, as proto3 JSON writes one.
  if (keys.length === 0) return value;
  const typeUrl = Object.hasOwn(value, '@type') ? value['@type'] : undefined;
  if (typeof typeUrl !== 'string' || typeUrl === '') {
    throw new InvalidParameterError(`${name}: an Any needs "@type"`);
  }
  const type = anyMessageType(types, typeUrl);
  // Not the URL: it is the client's text, and this message is logged.
  if (!type) throw new InvalidParameterError(`${name}: "@type" names no type this service defines`);
  if (hasCustomJsonRepresentation(type)) {
    const any = emptyObject();
    any['@type'] = typeUrl;
    if (!Object.hasOwn(value, 'value')) return any;
    const payload = value.value as JsonObject[string];
    if (type.typeName === ANY_TYPE) any.value = knownAnyFields(payload, depth + 1, types, name);
    else any.value = checkWrapped(type, payload, name) as JsonObject[string];
    return any;
  }
  const fields = emptyObject();
  for (const key of keys) if (key !== '@type') fields[key] = value[key]!;
  const any = knownFieldsOnly(type, fields, depth + 1, types);
  any['@type'] = typeUrl;
  return any;
}

/**
 * An integer given as a JSON string: decimal digits, with a fraction or an exponent as proto3 JSON
 * allows ("1.0", "1e3"; the parser then checks that the value is whole and in range).
 */
const INTEGER_STRING = /^-?([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$/;
const FLOAT_WORDS = new Set(['NaN', 'Infinity', '-Infinity']);

/** The integer types whose range passes 2^53, past which a JSON number is not read exactly. */
const SIXTY_FOUR_BIT = new Set([
  ScalarType.INT64,
  ScalarType.UINT64,
  ScalarType.SINT64,
  ScalarType.FIXED64,
  ScalarType.SFIXED64,
]);

/**
 * Refuses a numeric field's JSON string that is not a decimal number. The parser reads such strings
 * with `Number()`, which also takes "0x10", "0b101", "0o17", "+5", "5." and surrounding spaces;
 * proto3 JSON allows none of them, and a typo should not become a price. Refuses a 64-bit integer
 * written as a JSON number of 2^53 or more too: JSON.parse has rounded it to a double already
 * (9007199254740993 reads as ...992), and a value changed without a word is worse than a 400.
 */
function checkNumberString(type: ScalarType, value: unknown, name: string): unknown {
  if (typeof value === 'number') {
    if (SIXTY_FOUR_BIT.has(type) && Number.isInteger(value) && !Number.isSafeInteger(value)) {
      throw new InvalidParameterError(
        `${name} must be written as a string from 2^53 on, where JSON numbers are rounded`,
      );
    }
    return value;
  }
  if (typeof value !== 'string') return value;
  switch (type) {
    case ScalarType.BYTES:
      if (isBase64(value)) return value;
      throw new InvalidParameterError(`${name} must be base64 (standard or URL-safe)`);
    case ScalarType.STRING:
    case ScalarType.BOOL:
      return value;
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE:
      if (FLOAT_WORDS.has(value) || DECIMAL.test(value)) return value;
      throw new InvalidParameterError(`${name} must be a decimal number`);
  }
  const match = INTEGER_STRING.exec(value);
  if (!match) throw new InvalidParameterError(`${name} must be a decimal integer`);
  const [, integerDigits = '', fractionDigits = '', exponentText] = match;
  const exponent = Number(exponentText ?? 0);
  if (!isWhole(integerDigits, fractionDigits, exponent)) {
    throw new InvalidParameterError(`${name} must be a whole number`);
  }
  // The parser reads a 64-bit string with BigInt, which takes digits only: "1e3" and "1.0", which
  // proto3 JSON allows and a 32-bit field took, were out of range there.
  if (SIXTY_FOUR_BIT.has(type) && (fractionDigits !== '' || exponentText !== undefined)) {
    return wholeDigits(
      value.startsWith('-'),
      integerDigits + fractionDigits,
      integerDigits.length + exponent,
      name,
    );
  }
  return value;
}

/**
 * The plain decimal of a whole number written as digits whose point is after `point` of them
 * (isWhole checked that what follows is zeros). Past 20 digits no 64-bit integer fits: refused
 * before a large exponent ("1e999999999") makes a string of that many zeros.
 */
function wholeDigits(negative: boolean, digits: string, point: number, name: string): string {
  const whole = (point <= 0 ? '' : point <= digits.length ? digits.slice(0, point) : digits).replace(
    /^0+/,
    '',
  );
  const length = whole.length + Math.max(point - digits.length, 0);
  if (whole === '') return '0';
  if (length > 20) throw new InvalidParameterError(`${name} is out of range`);
  const text = whole.padEnd(length, '0');
  return negative ? `-${text}` : text;
}

/**
 * Whether a string is base64 as proto3 JSON takes it for bytes: the standard or the URL-safe
 * alphabet (not both in one value), with or without its padding, line breaks allowed (as Go's
 * decoder, which grpc-gateway uses, skips them). The parser's decoder skips every character it does
 * not know and decodes what is left, so that a query's unescaped "+" (read as a space: "+/8=" is
 * " /8=") gave the bytes ff instead of fb ff, and "AQ==ID" gave 01 20: other bytes than the client
 * sent, without a word.
 */
function isBase64(value: string): boolean {
  const text = value.includes('\n') || value.includes('\r') ? value.replace(/\r?\n|\r/g, '') : value;
  const unpadded = text.endsWith('==') ? text.slice(0, -2) : text.endsWith('=') ? text.slice(0, -1) : text;
  if (unpadded.length % 4 === 1) return false;
  if (unpadded.length !== text.length && text.length % 4 !== 0) return false;
  return BASE64_STANDARD.test(unpadded) || BASE64_URL.test(unpadded);
}

const BASE64_STANDARD = /^[A-Za-z0-9+/]*$/;
const BASE64_URL = /^[A-Za-z0-9_-]*$/;

/**
 * Whether a decimal written as integer digits, fraction digits and an exponent is whole, read from
 * its digits: the parser's `Number()` first rounds to a double, so that "2.0000000000000001" was 2.
 */
function isWhole(integerDigits: string, fractionDigits: string, exponent: number): boolean {
  const digits = integerDigits + fractionDigits;
  const point = integerDigits.length + exponent;
  if (point >= digits.length) return true;
  return /^0*$/.test(digits.slice(Math.max(point, 0)));
}

/** Checks a field's JSON value (see checkNumberString); returns it, its 64-bit integer strings made plain. */
function checkNumberStrings(field: DescField, value: JsonObject[string] | undefined): JsonObject[string] {
  const check = (item: unknown): unknown => {
    if (field.scalar !== undefined) return checkNumberString(field.scalar, item, field.name);
    if (field.message !== undefined) return checkWrapped(field.message, item, field.name);
    return item;
  };
  switch (field.fieldKind) {
    case 'scalar':
    case 'message':
      return check(value) as JsonObject[string];
    case 'list':
      return (Array.isArray(value) ? value.map(check) : value) as JsonObject[string];
    case 'map':
      return (
        isObject(value) ? mapValues(value, (item) => check(item) as JsonObject[string]) : value
      ) as JsonObject[string];
    default:
      return value as JsonObject[string];
  }
}

/** A wrapper type's JSON value is its wrapped scalar's (`google.protobuf.Int32Value`: "5"). */
function checkWrapped(message: DescMessage, value: unknown, name: string): unknown {
  if (!WRAPPERS.has(message.typeName)) return value;
  const wrapped = message.fields[0];
  return wrapped?.fieldKind === 'scalar' ? checkNumberString(wrapped.scalar, value, name) : value;
}

function mapValues(
  object: JsonObject,
  convert: (value: JsonObject[string]) => JsonObject[string],
): JsonObject {
  const result: JsonObject = {};
  for (const key of Object.keys(object)) {
    Object.defineProperty(result, key, { value: convert(object[key]!), enumerable: true, writable: true });
  }
  return result;
}

/** Sets a field path in a JSON object, copying the objects on the way, and drops other names of its fields. */
function setPath(json: JsonObject, fields: readonly DescField[], value: unknown): void {
  let target = json;
  fields.forEach((field, index) => {
    const existing = target[field.name] ?? target[field.jsonName];
    delete target[field.jsonName];
    if (index === fields.length - 1) {
      target[field.name] = value as JsonObject[string];
      return;
    }
    const child = Object.assign(emptyObject(), isObject(existing) ? existing : {});
    target[field.name] = child;
    target = child;
  });
}

/**
 * Adds text parameters to a JSON object of `message`. `allowed`: the top-level fields the text may
 * set (others are ignored, as unknown keys are); undefined: any.
 */
function addText(
  message: DescMessage,
  json: JsonObject,
  params: Iterable<[string, string]>,
  allowed: ReadonlySet<DescField> | undefined,
): void {
  for (const [key, text] of params) {
    // `labels[env]=prod`: one entry of a map field, as grpc-gateway reads it.
    const entry = MAP_ENTRY_KEY.exec(key);
    const names = (entry ? entry[1]! : key).split('.');
    let parent = message;
    let target = json;
    let field: DescField | undefined;
    for (let index = 0; index < names.length; index++) {
      field = fieldNamed(parent, names[index]!);
      // An unknown name, or a field the route does not take from here, is ignored.
      if (!field || (index === 0 && allowed && !allowed.has(field))) {
        field = undefined;
        break;
      }
      if (index === names.length - 1) break;
      if (field.fieldKind !== 'message' || hasTextForm(field.message)) {
        throw new InvalidParameterError(`${key}: ${field.name} has no fields to set`);
      }
      const existing = Object.hasOwn(target, field.name) ? target[field.name] : undefined;
      const child = isObject(existing) ? existing : emptyObject();
      target[field.name] = child;
      target = child;
      parent = field.message;
    }
    if (!field) continue;
    if (entry) {
      addMapEntry(field, target, entry[2]!, text, key);
    } else if (field.fieldKind === 'list') {
      // Own properties only: a field named "constructor" or "toString" would find Object's.
      const list = Object.hasOwn(target, field.name) ? (target[field.name] as unknown[]) : [];
      list.push(listElementToJson(field, text));
      target[field.name] = list as JsonObject[string];
    } else {
      if (Object.hasOwn(target, field.name) || Object.hasOwn(target, field.jsonName)) {
        throw new InvalidParameterError(`${key} is given twice`);
      }
      target[field.name] = textToJson(field, text) as JsonObject[string];
    }
  }
}

/** A text parameter's key naming one entry of a map: `name[key]` (or `a.b[key]`), the key maybe empty. */
const MAP_ENTRY_KEY = /^([^[\]]+)\[([^[\]]*)\]$/;

/**
 * Sets one entry of a map field from text (`labels[env]=prod`): silently ignored as a name no field
 * has, such a parameter was lost without a word. The key is checked by the map's key type, the value
 * by its value type (a scalar or an enum: a message has no text form); a key given twice is invalid.
 */
function addMapEntry(field: DescField, target: JsonObject, mapKey: string, text: string, key: string): void {
  if (field.fieldKind !== 'map') throw new InvalidParameterError(`${key}: ${field.name} is not a map`);
  if (field.mapKind === 'message') {
    throw new InvalidParameterError(
      `${key}: the values of ${field.name} cannot be given in a query string or a form`,
    );
  }
  // Checked, and for a bool key written as JSON writes it: `flags[1]` and `flags[true]` are one key.
  const entryKey = String(scalarText(field.mapKey, mapKey, `${field.name}'s key`));
  const existing = Object.hasOwn(target, field.name) ? target[field.name] : undefined;
  const map = isObject(existing) ? existing : emptyObject();
  if (Object.hasOwn(map, entryKey)) throw new InvalidParameterError(`${key} is given twice`);
  map[entryKey] = (
    field.mapKind === 'enum'
      ? enumText(field.enum.values, text, field.name)
      : scalarText(field.scalar, text, field.name)
  ) as JsonObject[string];
  target[field.name] = map;
}

/** A text value as the JSON value of a singular field. */
function textToJson(field: DescField, text: string): unknown {
  switch (field.fieldKind) {
    case 'scalar':
      return scalarText(field.scalar, text, field.name);
    case 'enum':
      return enumText(field.enum.values, text, field.name);
    case 'message':
      return messageText(field.message, text, field.name);
    default:
      throw new InvalidParameterError(`${field.name} cannot be given in a query string or a form`);
  }
}

function listElementToJson(field: DescField & { fieldKind: 'list' }, text: string): unknown {
  switch (field.listKind) {
    case 'scalar':
      return scalarText(field.scalar, text, field.name);
    case 'enum':
      return enumText(field.enum.values, text, field.name);
    case 'message':
      return messageText(field.message, text, field.name);
  }
}

const INTEGER = /^-?[0-9]+$/;

const TEXT_BOOLS: ReadonlyMap<string, boolean> = new Map([
  ...['1', 't', 'T', 'true', 'TRUE', 'True'].map((text): [string, boolean] => [text, true]),
  ...['0', 'f', 'F', 'false', 'FALSE', 'False'].map((text): [string, boolean] => [text, false]),
]);
// Digits, then a fraction whose point is not optional: `[0-9]+\.?[0-9]*` could split a run of
// digits between its two parts every way, quadratic on a long string of digits that fails to match
// (a 40,000-digit price took the gateway's event loop a second; a 1 MiB body, minutes).
const DECIMAL = /^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

function scalarText(type: ScalarType, text: string, name: string): unknown {
  switch (type) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return text;
    case ScalarType.BOOL: {
      // What grpc-gateway's strconv.ParseBool takes in a query or a path: `?active=1` too.
      const value = TEXT_BOOLS.get(text);
      if (value !== undefined) return value;
      throw new InvalidParameterError(`${name} must be true or false (or 1, 0, t, f, TRUE, FALSE)`);
    }
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE:
      // The special values as proto3 JSON spells them, as the gateway writes them in answers and
      // openapi.json lists them for a query parameter too (grpc-gateway's ParseFloat takes them).
      if (DECIMAL.test(text) || FLOAT_WORDS.has(text)) return text;
      throw new InvalidParameterError(`${name} must be a decimal number, NaN, Infinity or -Infinity`);
    default:
      if (INTEGER.test(text)) return text;
      throw new InvalidParameterError(`${name} must be an integer`);
  }
}

function enumText(values: readonly { name: string; number: number }[], text: string, name: string): unknown {
  if (values.some((value) => value.name === text)) return text;
  if (INTEGER.test(text) && values.some((value) => value.number === Number(text))) return Number(text);
  throw new InvalidParameterError(`${name} must be one of ${values.map((value) => value.name).join(', ')}`);
}

/** The well-known types whose JSON form is a string, taken from text as it is. */
const STRING_FORMS = new Set([
  'google.protobuf.Timestamp',
  'google.protobuf.Duration',
  'google.protobuf.FieldMask',
]);
/** The wrapper types: their JSON form is the wrapped value's. */
const WRAPPERS = new Set(
  ['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map(
    (name) => `google.protobuf.${name}Value`,
  ),
);

function hasTextForm(message: DescMessage): boolean {
  return STRING_FORMS.has(message.typeName) || WRAPPERS.has(message.typeName);
}

function messageText(message: DescMessage, text: string, name: string): unknown {
  if (message.typeName === 'google.protobuf.Duration') {
    const json = durationJsonOfText(text);
    if (json !== undefined) return json;
    throw new InvalidParameterError(`${name} must be a duration, such as 1.5s, 250ms or 1h30m`);
  }
  if (STRING_FORMS.has(message.typeName)) return text;
  if (WRAPPERS.has(message.typeName)) return textToJson(message.fields[0]!, text);
  throw new InvalidParameterError(`${name} cannot be given in a query string or a form`);
}

/**
 * A JSON object to build a request in, without a prototype: a proto field may be named `__proto__`
 * (or `constructor`), and on a plain object assigning `__proto__` sets the prototype instead of the
 * field, so that the field was dropped. The parser reads own keys only, as it does a parsed body's.
 */
function emptyObject(): JsonObject {
  return Object.create(null) as JsonObject;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
