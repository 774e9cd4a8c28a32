// Connections and registrations from several IPv6 addresses, as a separate process, so that a test
// can run it inside a network namespace whose `lo` carries those addresses (see
// address-groups.test.ts). Prints what each step saw as one line of JSON.
//
//   address-group-probe.ts --server ADDRESS --same A,B,C,D --other E,F
//
// --same are addresses of one /64, --other addresses of other /64s; the servers listen on --server.
import { connect as connectHttp2 } from 'node:http2';
import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import { Server } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { pino } from 'pino';
import { listen, shutdown } from '../../../src/common/grpc-server.js';
import { createDistributorServer } from '../../../src/distributor/distributor-server.js';
import { RegisterRequest } from '../../../src/gen/distributor.js';
import { gatewayNode } from '../../helpers/nodes.js';
import { grpcFrame, openRawCall } from '../../helpers/raw-grpc.js';

const { values } = parseArgs({
  options: { server: { type: 'string' }, same: { type: 'string' }, other: { type: 'string' } },
});
const server = values.server;
const same = values.same?.split(',') ?? [];
const other = values.other?.split(',') ?? [];
if (!server || same.length < 4 || other.length < 2) {
  throw new Error('address-group-probe: --server, four --same and two --other addresses are required');
}

/** How a hand-made gRPC call from `local` went: answered (a first message), or ended with a status. */
interface RawCall {
  readonly answered: Promise<boolean>;
  readonly status: Promise<{ code: number; message: string } | undefined>;
  readonly closed: Promise<void>;
  close(): void;
}

/** One gRPC call over a connection of its own from `local`, its one message written by hand. */
function callFrom(
  local: string,
  port: number,
  path: string,
  message: Uint8Array,
  endRequest: boolean,
): RawCall {
  const socket = connect({ host: server, port, localAddress: local });
  socket.on('error', () => {});
  const session = connectHttp2(`http://[${server}]:${port}`, { createConnection: () => socket });
  session.on('error', () => {});
  const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
  const stream = openRawCall(session, path);
  if (endRequest) stream.end(grpcFrame(message));
  else stream.write(grpcFrame(message));
  const answered = new Promise<boolean>((resolve) => {
    stream.once('data', () => resolve(true));
    stream.once('close', () => resolve(false));
  });
  const status = new Promise<{ code: number; message: string } | undefined>((resolve) => {
    const read = (headers: Record<string, unknown>): void => {
      if (headers['grpc-status'] === undefined) return;
      resolve({
        code: Number(headers['grpc-status']),
        message: decodeURIComponent(String(headers['grpc-message'] ?? '')),
      });
    };
    stream.on('response', read);
    stream.on('trailers', read);
    stream.once('close', () => resolve(undefined));
  });
  return { answered, status, closed, close: () => session.destroy() };
}

/** Whether `promise` settles within `ms`. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    promise.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return settled;
}

const WATCH = '/grpc.health.v1.Health/Watch';
const EMPTY = new Uint8Array(0);

/** A port of three connections: the /64 of --same fills it with Watches, then others come. */
async function room() {
  const health = new Server();
  new HealthImplementation({ '': 'SERVING' }).addToServer(health);
  const port = await listen(health, server!, 0, undefined, { maxConnections: 3 });
  const calls: RawCall[] = [];
  try {
    const hog: RawCall[] = [];
    for (const local of same.slice(0, 3)) {
      const call = callFrom(local, port, WATCH, EMPTY, true);
      calls.push(call);
      hog.push(call);
      if (!(await within(call.answered, 5_000))) throw new Error(`the Watch from ${local} got no answer`);
    }
    const newcomer = callFrom(other[0]!, port, WATCH, EMPTY, true);
    calls.push(newcomer);
    const newcomerServed = await within(newcomer.answered, 5_000);
    const newestClosed = await within(hog[2]!.closed, 5_000);
    // Once the newcomer has its call open: before, its connection is one that never called, which
    // goes first to make room.
    const sameAgain = callFrom(same[3]!, port, WATCH, EMPTY, true);
    calls.push(sameAgain);
    const sameAgainClosed = await within(sameAgain.closed, 5_000);
    const othersOpen = !(await within(Promise.race([hog[0]!.closed, hog[1]!.closed, newcomer.closed]), 200));
    return { newcomerServed, newestClosed, sameAgainClosed, othersOpen };
  } finally {
    for (const call of calls) call.close();
    await shutdown(health, 100);
  }
}

/** A distributor taking two registrations a /64 at once: three from --same, one from --other. */
async function registrations() {
  const lines: Array<{ level: number; event?: string; msg: string }> = [];
  const distributor = createDistributorServer({
    limits: { registrationsPerSecond: 1, registrationBurst: 2 },
    log: pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) }),
  });
  const port = await distributor.listen(server!, 0);
  const calls: RawCall[] = [];
  try {
    const outcomes = [];
    // The fifth from yet another address of the first /64: refused again, and not warned of again.
    const from = [same[0]!, same[1]!, same[2]!, other[1]!, same[3]!];
    for (const [index, local] of from.entries()) {
      const message = RegisterRequest.encode({
        kind: { $case: 'node', value: gatewayNode({ port: 8000 + index }) },
        options: undefined,
      }).finish();
      const call = callFrom(local, port, '/shop.v1.DistributorService/Register', message, false);
      calls.push(call);
      const answered = await Promise.race([call.answered, call.status.then(() => false)]);
      outcomes.push({ from: local, answered, status: answered ? undefined : await call.status });
    }
    const refusals = lines
      .filter((line) => line.event === 'refused')
      .map((line) => ({ level: line.level, msg: line.msg }));
    return { outcomes, refusals };
  } finally {
    for (const call of calls) call.close();
    await distributor.stop(100);
  }
}

process.stdout.write(`${JSON.stringify({ room: await room(), registrations: await registrations() })}\n`);
