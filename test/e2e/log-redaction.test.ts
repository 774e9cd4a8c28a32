import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { http, httpJson } from '../helpers/http.js';
import { freePort, spawnComponent } from './support/processes.js';

const SECRET = 'hunter2-secret';

/**
 * The gateway and members as processes at the most verbose levels, asked things that carry a
 * password in the URL, the query and the body, routed and not: no line may hold it.
 */
describe('no password in the logs, at debug and trace', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('redacts passwords and tokens in every logged URL and field', async () => {
    const distributor = createDistributorServer();
    const distributorAddress = `127.0.0.1:${await distributor.listen('127.0.0.1', 0)}`;
    cleanups.push(() => distributor.stop(100));
    const dataDir = mkdtempSync(join(tmpdir(), 'log-redaction-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const members = spawnComponent(
      'src/services/members/main.ts',
      ['--port', '0', '--distributor', distributorAddress],
      {
        DATA_DIR: dataDir,
        MYSQL_URL: '',
        LOG_LEVEL: 'trace',
      },
    );
    const port = await freePort();
    const gateway = spawnComponent(
      'src/gateway/main.ts',
      ['--host', '127.0.0.1', '--port', String(port), '--distributor', distributorAddress],
      { LOG_LEVEL: 'debug' },
    );
    for (const child of [members, gateway]) cleanups.push(() => void child.child.kill('SIGKILL'));
    await vi.waitFor(
      async () =>
        expect((await httpJson(port, 'GET', `/members?username=nobody&password=${SECRET}`)).status).toBe(200),
      { timeout: 30_000, interval: 200 },
    );

    const query = `username=ada&password=${SECRET}&passwordConfirm=${SECRET}&token=${SECRET}`;
    expect((await httpJson(port, 'GET', `/nope?${query}`)).status).toBe(404);
    expect((await httpJson(port, 'PUT', `/members?${query}`)).status).toBe(405);
    await httpJson(port, 'POST', '/members', { username: 'ada', password: SECRET, passwordConfirm: SECRET });
    await httpJson(port, 'POST', '/members', { username: 'ada', password: SECRET });
    await httpJson(port, 'GET', `/members?username=ada&password=wrong-${SECRET}`);
    await http(port, 'POST', '/members', {
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: `username=bob&password=${SECRET}`,
    });
    await http(port, 'POST', '/members', {
      headers: { 'Content-Type': 'application/json' },
      body: `{"password":"${SECRET}"`,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));

    const lines = [...gateway.lines, ...members.lines];
    expect(gateway.lines.some((line) => line.includes('"level":20'))).toBe(true);
    expect(members.lines.some((line) => line.includes('"level":10') || line.includes('"level":20'))).toBe(
      true,
    );
    expect(lines.filter((line) => line.includes(SECRET))).toEqual([]);
    expect(gateway.lines.some((line) => line.includes('password=[redacted]'))).toBe(true);
  }, 60_000);
});
