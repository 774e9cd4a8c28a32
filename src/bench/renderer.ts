import { positiveInteger, positiveNumber, readBenchSettings } from './bench-settings.js';
import { median } from './case-result.js';
import { SUBJECTS } from './render-subjects.js';

// `npm run bench:render`: what the gateway's hand-written response renderer (protobuf bytes straight
// to the book's JSON, src/gateway/response-renderer.ts) saves over the generic way, with
// @bufbuild/protobuf: fromBinary, then toJson, then JSON.stringify and the envelope around it. Both
// render the answers of GET /goods (numbers and strings) and GET /purchases (with Timestamps) at 1,
// 100 and 1,000 rows, in one process, alternating, so that the ratio holds on a busy machine. The
// generic way is timed without the fix-ups it would still need to give the book's bytes (toJson
// writes a Timestamp without its ".000" milliseconds), so its time is a lower bound.
const ROUNDS = readBenchSettings(() => positiveInteger(process.env, 'BENCH_ROUNDS', 5));
const TARGET_MS = readBenchSettings(() => positiveNumber(process.env, 'BENCH_CASE_MS', 300));

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
