import { create, type DescMessage, fromBinary, toBinary, toJson } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { registrationDescriptorSet } from '../common/descriptors.js';
import { readHttpRoutes, registryOfDescriptorSet } from '../common/http-routes.js';
import { successBody } from '../gateway/envelope.js';
import { compileResponseRenderer } from '../gateway/response-renderer.js';
import { positiveInteger, positiveNumber, readBenchSettings } from './bench-settings.js';
import { median } from './case-result.js';

// `npm run bench:render`: what the gateway's hand-written response renderer (protobuf bytes straight
// to the book's JSON, src/gateway/response-renderer.ts) saves over the generic way, with
// @bufbuild/protobuf: fromBinary, then toJson, then JSON.stringify and the envelope around it. Both
// render the answers of GET /goods (numbers and strings) and GET /purchases (with Timestamps) at 1,
// 100 and 1,000 rows, in one process, alternating, so that the ratio holds on a busy machine. The
// generic way is timed without the fix-ups it would still need to give the book's bytes (toJson
// writes a Timestamp without its ".000" milliseconds), so its time is a lower bound.
const ROUNDS = readBenchSettings(() => positiveInteger(process.env, 'BENCH_ROUNDS', 5));
const TARGET_MS = readBenchSettings(() => positiveNumber(process.env, 'BENCH_CASE_MS', 300));

/** One route's renderers and a maker of its answers. */
interface Subject {
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

const SUBJECTS = [
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

/** Renders until about TARGET_MS have passed; returns microseconds per answer. */
function time(render: (bytes: Buffer, key: number) => Buffer, bytes: Buffer): number {
  let count = 0;
  let sink = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < TARGET_MS) {
    for (let batch = 0; batch < 16; batch++) sink += render(bytes, count++).length;
    elapsed = performance.now() - start;
  }
  if (sink < 0) throw new Error('unreachable');
  return (elapsed * 1_000) / count;
}

process.stdout.write(`bench:render: ${ROUNDS} round(s) of ${TARGET_MS} ms per case, medians\n`);
for (const { name, answer, handWritten, generic } of SUBJECTS) {
  for (const rows of [1, 100, 1_000]) {
    const bytes = answer(rows);
    for (let warm = 0; warm < 200; warm++) {
      handWritten(bytes, warm);
      generic(bytes, warm);
    }
    const ours: number[] = [];
    const theirs: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      ours.push(time(handWritten, bytes));
      theirs.push(time(generic, bytes));
    }
    const [mine, other] = [median(ours), median(theirs)];
    process.stdout.write(
      `${name.padEnd(14)} ${String(rows).padStart(5)} rows: hand-written ${mine.toFixed(1).padStart(7)} µs, ` +
        `fromBinary+toJson+stringify ${other.toFixed(1).padStart(7)} µs: ${(other / mine).toFixed(1)}×\n`,
    );
  }
}
