// The Any renderer lives here, beside the compiler, because it compiles a renderer for each type it
// meets at run time: apart, the two files would import each other.

import { type DescField, type DescMessage, type Registry, ScalarType } from '@bufbuild/protobuf';
import { hasCustomJsonRepresentation } from '@bufbuild/protobuf/wkt';
import { ANY_TYPE, anyMessageType } from './any-types.js';
import type { JsonWriter } from './json-writer.js';
import { EMPTY_MESSAGE, MessageRenderer } from './message-renderer.js';
import {
  enumPlan,
  type FieldPlan,
  fieldPlan,
  json,
  MAX_DEPTH,
  MESSAGE,
  type Renderer,
  Shape,
  scalarPlan,
  type ValuePlan,
  valuePlan,
} from './value-plan.js';
import { wellKnownRenderer } from './well-known-renderer.js';
import { MalformedMessageError, Wire, WireReader } from './wire-reader.js';
import { writeValue } from './write-value.js';

/** Builds renderers for one route; message renderers are shared so that recursive types work. */
export class RendererCompiler {
  readonly #messages = new Map<string, Renderer>();

  /** `types`: the messages an Any may hold (see AnyRenderer). */
  constructor(readonly types: Registry) {}

  message(desc: DescMessage): Renderer {
    const cached = this.#messages.get(desc.typeName);
    if (cached) return cached;
    const special = desc.typeName === ANY_TYPE ? new AnyRenderer(this) : wellKnownRenderer(desc);
    if (special) {
      this.#messages.set(desc.typeName, special);
      return special;
    }
    const renderer = new MessageRenderer(desc.typeName);
    // Registered before its fields are compiled, so a recursive type finds itself.
    this.#messages.set(desc.typeName, renderer);
    renderer.init(
      desc.fields.map((field) => this.field(field, desc)),
      false,
    );
    return renderer;
  }

  field(field: DescField, parent: DescMessage): FieldPlan {
    const base = {
      number: field.number,
      key: Buffer.from(`${JSON.stringify(field.name)}:`),
      oneof: field.oneof ? parent.oneofs.indexOf(field.oneof) : -1,
    };
    switch (field.fieldKind) {
      case 'scalar':
        return fieldPlan(base, Shape.Single, scalarPlan(field.scalar, field.getDefaultValue()));
      case 'enum':
        return fieldPlan(base, Shape.Single, enumPlan(field.enum, field.getDefaultValue()));
      case 'message':
        refuseGroups(field);
        return fieldPlan(base, Shape.Message, this.#messagePlan(field.message, 'null'));
      case 'list':
        if (field.listKind === 'message') {
          refuseGroups(field);
          return fieldPlan(base, Shape.List, this.#messagePlan(field.message, '[]'));
        }
        return fieldPlan(
          base,
          Shape.List,
          field.listKind === 'enum'
            ? enumPlan(field.enum, undefined, '[]')
            : scalarPlan(field.scalar, [], '[]'),
        );
      case 'map': {
        let value: ValuePlan;
        if (field.mapKind === 'message') value = this.#messagePlan(field.message, '{}');
        else if (field.mapKind === 'enum') value = enumPlan(field.enum, undefined);
        else value = scalarPlan(field.scalar, undefined);
        const plan = fieldPlan(base, Shape.Map, { ...value, absent: json('{}') }, field.mapKey, value);
        return plan;
      }
    }
  }

  #messagePlan(desc: DescMessage, absent: string): ValuePlan {
    return valuePlan(MESSAGE, Wire.LengthDelimited, undefined, this.message(desc), absent);
  }
}

function refuseGroups(field: { name: string; delimitedEncoding: boolean }): void {
  // Proto2 groups (and editions' DELIMITED encoding) are outside this gateway's scope.
  if (field.delimitedEncoding) throw new Error(`field "${field.name}" uses group encoding, not supported`);
}

/** `"@type":`, encoded. */
const TYPE_KEY = json('"@type":');

/** `,"value":`, encoded. */
const VALUE_KEY = json(',"value":');

/** How an Any of one type is rendered, found once per type a route meets. */
interface AnyPlan {
  readonly renderer: Renderer | undefined;
  /** Whether the JSON goes under "value" (a well-known type with a JSON form of its own). */
  readonly underValue: boolean;
}

/** An Any whose type could not be rendered: its bytes as base64, as a plain Any's fields would be. */
const AS_BYTES: AnyPlan = { renderer: undefined, underValue: true };

/** google.protobuf.Any: `{"@type":..., ...}` as proto3 JSON writes it (see compileResponseRenderer). */
class AnyRenderer implements Renderer {
  /** By type name: at most one per message type `types` holds, so bounded by the descriptor set. */
  readonly #plans = new Map<string, AnyPlan>();

  constructor(readonly compiler: RendererCompiler) {}

  render(reader: WireReader, out: JsonWriter, depth: number): void {
    this.renderMerged(reader, out, [reader.pos], depth);
  }

  renderMerged(reader: WireReader, out: JsonWriter, positions: readonly number[], depth: number): void {
    if (depth > MAX_DEPTH) throw new MalformedMessageError('message nested too deeply');
    // `string type_url = 1; bytes value = 2;`: of several occurrences, the last of each wins.
    let urlStart = -1;
    let urlEnd = -1;
    let valuePosition = -1;
    let end = reader.pos;
    for (const position of positions) {
      reader.pos = position;
      end = reader.delimitedEnd();
      while (reader.pos < end) {
        const tag = reader.varint32();
        if (tag === ((1 << 3) | Wire.LengthDelimited)) {
          urlEnd = reader.delimitedEnd();
          urlStart = reader.pos;
          reader.pos = urlEnd;
        } else if (tag === ((2 << 3) | Wire.LengthDelimited)) {
          valuePosition = reader.pos;
          reader.pos = reader.delimitedEnd();
        } else {
          reader.skip(tag & 7, tag >>> 3);
        }
      }
      if (reader.pos !== end) throw new MalformedMessageError('field runs past the end of its message');
    }
    if (urlStart < 0 || urlStart === urlEnd) {
      if (valuePosition < 0) out.ascii('{}');
      else this.#renderBytes(reader, out, urlStart, urlEnd, valuePosition);
      reader.pos = end;
      return;
    }
    const plan = this.#planOf(reader.buf.toString('utf8', urlStart, urlEnd));
    if (!plan.renderer) {
      this.#renderBytes(reader, out, urlStart, urlEnd, valuePosition);
      reader.pos = end;
      return;
    }
    const inner = valuePosition < 0 ? new WireReader(EMPTY_MESSAGE) : reader;
    inner.pos = valuePosition < 0 ? 0 : valuePosition;
    out.byte(0x7b);
    out.raw(TYPE_KEY);
    out.stringFromUtf8(reader.buf, urlStart, urlEnd);
    if (plan.underValue) {
      out.raw(VALUE_KEY);
      plan.renderer.render(inner, out, depth + 1);
      out.byte(0x7d);
    } else {
      // The message's own object, its "{" made the "," after "@type" (or its "{}" the Any's "}").
      const mark = out.position;
      plan.renderer.render(inner, out, depth + 1);
      if (out.position === mark + 2) {
        out.rewind(mark);
        out.byte(0x7d);
      } else {
        out.put(mark, 0x2c);
      }
    }
    reader.pos = end;
  }

  #planOf(typeUrl: string): AnyPlan {
    const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
    const known = this.#plans.get(name);
    if (known) return known;
    const type = anyMessageType(this.compiler.types, typeUrl);
    if (!type) return AS_BYTES;
    let plan: AnyPlan;
    try {
      plan = { renderer: this.compiler.message(type), underValue: hasCustomJsonRepresentation(type) };
    } catch {
      // A type the renderer refuses (proto2 groups): its bytes, as for a type it does not know.
      plan = AS_BYTES;
    }
    this.#plans.set(name, plan);
    return plan;
  }

  /** `{"@type":"<URL>","value":"<base64>"}`: an Any of a type that cannot be rendered. */
  #renderBytes(
    reader: WireReader,
    out: JsonWriter,
    urlStart: number,
    urlEnd: number,
    valuePosition: number,
  ): void {
    out.byte(0x7b);
    out.raw(TYPE_KEY);
    if (urlStart < 0) out.ascii('""');
    else out.stringFromUtf8(reader.buf, urlStart, urlEnd);
    out.raw(VALUE_KEY);
    if (valuePosition < 0) out.ascii('""');
    else {
      reader.pos = valuePosition;
      writeValue(reader, out, BYTES_VALUE, 0);
    }
    out.byte(0x7d);
  }
}

const BYTES_VALUE = scalarPlan(ScalarType.BYTES, undefined);
