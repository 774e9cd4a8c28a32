import { create, type DescField, type DescMessage, type JsonObject, toBinary } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { FieldMaskSchema } from '@bufbuild/protobuf/wkt';
import type { BodyBinding, HttpRoute } from '../common/http-routes.js';
import { fieldNamed } from './field-named.js';
import type { RestBody } from './rest-operation.js';

// grpc-gateway's "patch feature" (docs/mapping/patch_feature): a PATCH whose body is one field, of a
// request holding exactly one google.protobuf.FieldMask, gets that mask filled from the body's keys
// when the query sets none. A service written for it (AIP-134: an empty mask updates every field)
// took a PATCH of {"title":"x"} through this gateway as "overwrite everything", wiping the rest.

/** The FieldMask field the gateway fills from a PATCH route's body, or undefined when it fills none. */
export function patchMaskField(
  route: Pick<HttpRoute, 'httpMethod' | 'method'> & { readonly body: BodyBinding | RestBody },
): DescField | undefined {
  if (route.httpMethod !== 'PATCH' || route.body.kind !== 'field') return undefined;
  const masks = route.method.input.fields.filter(
    (field) => field.fieldKind === 'message' && field.message.typeName === 'google.protobuf.FieldMask',
  );
  return masks.length === 1 && masks[0] !== route.body.field ? masks[0] : undefined;
}

/**
 * The paths a JSON object of `message` sets, by proto name, as grpc-gateway's FieldMaskFromRequestBody
 * finds them: a non-empty object of a message field is entered, anything else (a scalar, a list, a
 * map, a well-known type, null, an empty object) is a path. Keys that name no field are left out,
 * as the gateway drops them from the request. Breadth first, each level in the body's key order.
 */
export function fieldMaskOfBody(message: DescMessage, body: JsonObject): string[] {
  // A set: a body names a field twice by its two names ({"page_count":1,"pageCount":2}), and a
  // search of a list per path made a body of 100,000 paths take a minute of the event loop.
  const paths = new Set<string>();
  let level: { prefix: string; message: DescMessage; object: JsonObject }[] = [
    { prefix: '', message, object: body },
  ];
  while (level.length > 0) {
    const next: typeof level = [];
    for (const { prefix, message: type, object } of level) {
      for (const key of Object.keys(object)) {
        const field = fieldNamed(type, key);
        if (!field) continue;
        const path = `${prefix}${field.name}`;
        const value = object[key];
        if (enterable(field) && isNonEmptyObject(value)) {
          next.push({ prefix: `${path}.`, message: field.message, object: value });
        } else {
          paths.add(path);
        }
      }
    }
    level = next;
  }
  return [...paths];
}

/** The wire bytes of `field` set to a FieldMask of `paths`, to append to the request's encoding. */
export function encodedMask(field: DescField, paths: readonly string[]): Uint8Array {
  const mask = toBinary(FieldMaskSchema, create(FieldMaskSchema, { paths: [...paths] }));
  return new BinaryWriter().tag(field.number, WireType.LengthDelimited).bytes(mask).finish();
}

function enterable(field: DescField): field is DescField & { fieldKind: 'message' } {
  return field.fieldKind === 'message' && !field.message.typeName.startsWith('google.protobuf.');
}

function isNonEmptyObject(value: unknown): value is JsonObject {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length > 0
  );
}
