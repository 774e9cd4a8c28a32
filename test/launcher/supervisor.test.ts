import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { LISTENING_LINE, STATUS_LINE, STATUS_QUESTION } from '../../src/common/process-lifecycle.js';
import { componentJsonLine, formatLogLine } from '../../src/launcher/log-line-formatter.js';
import { Supervisor } from '../../src/launcher/supervisor.js';

const scratch = mkdtempSync(join(tmpdir(), 'supervisor-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function script(name: string, source: string): string {
  const path = join(scratch, `${name}.mjs`);
  writeFileSync(path, source);
  return path;
}

describe('Supervisor', () => {
  it('prefixes every line, stops each component with SIGTERM and waits for it', async () => {
    const graceful = script(
      'graceful',
      // Its SIGTERM handler is in place before it says ready: the test stops it as soon as it has.
      `process.on('SIGTERM', () => { console.log('got SIGTERM'); setTimeout(() => process.exit(0), 50); });
       console.log('ready'); console.error('to stderr');
       setInterval(() => {}, 1000);`,
    );
    const lines: string[] = [];
    const supervisor = new Supervisor(
      [
        { name: 'one', entry: graceful },
        { name: 'three', entry: graceful },
      ],
      { write: (line) => lines.push(line) },
    );
    supervisor.start();
    await vi.waitFor(() => expect(lines.filter((line) => line.endsWith('ready'))).toHaveLength(2));
    // Both stopped on SIGTERM: none had to be killed.
    expect(await supervisor.stop()).toEqual([]);
    expect(lines).toEqual(
      expect.arrayContaining([
        '[one  ] ready',
        '[three] ready',
        '[one  ] to stderr',
        '[one  ] got SIGTERM',
        '[three] got SIGTERM',
      ]),
    );
  });

  it('asks a component for its status over its stdin, shows the answer to nobody, and fails the question of one that exits or does not answer', async () => {
    const answering = script(
      'answering',
      `import { createInterface } from 'node:readline';
       let asked = 0;
       createInterface({ input: process.stdin }).on('line', (line) => {
         if (line !== ${JSON.stringify(STATUS_QUESTION)}) return;
         asked += 1;
         if (asked === 1) process.stdout.write(${JSON.stringify(STATUS_LINE)} + ' {"asked":1}\\n');
         else if (asked === 3) process.exit(5);
       });
       console.log('ready');`,
    );
    const lines: string[] = [];
    const supervisor = new Supervisor([{ name: 'one', entry: answering }], {
      write: (line) => lines.push(line),
      onRestart: () => {},
      permanentExits: new Map([[5, 'told to']]),
    });
    supervisor.start();
    await vi.waitFor(() => expect(lines).toContain('[one] ready'));
    await expect(supervisor.askStatus('one', 5_000)).resolves.toBe('{"asked":1}');
    await expect(supervisor.askStatus('one', 200)).rejects.toThrow('no answer within 200 ms');
    await expect(supervisor.askStatus('one', 5_000)).rejects.toThrow('it exited');
    await expect(supervisor.askStatus('one', 5_000)).rejects.toThrow('one is not running');
    expect(lines.filter((line) => line.includes('shop-supervisor'))).toEqual([]);
    await supervisor.stop();
  });

  it('starts a component that crashed again', async () => {
    const counter = join(scratch, 'starts.txt');
    const crashing = script(
      'crashing',
      `import { appendFileSync, readFileSync } from 'node:fs';
       appendFileSync(${JSON.stringify(counter)}, 'x');
       if (readFileSync(${JSON.stringify(counter)}, 'utf8').length < 2) process.exit(1);
       console.log('second life');
       setInterval(() => {}, 1000);`,
    );
    const lines: string[] = [];
    const supervisor = new Supervisor([{ name: 'fragile', entry: crashing }], {
      write: (line) => lines.push(line),
    });
    supervisor.start();
    await vi.waitFor(() => expect(lines).toContain('[fragile] second life'), { timeout: 5_000 });
    expect(lines[0]).toBe('[fragile] exited (code 1); starting it again in 500 ms');
    await supervisor.stop();
  });

  it.each([
    [2, 'bad configuration'],
    [3, 'refused by the distributor'],
  ])('does not start again a component that exits %i (%s), and says so', async (code, meaning) => {
    const counter = join(scratch, `permanent-${code}.txt`);
    const failing = script(
      `permanent-${code}`,
      `import { appendFileSync } from 'node:fs';
       appendFileSync(${JSON.stringify(counter)}, 'x');
       console.error('GOODS_PORT: expected a port');
       process.exit(${code});`,
    );
    const steady = script('steady', `console.log('up'); setInterval(() => {}, 1000);`);
    const lines: string[] = [];
    const permanent: Array<[string, number, string]> = [];
    const supervisor = new Supervisor(
      [
        { name: 'steady', entry: steady },
        { name: 'failing', entry: failing },
      ],
      {
        write: (line) => lines.push(line),
        onPermanentExit: (...args) => permanent.push(args),
      },
    );
    supervisor.start();
    await vi.waitFor(() => expect(permanent).toEqual([['failing', code, meaning]]), { timeout: 5_000 });
    expect(lines).toContain('[failing] GOODS_PORT: expected a port');
    expect(lines).toContain(
      `[failing] exited with code ${code} (${meaning}); starting it again would fail the same way, so it stays stopped`,
    );
    // A restart would come after 500 ms: it does not, and the others run on until told to stop.
    await expect(
      vi.waitFor(() => expect(readFileSync(counter, 'utf8')).toBe('xx'), { timeout: 1_500 }),
    ).rejects.toThrow();
    expect([...supervisor.pids().keys()]).toEqual(['steady']);
    await supervisor.stop();
  });

  it('starts the components after one that waits until it listens once it says so (unseen), or after the time-out', async () => {
    const slow = script(
      'slow-to-listen',
      `process.on('SIGTERM', () => process.exit(0));
       setTimeout(() => { console.log('listening now'); console.log(${JSON.stringify(LISTENING_LINE)}); }, 300);
       setInterval(() => {}, 1000);`,
    );
    const silent = script(
      'never-ready',
      `process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1000);`,
    );
    const next = script(
      'next',
      `process.on('SIGTERM', () => process.exit(0)); console.log('up'); setInterval(() => {}, 1000);`,
    );
    const lines: string[] = [];
    const supervisor = new Supervisor(
      [
        { name: 'first', entry: slow, waitUntilListening: true },
        { name: 'second', entry: next },
      ],
      { write: (line) => lines.push(line) },
    );
    await supervisor.start();
    await vi.waitFor(() => expect(lines).toContain('[second] up'));
    expect(lines.indexOf('[first ] listening now')).toBeLessThan(lines.indexOf('[second] up'));
    expect(lines.indexOf('[first ] listening now')).toBeGreaterThanOrEqual(0);
    expect(lines.some((line) => line.includes(LISTENING_LINE))).toBe(false);
    await supervisor.stop();

    const patient: string[] = [];
    const waiting = new Supervisor(
      [
        { name: 'first', entry: silent, waitUntilListening: true },
        { name: 'second', entry: next },
      ],
      { write: (line) => patient.push(line), readyTimeoutMs: 300 },
    );
    const started = performance.now();
    await waiting.start();
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    await vi.waitFor(() => expect(patient).toContain('[second] up'));
    await waiting.stop();
  });

  it('kills a component that ignores SIGTERM after the stop timeout, and names it among those killed', async () => {
    const stubborn = script(
      'stubborn',
      `process.on('SIGTERM', () => {}); console.log('up'); setInterval(() => {}, 1000);`,
    );
    const graceful = script(
      'graceful-too',
      `process.on('SIGTERM', () => process.exit(0)); console.log('up'); setInterval(() => {}, 1000);`,
    );
    const lines: string[] = [];
    const supervisor = new Supervisor(
      [
        { name: 'graceful', entry: graceful },
        { name: 'stubborn', entry: stubborn },
      ],
      { write: (line) => lines.push(line), stopTimeoutMs: 200 },
    );
    supervisor.start();
    await vi.waitFor(() => expect(lines).toEqual(expect.arrayContaining(['[stubborn] up', '[graceful] up'])));
    // The caller learns which it had to kill (the launcher then exits 1), not only the log.
    expect(await supervisor.stop()).toEqual(['stubborn']);
    expect(lines).toContain('[stubborn] still running 200 ms after SIGTERM: killed (SIGKILL)');
  });
});

describe('formatLogLine', () => {
  it('makes a pino line readable and leaves other lines alone', () => {
    const line = JSON.stringify({
      level: 30,
      time: Date.parse('2020-11-04T15:31:47.123Z'),
      pid: 1,
      hostname: 'h',
      component: 'goods',
      msg: 'listening',
      port: 9010,
      node: { id: 'x' },
    });
    expect(formatLogLine(line)).toBe('15:31:47.123 INFO  listening port=9010 node={"id":"x"}');
    expect(formatLogLine('plain text')).toBe('plain text');
    expect(formatLogLine('{not json')).toBe('{not json');
    expect(formatLogLine('{"a":1}')).toBe('{"a":1}');
    // A time out of Date's range is no pino line's: shown as it is, rather than thrown on.
    for (const time of ['1e400', '1e20', '-1e20']) {
      const line = `{"level":30,"time":${time},"msg":"x"}`;
      expect(formatLogLine(line)).toBe(line);
    }
    expect(formatLogLine('{"level":30,"time":0,"msg":{"toString":1}}')).toBe(
      '00:00:00.000 INFO  {"toString":1}',
    );
    expect(formatLogLine('{"level":30,"time":0,"msg":7}')).toBe('00:00:00.000 INFO  7');
    expect(formatLogLine('{"level":30,"time":0}')).toBe('00:00:00.000 INFO');
  });

  it('escapes what a terminal would act on: no forged line, no escape sequence reaches it', () => {
    // A registered node's descriptor text, quoted in the distributor's refusal, or an upstream's
    // error details in the gateway's warning: whatever its writer chose.
    const forged = '\n[gateway    ] 00:00:00.000 ERROR forged\r\x1b[31mred\x1b]0;title\x07\x9b2J\u2028\u202e';
    const line = JSON.stringify({
      level: 40,
      time: 0,
      msg: `body "${forged}"`,
      details: forged,
      err: { message: forged },
    });
    const shown = formatLogLine(line);
    const unshowable = [...shown].filter((char) => {
      const code = char.charCodeAt(0);
      return code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x202e;
    });
    expect(unshowable).toEqual([]);
    expect(shown).toContain(
      'body "\\n[gateway    ] 00:00:00.000 ERROR forged\\r\\u001b[31mred\\u001b]0;title\\u0007\\u009b2J\\u2028\\u202e"',
    );
    expect(shown).toContain('details="\\n[gateway');
    expect(formatLogLine('a crash\x1b[2J')).toBe('a crash\\u001b[2J');
    expect(formatLogLine('café, 名前 and emoji 🙂 stay')).toBe('café, 名前 and emoji 🙂 stay');
  });

  it('quotes a field whose text holds a space, a quote, an = or a backslash, so it cannot pass for fields of its own', () => {
    const line = JSON.stringify({
      level: 40,
      time: 0,
      msg: 'upstream call failed',
      details: 'boom code=OK',
      code: 'INTERNAL',
      empty: '',
      path: 'C:\\x',
    });
    expect(formatLogLine(line)).toBe(
      '00:00:00.000 WARN  upstream call failed details="boom code=OK" code=INTERNAL empty="" path="C:\\\\x"',
    );
  });
});

describe('componentJsonLine (LOG_FORMAT=json)', () => {
  it('writes what JSON leaves raw of the characters a terminal acts on as escapes: the same JSON to its reader', () => {
    const hostile = 'a\x7f\x9b2J\u2028\u202eb, café 名前';
    const pino = JSON.stringify({ level: 40, time: 0, msg: 'upstream call failed', details: hostile });
    const shown = componentJsonLine('gateway', pino, 'stdout');
    expect(shown).toBe(pino.replace('\x7f\x9b2J\u2028\u202e', '\\u007f\\u009b2J\\u2028\\u202e'));
    expect(JSON.parse(shown)).toEqual(JSON.parse(pino));
    const printed = JSON.parse(componentJsonLine('gateway', `crash ${hostile}`, 'stderr'));
    expect(printed).toMatchObject({
      level: 50,
      component: 'gateway',
      source: 'stderr',
      msg: `crash ${hostile}`,
    });
  });
});

describe('Supervisor without pretty lines (LOG_FORMAT=json)', () => {
  it("passes a component's log lines as they are and makes every other line a JSON record like them", async () => {
    const counter = join(scratch, 'json-starts.txt');
    const component = script(
      'json-lines',
      `import { appendFileSync, readFileSync } from 'node:fs';
       appendFileSync(${JSON.stringify(counter)}, 'x');
       console.log('{"level":30,"time":1,"component":"goods","msg":"listening"}');
       console.error('(node:1) Warning: something of Node');
       if (readFileSync(${JSON.stringify(counter)}, 'utf8').length < 2) process.exit(1);
       setInterval(() => {}, 1000);`,
    );
    const lines: string[] = [];
    const supervisor = new Supervisor([{ name: 'goods', entry: component }], {
      write: (line) => lines.push(line),
      pretty: false,
    });
    supervisor.start();
    await vi.waitFor(() => expect(lines.filter((line) => line.includes('listening'))).toHaveLength(2), {
      timeout: 5_000,
    });
    await supervisor.stop();
    expect(lines[0]).toBe('[goods] {"level":30,"time":1,"component":"goods","msg":"listening"}');
    const records = lines.map((line) => JSON.parse(line.slice('[goods] '.length)) as Record<string, unknown>);
    expect(records).toContainEqual({
      level: 50,
      time: expect.any(Number),
      component: 'goods',
      source: 'stderr',
      msg: '(node:1) Warning: something of Node',
    });
    expect(records).toContainEqual({
      level: 40,
      time: expect.any(Number),
      component: 'goods',
      source: 'launcher',
      msg: 'exited (code 1); starting it again in 500 ms',
    });
  });
});

describe('a supervisor out of file descriptors', () => {
  it('starts the component again once a spawn that failed (EMFILE) can succeed, and stops', async () => {
    const { spawn } = await import('node:child_process');
    const component = script(
      'after-emfile',
      `process.on('SIGTERM', () => process.exit(0)); console.log('up'); setInterval(() => {}, 1000);`,
    );
    const supervisor = spawn(
      'bash',
      [
        '-c',
        'ulimit -n 256 && exec "$0" --import tsx test/launcher/fixtures/supervise-out-of-files.ts "$1"',
        process.execPath,
        component,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    for (const stream of [supervisor.stdout, supervisor.stderr]) {
      stream.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
    }
    const exited = new Promise<number | null>((resolve) => supervisor.once('exit', resolve));
    try {
      await vi.waitFor(() => expect(output).toContain('[component] up'), { timeout: 20_000 });
      expect(output).toContain('[component] could not start: spawn');
      expect(output).toContain('[component] not started; starting it again in 500 ms');
      supervisor.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(output).toContain('supervisor stopped');
    } finally {
      supervisor.kill('SIGKILL');
    }
  }, 40_000);
});

describe('a supervised component', () => {
  it('stops in order by itself when its supervisor is killed without warning', async () => {
    const { spawn } = await import('node:child_process');
    const { existsSync, readFileSync } = await import('node:fs');
    const marker = join(scratch, 'orphan-marker.txt');
    const supervisor = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/launcher/fixtures/supervise.ts', marker],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let output = '';
    supervisor.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    await vi.waitFor(() => expect(output).toContain('[component] component up'), { timeout: 20_000 });
    supervisor.kill('SIGKILL');
    await vi.waitFor(() => expect(existsSync(marker)).toBe(true), { timeout: 10_000 });
    expect(readFileSync(marker, 'utf8')).toBe('stopped in order');
  }, 40_000);
});
