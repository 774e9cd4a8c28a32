import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runHttpCase } from '../../src/bench/http-load.js';

let server: Server;
let url: string;
/** Of the requests to /resetting: answered (written whole), and reset without an answer. */
const resetting = { answered: 0, reset: 0 };

beforeAll(async () => {
  server = createServer((request, response) => {
    if (request.url === '/resetting' && (resetting.answered + resetting.reset) % 2) {
      resetting.reset++;
      request.socket.resetAndDestroy();
      return;
    }
    if (request.url === '/resetting') response.once('finish', () => resetting.answered++);
    const failed = request.url === '/failing';
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(`{"key":0,"errorcode":${failed ? 1 : 0},"errormessage":"x"}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('runHttpCase', () => {
  it('runs for the duration asked, a fraction of a second too (a slice of the observability twins)', async () => {
    const started = performance.now();
    const result = await runHttpCase({ name: 'slice', url: `${url}/`, connections: 4, durationSec: 0.2 });
    const seconds = (performance.now() - started) / 1000;
    // autocannon's default sample tick of 1 s made a 0.2 s case run 1 s, and 2.5 s run 3 s: the
    // bound is far from both, for a busy machine.
    expect(seconds).toBeLessThan(0.9);
    expect(result.errors).toBe(0);
    expect(result.total).toBeGreaterThan(0);
  });

  it('counts an answer with errorcode 1 as failed, not as throughput', async () => {
    const result = await runHttpCase({
      name: 'failing',
      url: `${url}/failing`,
      connections: 4,
      durationSec: 0.5,
    });
    expect(result.total).toBeGreaterThan(0);
    expect(result.errors).toBe(result.total);
    expect(result.requestsPerSec).toBe(0);
  });

  it('counts a request reset without an answer once, as failed, and every answer as one', async () => {
    const result = await runHttpCase({
      name: 'resetting',
      url: `${url}/resetting`,
      connections: 4,
      durationSec: 0.5,
    });
    expect(resetting.reset).toBeGreaterThan(0);
    // The answers the server wrote, give or take those cut short when the slice ended; before, each
    // reset was taken off the answers as well (autocannon counts it in errors, not among them).
    const answered = result.total - result.errors;
    expect(answered).toBeGreaterThan(0.9 * resetting.answered);
    expect(answered).toBeLessThanOrEqual(resetting.answered);
    expect(result.errors).toBeLessThanOrEqual(resetting.reset);
    expect(result.errors).toBeGreaterThan(0.9 * resetting.reset);
  });
});
