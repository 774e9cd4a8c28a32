import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, makeGenericClientConstructor } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createDistributorServer, type DistributorServer } from '../../src/distributor/distributor-server.js';
import { NodeState } from '../../src/gen/distributor.js';
import { shopComponents } from '../../src/launcher/components.js';
import { configurationMarkdown } from '../../src/launcher/config-docs.js';
import { checkServiceList, defineService } from '../../src/services/common/define-service.js';
import { loadServiceConfig } from '../../src/services/common/service-config.js';
import { type RunningService, startService } from '../../src/services/common/start-service.js';
import { SHOP_SERVICES } from '../../src/services/service-list.js';
import { checkHealth, reflect } from '../helpers/grpc-clients.js';
import {
  ECHO_DEFINITION,
  type EchoRequestShape,
  type EchoResponseShape,
  type EchoStore,
  echoService,
} from './fixtures/echo/echo-service.js';
import { testServiceConfig } from './support/service-config.js';

// Issue 10 §2: a fourth service is its folder (here test/services/fixtures/echo: a definition and a
// main.ts of a few lines, as the shop's) plus one entry in the list of services. Everything else comes from the generic
// code: configuration, the launcher's component, the README's rows, registration, health,
// reflection and the ordered stop.

const EchoClient = makeGenericClientConstructor(ECHO_DEFINITION, 'echo');
type EchoClient = InstanceType<typeof EchoClient>;

function echo(client: EchoClient, text: string): Promise<EchoResponseShape> {
  return new Promise((resolve, reject) => {
    const request: EchoRequestShape = { text };
    client.echo(request, { deadline: Date.now() + 5_000 }, (error: Error | null, reply: EchoResponseShape) =>
      error ? reject(error) : resolve(reply),
    );
  });
}

const SERVICES = checkServiceList([...SHOP_SERVICES, echoService]);

describe('a fourth service added to the list', () => {
  it('gets its settings: its port variable and default, and every setting the others have', () => {
    expect(loadServiceConfig(echoService, [], {})).toMatchObject({
      port: 9990,
      storage: { kind: 'sqlite', dataDir: './data' },
    });
    expect(loadServiceConfig(echoService, [], { ECHO_PORT: '0', GOODS_PORT: '1' }).port).toBe(0);
  });

  it('is a launcher component between the others and the gateway, and has its rows in the README table', () => {
    const components = shopComponents(SERVICES);
    // The shop's own services (goods, members, purchases and any added since), then echo.
    const shop = SHOP_SERVICES.map((service) => service.name);
    expect(shop.slice(0, 3)).toEqual(['goods', 'members', 'purchases']);
    expect(components.map((component) => component.name)).toEqual([
      'distributor',
      ...shop,
      'echo',
      'gateway',
    ]);
    expect(components.at(-2)).toMatchObject({ entry: '../services/echo/main.js' });
    const table = configurationMarkdown(components);
    expect(table).toContain('| `--port` | `ECHO_PORT` | 9990 |');
    expect(table).toContain(`| ${[...shop, 'echo'].join(', ')} |`);
    expect(table).toMatch(/\| `MYSQL_URL` \|.*\| goods, members, purchases, (?:[a-z0-9-]+, )*echo \|/);
  });

  it('may not share a name, a gRPC service, a port variable or a default port with another', () => {
    const clash = (port: { env: string; default: number }, name = 'echo-two') =>
      checkServiceList([...SERVICES, defineService({ ...echoService, name, port })]);
    expect(() => clash({ env: 'ECHO_TWO_PORT', default: 9041 })).toThrow(
      'services "echo" and "echo-two" have the same gRPC service: test.echo.v1.EchoService',
    );
    expect(() => clash({ env: 'ECHO_PORT', default: 9041 }, 'echo')).toThrow('the same name: echo');
    expect(() =>
      checkServiceList([
        ...SHOP_SERVICES,
        defineService({ ...echoService, port: { env: 'ECHO_PORT', default: 9010 } }),
      ]),
    ).toThrow('services "goods" and "echo" have the same default port: 9010');
  });

  it('is refused at definition when its gRPC definition is not the service it names', () => {
    expect(() =>
      defineService({ ...echoService, grpc: { ...echoService.grpc, name: 'test.echo.v1.OtherService' } }),
    ).toThrow('method /test.echo.v1.EchoService/Echo is not one of test.echo.v1.OtherService');
    expect(() => defineService({ ...echoService, name: 'Echo Service' })).toThrow(/the name must be/);
  });
});

describe('a fourth service run by the generic runner', () => {
  let dataDir: string;
  let distributor: DistributorServer;
  let distributorAddress: string;
  let running: RunningService | undefined;
  let client: EchoClient | undefined;
  let spawned: Spawned | undefined;

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'shop-echo-'));
    distributor = createDistributorServer();
    distributorAddress = `127.0.0.1:${await distributor.listen('127.0.0.1', 0)}`;
  });
  afterEach(async () => {
    if (spawned && spawned.process.exitCode === null) {
      spawned.process.kill('SIGKILL');
      await spawned.exited;
    }
    spawned = undefined;
    client?.close();
    client = undefined;
    await running?.stop();
    running = undefined;
    await distributor.stop(100);
    await rm(dataDir, { recursive: true, force: true });
  });

  it('serves on port 0 with its store, registers, serves health and reflection, and stops in order', async () => {
    let store: EchoStore | undefined;
    const spied = defineService({
      ...echoService,
      stores: {
        ...echoService.stores,
        sqlite: (file) => {
          store = echoService.stores.sqlite(file);
          return store;
        },
      },
    });
    running = await startService(spied, testServiceConfig(distributorAddress, { kind: 'sqlite', dataDir }), {
      registrationBackoff: { initialMs: 20, maxMs: 200 },
      handlerOptions: { prefix: 'echo: ' },
    });
    const address = `127.0.0.1:${running.port}`;
    expect(running.port).toBeGreaterThan(0);

    await vi.waitFor(() =>
      expect(distributor.registry.snapshot().nodes).toEqual([
        expect.objectContaining({ name: 'echo', port: running!.port, state: NodeState.NODE_STATE_SERVING }),
      ]),
    );
    client = new EchoClient(address, credentials.createInsecure());
    await expect(echo(client, 'hello')).resolves.toEqual({
      text: 'echo: hello',
      storeFile: join(dataDir, 'echo.sqlite'),
    });

    await vi.waitFor(async () => expect(await checkHealth(address)).toBe('SERVING'));
    expect(await checkHealth(address, 'test.echo.v1.EchoService')).toBe('SERVING');
    const { services, registry } = await reflect(address);
    expect(services).toEqual(expect.arrayContaining(['test.echo.v1.EchoService', 'grpc.health.v1.Health']));
    expect(registry.getService('test.echo.v1.EchoService')?.methods.map((method) => method.name)).toEqual([
      'Echo',
    ]);
    expect(registry.getMessage('test.echo.v1.EchoResponse')?.fields.map((field) => field.name)).toEqual([
      'text',
      'store_file',
    ]);

    await running.stop();
    running = undefined;
    expect(distributor.registry.snapshot().nodes).toEqual([]);
    expect(store?.closed).toBe(true);
  });

  it('runs as its own process from its main.ts, and stops on SIGTERM with 0', async () => {
    const child = spawnEcho([], {
      ECHO_PORT: '0',
      DISTRIBUTOR_ADDRESS: distributorAddress,
      DATA_DIR: dataDir,
    });
    spawned = child;
    const node = await vi.waitFor(
      () => {
        const [found] = distributor.registry.snapshot().nodes;
        expect(found, child.output()).toMatchObject({ name: 'echo', state: NodeState.NODE_STATE_SERVING });
        return found!;
      },
      { timeout: 20_000, interval: 50 },
    );
    client = new EchoClient(`127.0.0.1:${node.port}`, credentials.createInsecure());
    await expect(echo(client, 'hi')).resolves.toEqual({
      text: 'hi',
      storeFile: join(dataDir, 'echo.sqlite'),
    });
    child.process.kill('SIGTERM');
    expect(await child.exited).toBe(0);
    expect(child.output()).toContain('"component":"echo"');
  });

  it('a bad setting stops its process with its own usage text and exit code 2', async () => {
    const child = spawnEcho(['--port', 'ninety'], {});
    spawned = child;
    expect(await child.exited).toBe(2);
    expect(child.output()).toContain('usage: echo [options]');
    expect(child.output()).toMatch(/--port VALUE\s+ECHO_PORT\s+.*\(default: 9990\)/);
  });
});

interface Spawned {
  readonly process: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

/** Runs the fixture's main.ts the way a user runs a service's: its own process. */
function spawnEcho(args: string[], env: Record<string, string>): Spawned {
  const { MYSQL_URL: _ignored, ...inherited } = process.env;
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/services/fixtures/echo/main.ts', ...args], {
    env: { ...inherited, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    output += chunk;
  });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { process: child, output: () => output, exited };
}
