import type { DescField, DescMessage } from '@bufbuild/protobuf';

/** The fields of a message by proto name and JSON name, made once per message. */
const fieldsByName = new WeakMap<DescMessage, Map<string, DescField>>();

/**
 * The field of `message` a JSON key names, by its proto name (`page_size`) or its JSON name
 * (`pageSize`). A map lookup: a request body may hold a hundred thousand keys, and a search of a
 * message's fields per key (a registered message may have thousands) took seconds of the event loop.
 */
export function fieldNamed(message: DescMessage, name: string): DescField | undefined {
  let byName = fieldsByName.get(message);
  if (!byName) {
    byName = new Map();
    for (const field of message.fields) byName.set(field.name, field).set(field.jsonName, field);
    fieldsByName.set(message, byName);
  }
  return byName.get(name);
}
