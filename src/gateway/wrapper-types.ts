import { ScalarType } from '@bufbuild/protobuf';

/**
 * The google.protobuf wrapper messages and the scalar each wraps: in JSON (and so on the REST
 * surface) a wrapper is written as its bare value, both when reading parameters and when rendering.
 * Without a prototype, so that a message of no package named `constructor` or `toString` is no wrapper.
 */
export const WRAPPER_SCALARS: Readonly<Record<string, ScalarType>> = Object.freeze(
  Object.assign(Object.create(null) as Record<string, ScalarType>, {
    'google.protobuf.DoubleValue': ScalarType.DOUBLE,
    'google.protobuf.FloatValue': ScalarType.FLOAT,
    'google.protobuf.Int64Value': ScalarType.INT64,
    'google.protobuf.UInt64Value': ScalarType.UINT64,
    'google.protobuf.Int32Value': ScalarType.INT32,
    'google.protobuf.UInt32Value': ScalarType.UINT32,
    'google.protobuf.BoolValue': ScalarType.BOOL,
    'google.protobuf.StringValue': ScalarType.STRING,
    'google.protobuf.BytesValue': ScalarType.BYTES,
  }),
);
