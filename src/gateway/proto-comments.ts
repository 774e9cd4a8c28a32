import type {
  DescEnum,
  DescEnumValue,
  DescField,
  DescFile,
  DescMessage,
  DescMethod,
  DescService,
} from '@bufbuild/protobuf';
import type {
  DescriptorProto,
  EnumDescriptorProto,
  FileDescriptorProto,
  SourceCodeInfo_Location,
} from '@bufbuild/protobuf/wkt';

/** A descriptor whose comments can be looked up. */
export type CommentedDesc = DescService | DescMethod | DescMessage | DescField | DescEnum | DescEnumValue;

/**
 * The comment of a service, method, message, field, enum or enum value in the `.proto` source: its
 * leading comment, else its trailing one, with each line's first space (the one after `//`)
 * removed, cut after {@link MAX_COMMENT_LENGTH} characters; undefined when there is none or the
 * descriptor set carries no source info.
 *
 * Comments travel only in `source_code_info`, which `buf build` keeps unless told
 * `--exclude-source-info`: scripts/embed-descriptors.mjs keeps it, so the descriptor sets that the
 * services register carry their comments to the gateway.
 */
export function protoComment(desc: CommentedDesc): string | undefined {
  const location = locationsOf(fileOf(desc).proto).get(desc.proto);
  const text = location?.leadingComments || location?.trailingComments;
  if (!text) return undefined;
  const cleaned = text
    .split('\n')
    .map((line) => (line.startsWith(' ') ? line.slice(1) : line).trimEnd())
    .join('\n')
    .trim();
  return cleaned ? cutComment(cleaned) : undefined;
}

/**
 * Comments longer than this are cut. They come from whoever registers a service, and the API page
 * renders them as Markdown, in time that grows with the square of a comment's length for some texts
 * (60 KB of `*_a` held Chromium's page for 20 s); the shop's longest is under 1,000 characters.
 */
export const MAX_COMMENT_LENGTH = 4096;

/**
 * A comment cut after {@link MAX_COMMENT_LENGTH} UTF-16 units (one less rather than half a pair),
 * then "…": for a comment taken from a descriptor by other means (a route's description).
 */
export function cutComment(text: string): string {
  if (text.length <= MAX_COMMENT_LENGTH) return text;
  const end = /[\uD800-\uDBFF]/.test(text.charAt(MAX_COMMENT_LENGTH - 1))
    ? MAX_COMMENT_LENGTH - 1
    : MAX_COMMENT_LENGTH;
  return `${text.slice(0, end)}…`;
}

// Field numbers of the descriptor messages, the steps of a source_code_info path.
const FILE_MESSAGE_TYPE = 4;
const FILE_ENUM_TYPE = 5;
const FILE_SERVICE = 6;
const MESSAGE_FIELD = 2;
const MESSAGE_NESTED_TYPE = 3;
const MESSAGE_ENUM_TYPE = 4;
const ENUM_VALUE = 2;
const SERVICE_METHOD = 2;

/** Each file's locations by the descriptor proto they describe, built once per file. */
const locationCache = new WeakMap<FileDescriptorProto, Map<object, SourceCodeInfo_Location>>();

function locationsOf(file: FileDescriptorProto): Map<object, SourceCodeInfo_Location> {
  let byProto = locationCache.get(file);
  if (byProto) return byProto;
  byProto = new Map();
  const byPath = new Map<string, SourceCodeInfo_Location>();
  for (const location of file.sourceCodeInfo?.location ?? []) {
    const key = location.path.join('.');
    // The first location of a path is the element's own; later ones are parts of it.
    if (!byPath.has(key)) byPath.set(key, location);
  }
  const note = (proto: object, path: readonly number[]): void => {
    const location = byPath.get(path.join('.'));
    if (location) byProto.set(proto, location);
  };
  const visitEnum = (enumProto: EnumDescriptorProto, path: readonly number[]): void => {
    note(enumProto, path);
    each(enumProto.value, path, ENUM_VALUE, note);
  };
  const visitMessage = (message: DescriptorProto, path: readonly number[]): void => {
    note(message, path);
    each(message.field, path, MESSAGE_FIELD, note);
    each(message.nestedType, path, MESSAGE_NESTED_TYPE, visitMessage);
    each(message.enumType, path, MESSAGE_ENUM_TYPE, visitEnum);
  };
  if (byPath.size > 0) {
    each(file.messageType, [], FILE_MESSAGE_TYPE, visitMessage);
    each(file.enumType, [], FILE_ENUM_TYPE, visitEnum);
    each(file.service, [], FILE_SERVICE, (service, path) => {
      note(service, path);
      each(service.method, path, SERVICE_METHOD, note);
    });
  }
  locationCache.set(file, byProto);
  return byProto;
}

/** Visits each element of a repeated descriptor field with its path: the parent's, the field, the index. */
function each<T>(
  items: readonly T[],
  parent: readonly number[],
  fieldNumber: number,
  visit: (item: T, path: readonly number[]) => void,
): void {
  for (const [index, item] of items.entries()) visit(item, [...parent, fieldNumber, index]);
}

function fileOf(desc: CommentedDesc): DescFile {
  switch (desc.kind) {
    case 'service':
    case 'message':
    case 'enum':
      return desc.file;
    case 'rpc':
      return desc.parent.file;
    case 'enum_value':
      return desc.parent.file;
    case 'field':
      return desc.parent.file;
  }
}
