import { ScalarType } from '@bufbuild/protobuf';

/**
 * The google.protobuf wrapper messages and the scalar each wraps: in JSON (and so on the REST
 * surface) a wrapper is written as its bare value, both when reading parameters and when rendering.
 */
export const WRAPPER_SCALARS: Readonly<Record<string, ScalarType>> = Object.freeze({
  'google.protobuf.DoubleValue': ScalarType.DOUBLE,
  'google.protobuf.FloatValue': ScalarType.FLOAT,
  'google.protobuf.Int64Value': ScalarType.INT64,
  'google.protobuf.UInt64Value': ScalarType.UINT64,
  'google.protobuf.Int32Value': ScalarType.INT32,
  'google.protobuf.UInt32Value': ScalarType.UINT32,
  'google.protobuf.BoolValue': ScalarType.BOOL,
  'google.protobuf.StringValue': ScalarType.STRING,
  'google.protobuf.BytesValue': ScalarType.BYTES,
});
