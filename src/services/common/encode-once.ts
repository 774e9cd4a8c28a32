import type { ServiceDefinition } from '@grpc/grpc-js';

/**
 * The service definition with each method's response serializer remembering what it made for each
 * answer object: an answer shared by many calls (see FreshReadCoalescer) is encoded once, not once
 * per call. Answers are never changed after they are returned, so the bytes stay right; a WeakMap
 * lets each go with its answer.
 */
export function encodingSharedAnswersOnce<Definition extends ServiceDefinition>(
  definition: Definition,
): Definition {
  const methods = Object.entries(definition).map(([name, method]) => {
    const serialize = method.responseSerialize;
    const encoded = new WeakMap<object, Buffer>();
    const responseSerialize = (answer: unknown): Buffer => {
      if (typeof answer !== 'object' || answer === null) return serialize(answer);
      let bytes = encoded.get(answer);
      if (!bytes) {
        bytes = serialize(answer);
        encoded.set(answer, bytes);
      }
      return bytes;
    };
    return [name, { ...method, responseSerialize }];
  });
  return Object.fromEntries(methods) as Definition;
}
