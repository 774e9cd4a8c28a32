import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { SHOP_SERVICES } from '../../src/services/service-list.js';
import { type ComponentProcess, freePort, launcherEnv, spawnComponent } from './support/processes.js';

// A component's modules take a few hundred ms to load (grpc-js, pino, the generated code). A
// SIGTERM or Ctrl-C then used to kill it outright (an exit by signal, 143), before it had any
// listener: its entry now holds signals first thing and loads the rest after (signal-hold.ts).
// To hit that time every run, a module hook holds the loading of grpc-js for 1.5 s and says so.
const dir = mkdtempSync(join(tmpdir(), 'shop-signal-loading-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const slowLoading = fileURLToPath(new URL('./support/slow-loading.mjs', import.meta.url));

/**
 * Whether this Node, with tsx loaded as the components are (spawnComponent), runs the main thread's
 * timers and signal listeners while a module hook holds a resolution: Node 20 does (its ESM
 * resolution is asynchronous), Node 24 and 26 do not (the main thread waits for the hooks' thread),
 * nor does Node 22 once tsx is loaded (without it, it does), so a signal sent while the hook waits
 * reaches the component's listeners only once its modules have loaded, and may come after its
 * start instead of during it. Asked of this Node and tsx, not of their versions.
 */
function mainThreadRunsWhileLoading(): boolean {
  const probe = spawnSync(
    process.execPath,
    [
      '--import',
      slowLoading,
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      "setInterval(() => process.stdout.write('tick '), 100); await import('@grpc/grpc-js'); process.exit(0);",
    ],
    {
      env: { ...process.env, SLOW_LOADING_MARKER: join(dir, 'probe.loading') },
      encoding: 'utf8',
      timeout: 20_000,
    },
  );
  return probe.stdout.includes('tick');
}

const running: ComponentProcess[] = [];
afterEach(() => {
  for (const component of running.splice(0)) {
    if (component.child.exitCode === null && component.child.signalCode === null)
      component.child.kill('SIGKILL');
  }
});

describe('a signal while a component is still loading its modules', () => {
  const signalsRunWhileLoading = mainThreadRunsWhileLoading();
  it.each([
    ['the gateway', 'src/gateway/main.ts', 'SIGTERM'],
    ['the distributor', 'src/distributor/main.ts', 'SIGINT'],
    ['goods', 'src/services/goods/main.ts', 'SIGTERM'],
  ] as const)(
    '%s: held until it has started, then it stops in order and exits 0 (%s)',
    async (name, entry, signal) => {
      const distributor = createDistributorServer();
      const distributorPort = await distributor.listen('127.0.0.1', 0);
      try {
        const marker = join(dir, `${name.replaceAll(' ', '-')}.loading`);
        const args = ['--host', '127.0.0.1', '--port', '0'];
        if (entry !== 'src/distributor/main.ts') args.push('--distributor', `127.0.0.1:${distributorPort}`);
        const component = spawnComponent(
          entry,
          args,
          { SLOW_LOADING_MARKER: marker, DATA_DIR: dir, MYSQL_URL: '', SHOP_REGISTRY_OPEN: '1' },
          { nodeFlags: ['--import', slowLoading] },
        );
        running.push(component);
        await vi.waitFor(() => expect(existsSync(marker)).toBe(true), { timeout: 30_000, interval: 20 });
        component.child.kill(signal);
        expect(await component.exited(), component.lines.join('\n')).toBe(0);
        const stopping = component.lines.find((line) => line.includes('"msg":"stopping"'));
        expect(stopping, component.lines.join('\n')).toContain(`"signal":"${signal}"`);
        // Held during the start where the main thread runs while loading; else it may be told after
        // the start (the gateway's is quick), still stopping in order with 0.
        if (signalsRunWhileLoading) {
          expect(stopping, component.lines.join('\n')).toContain(`"signal":"${signal}","during":"start"`);
        }
        expect(component.lines.at(-1)).toContain('"msg":"stopped"');
      } finally {
        await distributor.stop(100);
      }
    },
    60_000,
  );
});

describe('a signal while the launcher is still loading its modules', () => {
  it('is held: it starts no component, says it stops, and exits 0', async () => {
    const marker = join(dir, 'launcher.loading');
    const launcher = spawnComponent(
      'src/launcher/main.ts',
      [],
      {
        ...launcherEnv({ distributorPort: await freePort(), dataDir: join(dir, 'launcher') }),
        SLOW_LOADING_MARKER: marker,
      },
      { nodeFlags: ['--import', slowLoading] },
    );
    running.push(launcher);
    await vi.waitFor(() => expect(existsSync(marker)).toBe(true), { timeout: 30_000, interval: 20 });
    launcher.child.kill('SIGINT');
    expect(await launcher.exited(), launcher.lines.join('\n')).toBe(0);
    expect(launcher.lines).toContain('[launcher] SIGINT: stopping every component');
    expect(launcher.lines.some((line) => line.includes('listening'))).toBe(false);
  }, 60_000);
});

describe("every component's entry", () => {
  const entries = [
    'src/launcher/main.ts',
    'src/gateway/main.ts',
    'src/distributor/main.ts',
    ...SHOP_SERVICES.map((service) => `src/services/${service.name}/main.ts`),
  ];
  it('the launcher notes its parent with a module that imports nothing', () => {
    const source = readFileSync(new URL('../../src/launcher/parent-watch.ts', import.meta.url), 'utf8');
    expect(source).not.toMatch(/^import\b/m);
  });

  it.each(entries)('%s imports nothing before it holds signals, and the rest only after', (entry) => {
    const source = readFileSync(new URL(`../../${entry}`, import.meta.url), 'utf8');
    const staticImports = [...source.matchAll(/^import\b.*?from '([^']+)';$/gms)].map((match) => match[1]);
    // The launcher also notes its parent first thing (parent-watch.ts, which imports nothing).
    const expected =
      entry === 'src/launcher/main.ts' ? ['parent-watch.js', 'signal-hold.js'] : ['signal-hold.js'];
    expect(staticImports.map((path) => path!.split('/').at(-1)).sort()).toEqual(expected);
    expect(source.indexOf('holdSignals();')).toBeGreaterThan(0);
    expect(source.indexOf('holdSignals();')).toBeLessThan(source.search(/\bimport\(/));
  });
});
