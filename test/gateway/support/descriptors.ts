import { create, createFileRegistry, type FileRegistry, setExtension } from '@bufbuild/protobuf';
import { protoCamelCase } from '@bufbuild/protobuf/reflect';
import {
  type DescriptorProto,
  DescriptorProtoSchema,
  type FieldDescriptorProto,
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FieldDescriptorProtoSchema,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  file_google_protobuf_any,
  file_google_protobuf_duration,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
  type MethodOptions,
  MethodOptionsSchema,
} from '@bufbuild/protobuf/wkt';
import { encodeDescriptorSet, loadShopDescriptorSet } from '../../../src/common/descriptors.js';

export const Type = FieldDescriptorProto_Type;
const Label = FieldDescriptorProto_Label;

interface FieldOptions {
  repeated?: boolean;
  /** A message or enum type, fully qualified with a leading dot. */
  typeName?: string;
  oneofIndex?: number;
  proto3Optional?: boolean;
  jsonName?: string;
}

/** A FieldDescriptorProto, as protoc would write it. */
export function field(
  name: string,
  number: number,
  type: FieldDescriptorProto_Type,
  options: FieldOptions = {},
): FieldDescriptorProto {
  return create(FieldDescriptorProtoSchema, {
    name,
    number,
    type,
    label: options.repeated ? Label.REPEATED : Label.OPTIONAL,
    ...(options.typeName ? { typeName: options.typeName } : {}),
    ...(options.oneofIndex !== undefined ? { oneofIndex: options.oneofIndex } : {}),
    ...(options.proto3Optional ? { proto3Optional: true } : {}),
    // protoc always writes json_name: lowerCamelCase unless the field says otherwise.
    jsonName: options.jsonName ?? protoCamelCase(name),
  });
}

/** A message type. */
export function message(
  name: string,
  fields: FieldDescriptorProto[],
  extra: Partial<Pick<DescriptorProto, 'nestedType' | 'oneofDecl' | 'options'>> = {},
): DescriptorProto {
  return create(DescriptorProtoSchema, { name, field: fields, ...extra } as never);
}

/** The nested type protoc makes for `map<K, V> name`. */
export function mapEntry(
  name: string,
  keyType: FieldDescriptorProto_Type,
  valueType: FieldDescriptorProto_Type,
  valueTypeName?: string,
): DescriptorProto {
  return create(DescriptorProtoSchema, {
    name,
    field: [
      field('key', 1, keyType),
      field('value', 2, valueType, valueTypeName ? { typeName: valueTypeName } : {}),
    ],
    options: { mapEntry: true },
  });
}

const SHOP = createFileRegistry(loadShopDescriptorSet());
const HTTP = SHOP.getExtension('google.api.http')!;
const ENVELOPE = SHOP.getExtension('shop.v1.envelope_fields')!;
const HTTP_RULE = SHOP.getMessage('google.api.HttpRule')!;

/** A binding as "METHOD /template", e.g. "GET /goods/{id}". */
type Binding = `${'GET' | 'PUT' | 'POST' | 'DELETE' | 'PATCH'} /${string}`;

function rule(binding: Binding, body = '', additionalBindings: unknown[] = []): unknown {
  const space = binding.indexOf(' ');
  return create(HTTP_RULE, {
    pattern: { case: binding.slice(0, space).toLowerCase(), value: binding.slice(space + 1) },
    body,
    additionalBindings,
  } as never);
}

/**
 * The options of a method with a `google.api.http` rule, as protoc writes them: `binding` and its
 * `body` ("" none, "*" all, or a field), more bindings (`additional`, each with its own body), and
 * the `shop.v1.envelope_fields` the answer shows. A test's own file declares its routes with it.
 */
export function httpOptions(
  binding: Binding,
  options: { body?: string; additional?: (Binding | [Binding, string])[]; envelope?: string[] } = {},
): MethodOptions {
  const methodOptions = create(MethodOptionsSchema);
  const additional = (options.additional ?? []).map((extra) =>
    typeof extra === 'string' ? rule(extra) : rule(extra[0], extra[1]),
  );
  setExtension(methodOptions, HTTP, rule(binding, options.body, additional) as never);
  if (options.envelope?.length) setExtension(methodOptions, ENVELOPE, options.envelope);
  return methodOptions;
}

const WKT_FILES = [
  file_google_protobuf_any.proto,
  file_google_protobuf_timestamp.proto,
  file_google_protobuf_duration.proto,
  file_google_protobuf_wrappers.proto,
];

/** A registry of test files, with the well-known types they may import. */
export function registryOf(...files: FileDescriptorProto[]): FileRegistry {
  return createFileRegistry(create(FileDescriptorSetSchema, { file: [...WKT_FILES, ...files] }));
}

/** The descriptor set a node registers for test files (with the well-known types they import). */
export function descriptorSetOf(...files: FileDescriptorProto[]): Uint8Array {
  const imported = new Set(files.flatMap((file) => file.dependency));
  return encodeDescriptorSet([...WKT_FILES.filter((file) => imported.has(file.name)), ...files]);
}

const A = '.test.anything.v1';

/**
 * `test.anything.v1`: `Holder` holds google.protobuf.Any values (one, a list, a map), and `Payload`
 * is a message of the set that no field names, only Anys hold. `AnythingService.Echo(Holder)
 * returns (Holder)`, routed as `POST /anything` (body `*`), shows `item`, `items` and `by_name`.
 * The file imports any.proto and timestamp.proto, not duration.proto or wrappers.proto.
 */
export function anythingFile(): FileDescriptorProto {
  const any = { typeName: '.google.protobuf.Any' };
  return create(FileDescriptorProtoSchema, {
    name: 'test/anything.proto',
    package: 'test.anything.v1',
    syntax: 'proto3',
    dependency: ['google/protobuf/any.proto', 'google/protobuf/timestamp.proto'],
    messageType: [
      message(
        'Holder',
        [
          field('item', 1, Type.MESSAGE, any),
          field('items', 2, Type.MESSAGE, { repeated: true, ...any }),
          field('by_name', 3, Type.MESSAGE, { repeated: true, typeName: `${A}.Holder.ByNameEntry` }),
        ],
        { nestedType: [mapEntry('ByNameEntry', Type.STRING, Type.MESSAGE, '.google.protobuf.Any')] },
      ),
      message('Payload', [
        field('count', 1, Type.INT32),
        field('big', 2, Type.INT64),
        field('data', 3, Type.BYTES),
        field('label', 4, Type.STRING),
        field('inner', 5, Type.MESSAGE, any),
        field('when', 6, Type.MESSAGE, { typeName: '.google.protobuf.Timestamp' }),
      ]),
    ],
    service: [
      {
        name: 'AnythingService',
        method: [
          {
            name: 'Echo',
            inputType: `${A}.Holder`,
            outputType: `${A}.Holder`,
            options: httpOptions('POST /anything', { body: '*', envelope: ['item', 'items', 'by_name'] }),
          },
        ],
      } as never,
    ],
  });
}

const P = '.test.kitchen.v1';

/**
 * `test.kitchen.v1`: a message with a field of every kind the gateway transcodes and renders, and
 * `KitchenService.Echo(Everything) returns (Everything)`, routed as `POST /kitchen` (body `*`) and
 * `GET /kitchen` (query), and `Update`, routed as `PATCH /kitchen/{f_int32}/{f_nested.b=**}` with the
 * body `self`. Field numbers follow declaration order, except `late` (declared last with
 * number 3) — see the renderer tests.
 */
export function kitchenFile(): FileDescriptorProto {
  const everything = message(
    'Everything',
    [
      field('f_int32', 1, Type.INT32),
      field('f_int64', 2, Type.INT64),
      field('f_uint32', 4, Type.UINT32),
      field('f_uint64', 5, Type.UINT64),
      field('f_sint32', 6, Type.SINT32),
      field('f_sint64', 7, Type.SINT64),
      field('f_fixed32', 8, Type.FIXED32),
      field('f_fixed64', 9, Type.FIXED64),
      field('f_sfixed32', 10, Type.SFIXED32),
      field('f_sfixed64', 11, Type.SFIXED64),
      field('f_float', 12, Type.FLOAT),
      field('f_double', 13, Type.DOUBLE),
      field('f_bool', 14, Type.BOOL),
      field('f_string', 15, Type.STRING),
      field('f_bytes', 16, Type.BYTES),
      field('f_enum', 17, Type.ENUM, { typeName: `${P}.Color` }),
      field('f_nested', 18, Type.MESSAGE, { typeName: `${P}.Nested` }),
      field('r_int32', 19, Type.INT32, { repeated: true }),
      field('r_string', 20, Type.STRING, { repeated: true }),
      field('r_nested', 21, Type.MESSAGE, { repeated: true, typeName: `${P}.Nested` }),
      field('r_enum', 22, Type.ENUM, { repeated: true, typeName: `${P}.Color` }),
      field('m_string_int32', 23, Type.MESSAGE, {
        repeated: true,
        typeName: `${P}.Everything.MStringInt32Entry`,
      }),
      field('m_int64_nested', 24, Type.MESSAGE, {
        repeated: true,
        typeName: `${P}.Everything.MInt64NestedEntry`,
      }),
      field('choice_text', 25, Type.STRING, { oneofIndex: 0 }),
      field('choice_number', 26, Type.INT32, { oneofIndex: 0 }),
      field('o_int32', 27, Type.INT32, { oneofIndex: 1, proto3Optional: true }),
      field('when', 28, Type.MESSAGE, { typeName: '.google.protobuf.Timestamp' }),
      field('how_long', 29, Type.MESSAGE, { typeName: '.google.protobuf.Duration' }),
      field('maybe_int32', 30, Type.MESSAGE, { typeName: '.google.protobuf.Int32Value' }),
      field('self', 31, Type.MESSAGE, { typeName: `${P}.Everything` }),
      field('late', 3, Type.STRING),
    ],
    {
      nestedType: [
        mapEntry('MStringInt32Entry', Type.STRING, Type.INT32),
        mapEntry('MInt64NestedEntry', Type.INT64, Type.MESSAGE, `${P}.Nested`),
      ],
      oneofDecl: [{ name: 'choice' }, { name: '_o_int32' }] as never,
    },
  );
  const nested = message('Nested', [field('a', 1, Type.INT32), field('b', 2, Type.STRING)]);
  return create(FileDescriptorProtoSchema, {
    name: 'test/kitchen.proto',
    package: 'test.kitchen.v1',
    syntax: 'proto3',
    dependency: [
      'google/protobuf/timestamp.proto',
      'google/protobuf/duration.proto',
      'google/protobuf/wrappers.proto',
    ],
    messageType: [everything, nested],
    enumType: [
      {
        name: 'Color',
        value: [
          { name: 'COLOR_UNSPECIFIED', number: 0 },
          { name: 'COLOR_RED', number: 1 },
          { name: 'COLOR_BLUE', number: 2 },
        ],
      } as never,
    ],
    service: [
      {
        name: 'KitchenService',
        method: [
          {
            name: 'Echo',
            inputType: `${P}.Everything`,
            outputType: `${P}.Everything`,
            options: httpOptions('POST /kitchen', { body: '*', additional: ['GET /kitchen'] }),
          },
          {
            name: 'Update',
            inputType: `${P}.Everything`,
            outputType: `${P}.Everything`,
            options: httpOptions('PATCH /kitchen/{f_int32}/{f_nested.b=**}', {
              body: 'self',
              envelope: ['f_int32', 'f_string'],
            }),
          },
        ],
      } as never,
    ],
  });
}

/** `test.wide.v1.WideService`: 64 POST routes, each of a body of 5,000 fields (36 MB documented). */
export function wideFile() {
  const fields = Array.from({ length: 5000 }, (_, index) =>
    field(`field_number_${index}`, index + 1, Type.INT32),
  );
  return create(FileDescriptorProtoSchema, {
    name: 'test/wide.proto',
    package: 'test.wide.v1',
    syntax: 'proto3',
    messageType: [message('Wide', fields)],
    service: [
      {
        name: 'WideService',
        method: Array.from({ length: 64 }, (_, index) => ({
          name: `Put${index}`,
          inputType: '.test.wide.v1.Wide',
          outputType: '.test.wide.v1.Wide',
          options: httpOptions(`POST /wide${index}`, { body: '*' }),
        })),
      } as never,
    ],
  });
}
