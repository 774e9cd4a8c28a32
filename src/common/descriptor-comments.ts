import type { DescField, DescFile, DescMessage, DescMethod, DescService } from '@bufbuild/protobuf';

/** A descriptor whose comments can be looked up. */
export type CommentedDesc = DescService | DescMethod | DescMessage | DescField;

/**
 * The leading comments of a service, method, message or field, as protoc or buf keep them in the
 * file's source_code_info, with the comment markers' leading space removed; undefined when the
 * descriptor set carries no comments for it (a set built without source info, or stripped).
 */
export function leadingComments(desc: CommentedDesc): string | undefined {
  const path = pathOf(desc);
  const file = fileOf(desc);
  if (!path || !file.proto.sourceCodeInfo) return undefined;
  const location = file.proto.sourceCodeInfo.location.find(
    (candidate) =>
      candidate.path.length === path.length && candidate.path.every((part, index) => part === path[index]),
  );
  const text = location?.leadingComments;
  if (!text) return undefined;
  return text
    .split('\n')
    .map((line) => (line.startsWith(' ') ? line.slice(1) : line))
    .join('\n')
    .trim();
}

// Field numbers of google.protobuf.FileDescriptorProto, DescriptorProto and ServiceDescriptorProto.
const FILE_MESSAGE_TYPE = 4;
const FILE_SERVICE = 6;
const MESSAGE_FIELD = 2;
const MESSAGE_NESTED_TYPE = 3;
const SERVICE_METHOD = 2;

function fileOf(desc: CommentedDesc): DescFile {
  switch (desc.kind) {
    case 'service':
    case 'message':
      return desc.file;
    case 'rpc':
      return desc.parent.file;
    case 'field':
      return desc.parent.file;
  }
}

/** The source_code_info path of a descriptor, or undefined if it cannot be found. */
function pathOf(desc: CommentedDesc): number[] | undefined {
  switch (desc.kind) {
    case 'service': {
      const index = desc.file.services.indexOf(desc);
      return index < 0 ? undefined : [FILE_SERVICE, index];
    }
    case 'rpc': {
      const service = pathOf(desc.parent);
      const index = desc.parent.methods.indexOf(desc);
      return service && index >= 0 ? [...service, SERVICE_METHOD, index] : undefined;
    }
    case 'message': {
      if (desc.parent) {
        const parent = pathOf(desc.parent);
        const index = desc.parent.proto.nestedType.indexOf(desc.proto);
        return parent && index >= 0 ? [...parent, MESSAGE_NESTED_TYPE, index] : undefined;
      }
      const index = desc.file.proto.messageType.indexOf(desc.proto);
      return index < 0 ? undefined : [FILE_MESSAGE_TYPE, index];
    }
    case 'field': {
      const parent = pathOf(desc.parent);
      const index = desc.parent.proto.field.indexOf(desc.proto);
      return parent && index >= 0 ? [...parent, MESSAGE_FIELD, index] : undefined;
    }
  }
}
