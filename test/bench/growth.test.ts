import { Agent, createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getWholeList } from '../../src/bench/growth.js';

/** A list of goods with ids `ids`, as the gateway streams it, in the body's bytes. */
function listBody(ids: readonly number[]): string {
  const rows = ids.map((id) =>
    JSON.stringify({ id, name: `goods ${id}`, category: 'c', price: id, description: 'd' }),
  );
  return `{"key":1,"errorcode":0,"errormessage":"success","results":[${rows.join(',')}]}`;
}

describe('the growth case reading a whole list', () => {
  const bodies = new Map<string, string>();
  let server: Server;
  let base: string;
  const agent = new Agent({ keepAlive: true });

  beforeAll(async () => {
    server = createServer((request, response) => {
      const body = Buffer.from(bodies.get(request.url ?? '') ?? '');
      response.writeHead(200, { 'content-type': 'application/json' });
      // Small uneven chunks, so that rows straddle them.
      let offset = 0;
      const next = (): void => {
        if (offset >= body.length) {
          response.end();
          return;
        }
        const end = Math.min(body.length, offset + 7 + (offset % 5));
        response.write(body.subarray(offset, end), next);
        offset = end;
      };
      next();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    agent.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  const ids = (from: number, to: number): number[] =>
    Array.from({ length: to - from + 1 }, (_, i) => from + i);

  it('takes a list of ids 1 to n, ending with n', async () => {
    bodies.set('/whole', listBody(ids(1, 3000)));
    await expect(getWholeList(`${base}/whole`, agent, 3000)).resolves.toBe(
      Buffer.byteLength(bodies.get('/whole')!),
    );
  });

  it('refuses a list that lacks rows in its middle, or repeats some, though it ends with n', async () => {
    bodies.set('/gap', listBody([...ids(1, 1000), ...ids(2001, 3000)]));
    bodies.set('/twice', listBody([...ids(1, 2000), ...ids(1001, 3000)]));
    await expect(getWholeList(`${base}/gap`, agent, 3000)).rejects.toThrow(/incomplete list/);
    await expect(getWholeList(`${base}/twice`, agent, 3000)).rejects.toThrow(/incomplete list/);
  });

  it('refuses a list cut short of its last rows', async () => {
    bodies.set('/short', listBody(ids(1, 2999)));
    await expect(getWholeList(`${base}/short`, agent, 3000)).rejects.toThrow(/incomplete list/);
  });
});
