import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { type Client, credentials, Server, ServerCredentials, type ServiceDefinition } from '@grpc/grpc-js';
import { mapProxyName } from '@grpc/grpc-js/build/src/http_proxy.js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { bytesMethod } from '../../src/common/bytes-method.js';
import {
  grpcCollectorAddress,
  keepLocalCollectorOffProxy,
  noProxyListMatches,
} from '../../src/common/collector-proxy.js';
import { startOpenTelemetry } from '../../src/common/otel-tracing.js';
import {
  ECHO,
  ECHO_ANSWERS,
  EchoClient,
  ping,
  type RecordingProxy,
  startRecordingProxy,
} from '../helpers/connect-proxy.js';

describe('the address the OTLP/gRPC exporter dials', () => {
  it.each([
    [{}, 'localhost:4317'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: ' http://127.1:4317 ' }, '127.0.0.1:4317'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'LocalHost:4317' }, 'localhost:4317'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://[::1]:4317' }, '[::1]:4317'],
    [
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4317',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'collector:4317',
      },
      'collector:4317',
    ],
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: ' ' },
      'collector:4317',
    ],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'unix:///run/otel.sock' }, undefined],
  ])('%o: %s', (env, address) => {
    expect(grpcCollectorAddress(env)).toBe(address);
  });
});

describe('keeping a collector on this machine off the proxy', () => {
  const PROXY = 'http://proxy.example:3128';

  it.each<[NodeJS.ProcessEnv, string]>([
    // no_proxy alone: its entries are copied, as they are, since grpc-js then reads no_grpc_proxy alone.
    [{ http_proxy: PROXY, no_proxy: ' .internal,10.0.0.0/8' }, ' .internal,10.0.0.0/8,127.0.0.1/32'],
    [{ https_proxy: PROXY, no_grpc_proxy: 'a.example', no_proxy: 'b.example' }, 'a.example,127.0.0.1/32'],
    [{ grpc_proxy: PROXY, no_grpc_proxy: '', no_proxy: 'b.example' }, 'b.example,127.0.0.1/32'],
    // No empty entry, which grpc-js would take as matching every host.
    [{ http_proxy: PROXY }, '127.0.0.1/32'],
  ])('%o: no_grpc_proxy=%s', (given, expected) => {
    const env: NodeJS.ProcessEnv = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4317', ...given };
    expect(keepLocalCollectorOffProxy(env)).toMatchObject({ event: 'otlp-collector-no-proxy' });
    expect(env.no_grpc_proxy).toBe(expected);
    expect(env.no_proxy).toBe(given.no_proxy);
  });

  it('names localhost by name, the exporter’s default collector', () => {
    const env: NodeJS.ProcessEnv = { http_proxy: PROXY, no_proxy: 'b.example' };
    expect(keepLocalCollectorOffProxy(env)).toMatchObject({ entry: 'localhost' });
    expect(env.no_grpc_proxy).toBe('b.example,localhost');
  });

  it.each([
    ['no proxy is set', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4317', no_proxy: 'b.example' }],
    [
      'the collector is on another machine',
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://10.0.0.2:4317', http_proxy: PROXY },
    ],
    [
      'the collector is a unix socket',
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'unix:///run/otel.sock', http_proxy: PROXY },
    ],
    // grpc-js takes the first variable set, and no proxy when it is no http:// URL.
    [
      'the proxy is no http:// URL',
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4317', https_proxy: 'https://proxy.example:3128' },
    ],
    [
      'the first proxy variable set is no URL',
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4317',
        grpc_proxy: 'proxy.example:3128',
        http_proxy: PROXY,
        no_proxy: 'b.example',
      },
    ],
    [
      'the list names it already',
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4317', http_proxy: PROXY, no_proxy: 'x,127.0.0.1/32' },
    ],
  ])('changes nothing when %s', (_case, given) => {
    const env: NodeJS.ProcessEnv = { ...given };
    expect(keepLocalCollectorOffProxy(env)).toBeUndefined();
    expect(env).toEqual(given);
  });

  it.each([
    // The IPv6 note's own advice, followed: no warning that the exporter goes through the proxy.
    ['[::1]', { no_grpc_proxy: '::1' }],
    ['127.0.0.1', { no_proxy: '127.0.0.0/8' }],
    ['127.0.0.1', { no_grpc_proxy: 'a.example,127.0.0.1' }],
    ['localhost', { no_proxy: '.example,localhost' }],
    // An empty entry, which grpc-js takes as matching every host.
    ['127.0.0.1', { no_proxy: 'a.example,' }],
  ])('says and changes nothing for %s when grpc-js takes it directly already: %o', (host, lists) => {
    const given: NodeJS.ProcessEnv = {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://${host}:4317`,
      http_proxy: PROXY,
      ...lists,
    };
    const env = { ...given };
    expect(keepLocalCollectorOffProxy(env)).toBeUndefined();
    expect(env).toEqual(given);
  });

  it.each<[string, string]>([
    ['127.0.0.1/32', '127.0.0.1'],
    ['127.0.0.1/32', '127.0.0.2'],
    ['127.0.0.0/8', '127.9.9.9'],
    ['0.0.0.0/0', '10.1.2.3'],
    ['0.0.0.0/0', '0.0.0.0'],
    ['128.0.0.0/1', '200.1.1.1'],
    ['128.0.0.0/1', '100.1.1.1'],
    ['10.0.0.0/33', '10.0.0.1'],
    ['localhost', 'notlocalhost'],
    ['localhost', 'localhost.example'],
    ['::1', 'fd00::1'],
    [' 127.0.0.1', '127.0.0.1'],
    ['a.example,', 'anything'],
    ['', 'anything'],
    ['.internal', 'db.internal'],
  ])('matches no-proxy list %o against %s as grpc-js does', (list, host) => {
    vi.stubEnv('http_proxy', PROXY);
    vi.stubEnv('no_grpc_proxy', list);
    try {
      const mapped = mapProxyName(
        { scheme: 'dns', path: `${host.includes(':') ? `[${host}]` : host}:1` },
        {},
      );
      expect(noProxyListMatches(list, host)).toBe(!('grpc.http_connect_target' in mapped.extraOptions));
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it.each([
    [{ https_proxy: 'https://proxy.example:3128' }],
    [{ grpc_proxy: 'proxy.example:3128', http_proxy: PROXY }],
  ])('takes, as grpc-js does, no proxy at all for %o', (proxies) => {
    for (const name of ['grpc_proxy', 'https_proxy', 'http_proxy', 'no_grpc_proxy', 'no_proxy']) {
      vi.stubEnv(name, '');
    }
    for (const [name, value] of Object.entries(proxies)) vi.stubEnv(name, value);
    // grpc-js says why on its logger, the console by default.
    const said = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      const mapped = mapProxyName({ scheme: 'dns', path: '192.0.2.1:1' }, {});
      expect(mapped.extraOptions).toEqual({});
      expect(String(said.mock.calls[0])).toContain('scheme not supported in proxy URI');
    } finally {
      said.mockRestore();
      vi.unstubAllEnvs();
    }
  });

  it('only warns for an IPv6 collector, whose address grpc-js would match as a suffix of others', () => {
    const env: NodeJS.ProcessEnv = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://[::1]:4317', http_proxy: PROXY };
    const note = keepLocalCollectorOffProxy(env);
    expect(note).toMatchObject({ event: 'otlp-collector-through-proxy' });
    expect(note?.message).toContain('http_proxy');
    expect(note?.message).toContain('no_grpc_proxy');
    expect(env.no_grpc_proxy).toBeUndefined();
  });

  it('advises the list grpc-js reads: no_proxy when that alone is set, so none of its entries is lost', () => {
    const env: NodeJS.ProcessEnv = {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://[::1]:4317',
      http_proxy: PROXY,
      no_grpc_proxy: '',
      no_proxy: '10.0.0.0/8',
    };
    const note = keepLocalCollectorOffProxy(env);
    expect(note?.message).toContain('add ::1 to no_proxy');
    expect(note?.message).not.toContain('to no_grpc_proxy');
  });
});

const EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

/** An OTLP/gRPC receiver: it keeps each export request's bytes and answers an empty response. */
const TRACE_SERVICE: ServiceDefinition = { export: bytesMethod(EXPORT_PATH) };

describe('an OTLP/gRPC collector on this machine, with a proxy in the environment', () => {
  let server: Server;
  let serverPort: number;
  let proxy: RecordingProxy;
  let refusingUrl: string;
  /** The export requests the receiver took. */
  const exports: Buffer[] = [];
  const clients: Client[] = [];

  beforeAll(async () => {
    server = new Server();
    server.addService(TRACE_SERVICE, {
      export: (call: { request: Buffer }, callback: (error: null, answer: Buffer) => void) => {
        exports.push(call.request);
        callback(null, Buffer.alloc(0));
      },
    });
    server.addService(ECHO, ECHO_ANSWERS);
    serverPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) =>
        error ? reject(error) : resolve(port),
      ),
    );
    proxy = await startRecordingProxy(serverPort);
    // A loopback port nothing listens on: a proxy there refuses every connection.
    const closed = createTcpServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    refusingUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((resolve) => closed.close(resolve));
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
    exports.length = 0;
    proxy.asked.length = 0;
    vi.unstubAllEnvs();
  });
  afterAll(async () => {
    server.forceShutdown();
    await proxy.close();
  });

  /** The environment of a traced component exporting over OTLP/gRPC to the receiver, at `host`. */
  function stubTracingEnv(host: string, proxies: Record<string, string>, noProxy: string): void {
    for (const name of ['grpc_proxy', 'https_proxy', 'http_proxy', 'no_grpc_proxy', 'no_proxy']) {
      vi.stubEnv(name, '');
    }
    for (const [name, value] of Object.entries(proxies)) vi.stubEnv(name, value);
    vi.stubEnv('no_proxy', noProxy);
    vi.stubEnv('OTEL_TRACES_EXPORTER', 'otlp');
    vi.stubEnv('OTEL_EXPORTER_OTLP_PROTOCOL', 'grpc');
    vi.stubEnv('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', '');
    vi.stubEnv('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', '');
    vi.stubEnv('OTEL_EXPORTER_OTLP_ENDPOINT', `http://${host}:${serverPort}`);
    vi.stubEnv('OTEL_TRACES_SAMPLER', 'always_on');
    vi.stubEnv('OTEL_NODE_RESOURCE_DETECTORS', 'none');
  }

  /** Starts tracing from the process environment, ends one span named `name`, and stops (which exports it). */
  async function traceOneSpan(name: string, log = { info: vi.fn(), warn: vi.fn() }): Promise<void> {
    const { tracer, stop } = await startOpenTelemetry('test', process.env, log);
    tracer.startSpan(name, 'server', undefined).end();
    await stop();
  }

  function exported(name: string): boolean {
    return exports.some((request) => request.includes(Buffer.from(name)));
  }

  it.each([
    ['127.0.0.1', 'http_proxy'],
    ['127.0.0.1', 'grpc_proxy'],
    ['localhost', 'http_proxy'],
  ])('exports to %s directly with a refusing proxy in %s', async (host, variable) => {
    stubTracingEnv(host, { [variable]: refusingUrl }, '');
    await traceOneSpan('GET /goods');
    expect(exported('GET /goods')).toBe(true);
  });

  it('leaves the other channels as grpc-js had them: no_proxy honoured, other hosts through the proxy', async () => {
    // Channels made without channelOptionsFor, which grpc-js sends to the proxy even for loopback
    // (so that no test traffic leaves the machine): one to an address no_proxy names, one to another.
    stubTracingEnv('127.0.0.1', { http_proxy: proxy.url }, '127.0.0.2');
    const log = { info: vi.fn(), warn: vi.fn() };
    await traceOneSpan('GET /orders', log);
    expect(log.info).toHaveBeenCalledOnce();
    expect(log.info.mock.calls[0]?.[0]).toEqual({ event: 'otlp-collector-no-proxy', entry: '127.0.0.1/32' });
    expect(log.warn).not.toHaveBeenCalled();
    expect(exported('GET /orders')).toBe(true);
    expect(proxy.asked).toEqual([]);
    expect(process.env.no_grpc_proxy).toBe('127.0.0.2,127.0.0.1/32');

    const proxied = `127.0.0.3:${serverPort}`;
    expect(await ping(plainClientOf(proxied), 10_000)).toBe('pong');
    expect(proxy.asked).toEqual([proxied]);
    // Named in no_proxy: dialled directly, so the proxy is not asked (and nothing listens there:
    // the receiver listens on 127.0.0.1 alone).
    await expect(ping(plainClientOf(`127.0.0.2:${serverPort}`), 2_000)).rejects.toThrow();
    expect(proxy.asked).toEqual([proxied]);
  });

  /** A client made as grpc-js alone makes it, without channelOptionsFor. */
  function plainClientOf(target: string): Client {
    const client = new EchoClient(target, credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
    });
    clients.push(client);
    return client;
  }
});
