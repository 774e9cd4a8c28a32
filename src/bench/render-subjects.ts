import { create, type DescMessage, fromBinary, toBinary, toJson } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { registrationDescriptorSet } from '../common/descriptors.js';
import { readHttpRoutes, registryOfDescriptorSet } from '../common/http-routes.js';
import { successBody } from '../gateway/envelope.js';
import { compileResponseRenderer } from '../gateway/response-renderer.js';

// What `npm run bench:render` (renderer.ts) times: the answers of GET /goods and GET /purchases,
// rendered by the gateway's hand-written renderer and the generic way.

/** One route's renderers and a maker of its answers. */
export interface Subject {
  readonly name: string;
  readonly answer: (rows: number) => Buffer;
  readonly handWritten: (bytes: Buffer, key: number) => Buffer;
  readonly generic: (bytes: Buffer, key: number) => Buffer;
}

function subject(service: string, key: string, row: (index: number) => unknown): Subject {
  const route = readHttpRoutes(registryOfDescriptorSet(registrationDescriptorSet([service]))).routes.find(
    (candidate) => candidate.key === key,
  )!;
  const output: DescMessage = route.method.output;
  const fields = route.envelopeFields;
  // The renderer itself, not the call plan's: the plan puts a memo of the last answer in front of it
  // (repeat-answer-memo.ts), which answers these same bytes, rendered again and again, with a copy.
  const render = compileResponseRenderer(
    output,
    fields.map((field) => field.name),
  );
  return {
    name: key,
    answer: (rows) =>
      Buffer.from(
        toBinary(
          output,
          create(output, { results: Array.from({ length: rows }, (_, index) => row(index)) } as never),
        ),
      ),
    handWritten: (bytes, requestKey) => successBody(requestKey, render(bytes)),
    generic: (bytes, requestKey) => {
      const json = toJson(output, fromBinary(output, bytes), {
        useProtoFieldName: true,
        alwaysEmitImplicit: true,
      }) as Record<string, unknown>;
      const body: Record<string, unknown> = { key: requestKey, errorcode: 0, errormessage: 'success' };
      for (const field of fields) body[field.name] = json[field.name];
      return Buffer.from(JSON.stringify(body));
    },
  };
}

export const SUBJECTS = [
  subject('shop.v1.GoodsService', 'GET /goods', (index) => ({
    id: index + 1,
    name: `goods ${index}`,
    category: 'tests',
    price: 1000 + index,
    description: 'a description of some length, as a catalogue has',
  })),
  subject('shop.v1.PurchasesService', 'GET /purchases', (index) => ({
    id: index + 1,
    goodsid: (index % 50) + 1,
    date: timestampFromMs(1_604_503_907_000 + index * 1_000),
  })),
];
