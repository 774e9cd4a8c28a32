import { type ChannelOptions, type Client, credentials, Server, ServerCredentials } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { channelOptionsFor, dialsDirectly } from '../../src/common/proxy-choice.js';
import {
  ECHO,
  ECHO_ANSWERS,
  EchoClient,
  ping,
  type RecordingProxy,
  startRecordingProxy,
} from '../helpers/connect-proxy.js';

describe('which targets grpc-js must dial without the environment proxy', () => {
  it.each([
    '127.0.0.1:9000',
    '127.9.9.9:9000',
    '[::1]:9000',
    '[::ffff:127.0.0.1]:9000',
    'localhost:9000',
    'LocalHost.:9000',
    'shop.localhost:9000',
    'localhost',
    'dns:///localhost:9000',
    'dns://8.8.8.8/127.0.0.1:9000',
    'ipv4:127.0.0.1:9000,127.0.0.2:9001',
    'ipv6:[::1]:9000',
    '0.0.0.0:9000',
    '[::]:9000',
    // inet_aton's spellings, which getaddrinfo (grpc-js's DNS resolver) answers as 127.0.0.1 and
    // 0.0.0.0: proxied, they would reach the proxy's own loopback.
    '127.1:9000',
    '127.0.1:9000',
    '0x7f.1:9000',
    '0X7F.0x0.0x0.0x1:9000',
    '0177.0.0.1:9000',
    '2130706433:9000',
    '0x7f000001:9000',
    'ipv4:127.1:9000',
    '0:9000',
    'unix:/tmp/shop.sock',
    'unix:///tmp/shop.sock',
    'unix-abstract:shop',
    'distributor:///shop.v1.GoodsService',
    'distributor:///goods',
  ])('%s: directly', (target) => {
    expect(dialsDirectly(target)).toBe(true);
    expect(channelOptionsFor(target, { 'grpc.keepalive_time_ms': 1 })).toEqual({
      'grpc.keepalive_time_ms': 1,
      'grpc.enable_http_proxy': 0,
    });
  });

  it.each([
    '10.1.2.3:9000',
    '192.0.2.1:9000',
    '[fd00::1]:9000',
    'shop.example:9000',
    'dns:///shop.example:443',
    'notlocalhost:9000',
    'localhost.example:9000',
    'ipv4:127.0.0.1:9000,10.0.0.1:9000',
    '127.0.0.1.nip.io:9000',
    'localhost.example.com:9000',
    '127.1.example:9000',
    '10.1:9000',
    '0x0a000001:9000',
    '08.0.0.1:9000',
    '127.256.1:9000',
  ])('%s: as grpc-js decides (proxy unless no_proxy names it)', (target) => {
    expect(dialsDirectly(target)).toBe(false);
    const options: ChannelOptions = { 'grpc.keepalive_time_ms': 1 };
    expect(channelOptionsFor(target, options)).toEqual({ 'grpc.keepalive_time_ms': 1 });
  });

  it('keeps a proxy turned off by the caller off', () => {
    expect(channelOptionsFor('10.1.2.3:9000', { 'grpc.enable_http_proxy': 0 })).toEqual({
      'grpc.enable_http_proxy': 0,
    });
  });
});

/** One unary method taking and giving raw bytes. */
describe('a channel made with channelOptionsFor, with a proxy in the environment', () => {
  let server: Server;
  let serverPort: number;
  let proxy: RecordingProxy;
  const clients: Client[] = [];

  beforeAll(async () => {
    server = new Server();
    server.addService(ECHO, ECHO_ANSWERS);
    serverPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) =>
        error ? reject(error) : resolve(port),
      ),
    );
    proxy = await startRecordingProxy(serverPort);
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
    proxy.asked.length = 0;
    vi.unstubAllEnvs();
  });
  afterAll(async () => {
    server.forceShutdown();
    await proxy.close();
  });

  function clientOf(target: string, options: ChannelOptions): Client {
    const client = new EchoClient(target, credentials.createInsecure(), {
      ...options,
      'grpc.use_local_subchannel_pool': 1,
    });
    clients.push(client);
    return client;
  }

  it.each(['grpc_proxy', 'https_proxy', 'http_proxy'])(
    'sends a non-loopback target through the proxy %s names, as grpc-js does',
    async (variable) => {
      vi.stubEnv('grpc_proxy', '');
      vi.stubEnv('https_proxy', '');
      vi.stubEnv('http_proxy', '');
      vi.stubEnv('no_grpc_proxy', '');
      vi.stubEnv('no_proxy', '');
      vi.stubEnv(variable, proxy.url);
      // TEST-NET-1 (RFC 5737): only the proxy is dialled, which tunnels to the loopback server.
      const target = `192.0.2.1:${serverPort}`;
      expect(await ping(clientOf(target, channelOptionsFor(target)))).toBe('pong');
      expect(proxy.asked).toEqual([target]);
    },
  );

  it.each(['127.0.0.1', 'localhost', '[::ffff:127.0.0.1]', '127.1', '0x7f.1'])(
    'dials %s directly: the proxy is asked nothing',
    async (host) => {
      vi.stubEnv('grpc_proxy', proxy.url);
      vi.stubEnv('https_proxy', proxy.url);
      vi.stubEnv('http_proxy', proxy.url);
      vi.stubEnv('no_grpc_proxy', '');
      vi.stubEnv('no_proxy', '');
      const target = `${host}:${serverPort}`;
      expect(await ping(clientOf(target, channelOptionsFor(target)))).toBe('pong');
      expect(proxy.asked).toEqual([]);
    },
  );

  it('is needed: grpc-js alone sends even a loopback target to the proxy', async () => {
    vi.stubEnv('grpc_proxy', '');
    vi.stubEnv('https_proxy', '');
    vi.stubEnv('http_proxy', proxy.url);
    vi.stubEnv('no_grpc_proxy', '');
    vi.stubEnv('no_proxy', '');
    const target = `127.0.0.1:${serverPort}`;
    expect(await ping(clientOf(target, {}))).toBe('pong');
    expect(proxy.asked).toEqual([target]);
  });
});
