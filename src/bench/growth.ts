import { Agent, request } from 'node:http';
import { insertGoods } from './bulk-goods.js';
import { runClosedLoop } from './closed-loop.js';
import { ResidentPeaks } from './resident-peaks.js';
import type { SystemUnderTest } from './system-under-test.js';

/** Options of {@link runGrowthCase}. */
export interface GrowthOptions {
  /** The catalogue sizes to measure at, ascending; the catalogue must hold `sizes[0]` rows already. */
  sizes: readonly number[];
  /** How long GET /goods runs at each size. */
  durationSec: number;
  /** Requests at once: a list of 100,000 rows is about 12.5 MB of JSON, so a few suffice. */
  connections: number;
  say: (line: string) => void;
}

/** What the growth case measured at one catalogue size. */
export interface GrowthStep {
  rows: number;
  /** Whole lists answered per second (complete and of the right length). */
  requestsPerSec: number;
  /** Rows delivered per second, all connections together. */
  rowsPerSec: number;
  /** 1 / rowsPerSec, in µs: the cost of one row to the whole shop, the figure that should not grow. */
  usPerRow: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  total: number;
  /** The size of one answer. */
  bodyBytes: number;
  /** The highest resident memory of each process while the case ran at this size, MiB. */
  rssPeakMiB: Record<string, number>;
}

/**
 * The growth case (issue 8 §3): GET /goods through the gateway with the catalogue at each size in
 * turn, filled straight into the goods table between steps (see insertGoods). The whole list is
 * streamed page by page, so the time per row should stay about the same from 10,000 rows to
 * 100,000, and the resident memory of every process should not follow the length of the list.
 * Each answer is read to its end and checked: it must be complete and end with the last id.
 */
export async function runGrowthCase(system: SystemUnderTest, options: GrowthOptions): Promise<GrowthStep[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
  const steps: GrowthStep[] = [];
  let rows = options.sizes[0] ?? 0;
  try {
    for (const size of options.sizes) {
      if (size > rows) {
        const from = rows;
        const started = Date.now();
        await insertGoods(system.goodsTable, size - from, (index) => {
          const number = from + index + 1;
          return {
            name: `goods ${number}`,
            category: `category ${number % 7}`,
            price: 1000 + number,
            description: `the description of goods number ${number}`,
          };
        });
        options.say(`  growth: ${size - from} rows added in ${((Date.now() - started) / 1000).toFixed(1)} s`);
        rows = size;
      }
      let bodyBytes = 0;
      const resident = new ResidentPeaks([{ suffix: '', read: () => system.rssMiB() }]);
      resident.start(100);
      const expectedRows = size;
      const result = await runClosedLoop(
        `GET /goods (${size} rows)`,
        options.connections,
        options.durationSec,
        () =>
          getWholeList(`${system.gatewayUrl}/goods`, agent, expectedRows).then((bytes) => {
            bodyBytes = bytes;
          }),
      ).finally(() => resident.stop());
      const peak = resident.peaks;
      const rowsPerSec = result.requestsPerSec * size;
      const step: GrowthStep = {
        rows: size,
        requestsPerSec: result.requestsPerSec,
        rowsPerSec,
        usPerRow: rowsPerSec > 0 ? 1e6 / rowsPerSec : Number.NaN,
        p50Ms: result.p50Ms,
        p99Ms: result.p99Ms,
        errors: result.errors,
        total: result.total,
        bodyBytes,
        rssPeakMiB: Object.fromEntries(peak),
      };
      steps.push(step);
      options.say(
        `  growth ${String(size).padStart(7)} rows ${step.requestsPerSec.toFixed(1).padStart(8)} lists/s ` +
          `${step.usPerRow.toFixed(2).padStart(7)} µs/row  p50 ${step.p50Ms.toFixed(0)} ms  errors ${step.errors}  ` +
          `RSS peak ${[...peak].map(([name, mib]) => `${name} ${mib.toFixed(0)}`).join(', ')} MiB`,
      );
    }
  } finally {
    agent.destroy();
  }
  return steps;
}

/**
 * GETs a whole list and reads it to the end without keeping it; resolves with its size, or rejects
 * when the answer is not a complete success whose rows have the ids 1, 2, … `lastId` in order (as
 * the growth case fills them): a list that ends right but lacks or repeats rows in its middle is
 * not whole either.
 */
export function getWholeList(url: string, agent: Agent, lastId: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { agent }, (response) => {
      let bytes = 0;
      let head = '';
      let tail = Buffer.alloc(0);
      const ids = new IdSequence();
      response.on('data', (chunk: Buffer) => {
        if (head.length < 64) head += chunk.toString('latin1', 0, 64 - head.length);
        bytes += chunk.length;
        tail = Buffer.concat([tail, chunk.subarray(Math.max(0, chunk.length - 512))]).subarray(-512);
        ids.push(chunk);
      });
      response.on('error', reject);
      response.on('end', () => {
        const text = tail.toString('utf8');
        const last = Number(/\{"id":(\d+),[^{]*\}\]\}$/.exec(text)?.[1]);
        if (
          response.statusCode !== 200 ||
          !/"errorcode":0,/.test(head) ||
          last !== lastId ||
          ids.broken ||
          ids.count !== lastId
        ) {
          reject(
            new Error(
              `incomplete list: status ${response.statusCode}, last id ${last}, ${ids.count} rows` +
                `${ids.broken ? ` (${ids.broken})` : ''}, ${bytes} bytes`,
            ),
          );
        } else {
          resolve(bytes);
        }
      });
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

const ROW_START = Buffer.from('{"id":');

/**
 * Follows the ids of a list's rows (`{"id":N,`) chunk by chunk, a row's start possibly split
 * between two chunks: they must be 1, 2, 3 … in order. A row's id cannot appear inside a string,
 * where JSON escapes the quotes.
 */
class IdSequence {
  count = 0;
  broken: string | undefined;
  #carry = Buffer.alloc(0);

  push(chunk: Buffer): void {
    const text = this.#carry.length > 0 ? Buffer.concat([this.#carry, chunk]) : chunk;
    let from = 0;
    for (;;) {
      const at = text.indexOf(ROW_START, from);
      if (at < 0) {
        // Keep what could be the start of a row's opening, split by the chunk's end.
        this.#carry = Buffer.from(text.subarray(Math.max(from, text.length - (ROW_START.length - 1))));
        return;
      }
      let end = at + ROW_START.length;
      let id = 0;
      while (end < text.length && text[end]! >= 0x30 && text[end]! <= 0x39)
        id = id * 10 + text[end++]! - 0x30;
      if (end >= text.length) {
        // The id may go on in the next chunk.
        this.#carry = Buffer.from(text.subarray(at));
        return;
      }
      this.count++;
      if (id !== this.count && this.broken === undefined) this.broken = `row ${this.count} has id ${id}`;
      from = end;
    }
  }
}
