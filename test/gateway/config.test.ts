import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/common/config.js';
import { defaultMaxConnections } from '../../src/common/max-connections.js';
import { loadGatewayConfig, parseByteSize } from '../../src/gateway/config.js';

describe('loadGatewayConfig', () => {
  it('caps connections at ¾ of the open-file limit by default, or as told', () => {
    const limit = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    expect(defaultMaxConnections()).toBe(limit ? Math.floor((Number(limit[1]) * 3) / 4) : 10_000);
    expect(loadGatewayConfig(['--max-connections', '50'], {}).maxConnections).toBe(50);
    expect(loadGatewayConfig([], { GATEWAY_MAX_CONNECTIONS: 'auto' }).maxConnections).toBe(
      defaultMaxConnections(),
    );
  });

  it('has the documented defaults', () => {
    expect(loadGatewayConfig([], {})).toEqual({
      host: '0.0.0.0',
      port: 8000,
      distributor: '127.0.0.1:9000',
      deadlineMs: 5000,
      bodyLimitBytes: 1024 * 1024,
      maxConnections: defaultMaxConnections(),
      maxPipelined: 16,
      bodyBudgetBytes: 32 * 1024 * 1024,
      maxStreamedLists: 16,
      unreadAnswerTimeoutMs: 30_000,
      restartGraceMs: 7000,
      drainDelayMs: 0,
      logLevel: 'info',
      corsOrigins: [],
      allowedHosts: [],
      statusClients: [],
      observability: { metrics: true, requestIds: true, metricsPort: undefined, metricsPortGiven: false },
      clientTraceContext: 'child',
    });
  });

  it('reads the environment, and flags over it', () => {
    const env = {
      GATEWAY_PORT: '8080',
      GATEWAY_HOST: '127.0.0.1',
      DISTRIBUTOR_ADDRESS: '10.0.0.1:9100',
      GATEWAY_DEADLINE_MS: '250',
      GATEWAY_BODY_LIMIT: '64KiB',
      LOG_LEVEL: 'debug',
      CORS_ORIGINS: 'https://shop.example, http://localhost:3000',
      GATEWAY_CLIENT_TRACE_CONTEXT: 'Link',
      GATEWAY_ALLOWED_HOSTS: 'Shop.Example., .internal.example',
      GATEWAY_STATUS_CLIENTS: 'local, 10.0.0.0/8',
    };
    expect(loadGatewayConfig([], env)).toEqual({
      host: '127.0.0.1',
      port: 8080,
      distributor: '10.0.0.1:9100',
      deadlineMs: 250,
      bodyLimitBytes: 65536,
      maxConnections: defaultMaxConnections(),
      maxPipelined: 16,
      bodyBudgetBytes: 32 * 1024 * 1024,
      maxStreamedLists: 16,
      unreadAnswerTimeoutMs: 30_000,
      restartGraceMs: 7000,
      drainDelayMs: 0,
      logLevel: 'debug',
      corsOrigins: ['https://shop.example', 'http://localhost:3000'],
      allowedHosts: ['shop.example', '.internal.example'],
      statusClients: ['10.0.0.0/8'],
      observability: { metrics: true, requestIds: true, metricsPort: undefined, metricsPortGiven: false },
      clientTraceContext: 'link',
    });
    expect(
      loadGatewayConfig(
        ['--port', '0', '--distributor', '[::1]:9000', '--deadline-ms', '1000', '--body-limit', '2048'],
        env,
      ),
    ).toMatchObject({ port: 0, distributor: '[::1]:9000', deadlineMs: 1000, bodyLimitBytes: 2048 });
    expect(
      loadGatewayConfig(
        [
          '--max-pipelined',
          '4',
          '--body-budget',
          '8MiB',
          '--max-streamed-lists',
          '2',
          '--unread-answer-timeout-ms',
          '5000',
        ],
        {},
      ),
    ).toMatchObject({
      maxPipelined: 4,
      bodyBudgetBytes: 8 * 1024 * 1024,
      maxStreamedLists: 2,
      unreadAnswerTimeoutMs: 5000,
    });
    expect(() => loadGatewayConfig([], { GATEWAY_MAX_STREAMED_LISTS: '0' })).toThrow(ConfigError);
    expect(() => loadGatewayConfig([], { GATEWAY_UNREAD_ANSWER_TIMEOUT_MS: '10' })).toThrow(ConfigError);
    expect(
      loadGatewayConfig(['--client-trace-context', 'child'], { GATEWAY_CLIENT_TRACE_CONTEXT: 'link' }),
    ).toMatchObject({ clientTraceContext: 'child' });
    expect(() => loadGatewayConfig(['--client-trace-context', 'ignore'], {})).toThrow(
      /--client-trace-context.*"ignore"/,
    );
  });

  it('refuses a body budget below the body limit rather than raise it unsaid', () => {
    // The budget was raised to the limit without a word: GATEWAY_BODY_BUDGET=1KiB ran with 1 MiB.
    expect(() => loadGatewayConfig([], { GATEWAY_BODY_BUDGET: '1KiB' })).toThrow(
      '--body-budget (GATEWAY_BODY_BUDGET): expected at least --body-limit (1048576 bytes), got 1024 bytes',
    );
    expect(() => loadGatewayConfig(['--body-budget', '1KiB', '--body-limit', '2KiB'], {})).toThrow(
      ConfigError,
    );
    expect(loadGatewayConfig(['--body-budget', '2KiB', '--body-limit', '2KiB'], {})).toMatchObject({
      bodyBudgetBytes: 2048,
      bodyLimitBytes: 2048,
    });
  });

  it('refuses bad values with a message naming the source', () => {
    expect(() => loadGatewayConfig(['--port', '70000'], {})).toThrow(ConfigError);
    expect(() => loadGatewayConfig([], { GATEWAY_DEADLINE_MS: '0' })).toThrow(/GATEWAY_DEADLINE_MS/);
    // Past what a Node.js timer holds it would fire at once: a stop would not wait for anything.
    expect(() => loadGatewayConfig(['--deadline-ms', '3000000000'], {})).toThrow(
      '--deadline-ms: expected at most 3600000, got "3000000000"',
    );
    expect(loadGatewayConfig(['--drain-delay-ms', '15000'], {}).drainDelayMs).toBe(15_000);
    expect(() => loadGatewayConfig([], { GATEWAY_DRAIN_DELAY_MS: '120001' })).toThrow(
      /GATEWAY_DRAIN_DELAY_MS: expected at most 120000/,
    );
    expect(() => loadGatewayConfig([], { GATEWAY_RESTART_GRACE_MS: '3600001' })).toThrow(
      /GATEWAY_RESTART_GRACE_MS: expected at most 3600000/,
    );
    expect(loadGatewayConfig(['--deadline-ms', '3600000'], {}).deadlineMs).toBe(3_600_000);
    expect(() => loadGatewayConfig(['--host', '999.0.0.1'], {})).toThrow(/--host: expected a host name/);
    expect(() => loadGatewayConfig([], { DISTRIBUTOR_ADDRESS: 'nowhere' })).toThrow(/DISTRIBUTOR_ADDRESS/);
    expect(() => loadGatewayConfig(['--body-limit', '1GB'], {})).toThrow(/--body-limit/);
    // A body past a service's limit on a request could only be refused by it, as "The answer is too large".
    expect(() => loadGatewayConfig([], { GATEWAY_BODY_LIMIT: '8MiB' })).toThrow(
      'GATEWAY_BODY_LIMIT: at most 1MiB (1048576 bytes), the largest request a service takes, got "8MiB"',
    );
    expect(loadGatewayConfig(['--body-limit', '1048576'], {}).bodyLimitBytes).toBe(1_048_576);
    expect(() => loadGatewayConfig(['--nope'], {})).toThrow();
    expect(() => loadGatewayConfig(['--max-connections', '0'], {})).toThrow(/--max-connections/);
    expect(() => loadGatewayConfig([], { GATEWAY_MAX_CONNECTIONS: 'many' })).toThrow(/or auto/);
    for (const origins of ['https://shop.example/', 'shop.example', 'https://a.example,*', 'ftp://x'])
      expect(() => loadGatewayConfig([], { CORS_ORIGINS: origins })).toThrow(/CORS_ORIGINS/);
    expect(loadGatewayConfig(['--cors-origins', '*'], {}).corsOrigins).toEqual(['*']);
    expect(loadGatewayConfig([], { CORS_ORIGINS: 'http://[::1]:8080' }).corsOrigins).toEqual([
      'http://[::1]:8080',
    ]);
    // As browsers send Origin: lower case, no default port, IPv6 compressed; else no request matched.
    expect(
      loadGatewayConfig([], {
        CORS_ORIGINS: 'https://Shop.Example:443,http://[0:0::1]:80,http://a.example:8080',
      }).corsOrigins,
    ).toEqual(['https://shop.example', 'http://[::1]', 'http://a.example:8080']);
    expect(() => loadGatewayConfig([], { CORS_ORIGINS: 'http://localhost:99999' })).toThrow(/CORS_ORIGINS/);
    // Only empty members: origins meant and lost, not "no CORS" said on purpose (that is unset or empty).
    expect(() => loadGatewayConfig(['--cors-origins', ','], {})).toThrow(
      new ConfigError(
        '--cors-origins: "," names no origin; give origins such as https://shop.example, or * for any, or leave it unset for no CORS',
      ),
    );
    for (const origins of [',', ' , ,', ' '])
      expect(() => loadGatewayConfig([], { CORS_ORIGINS: origins })).toThrow(
        /^CORS_ORIGINS: ".*" names no origin/,
      );
    expect(loadGatewayConfig([], { CORS_ORIGINS: '' }).corsOrigins).toEqual([]);
    expect(loadGatewayConfig([], {}).corsOrigins).toEqual([]);
    expect(loadGatewayConfig(['--allowed-hosts', '*'], {}).allowedHosts).toEqual(['*']);
    for (const hosts of [
      'https://shop.example',
      'shop.example:8000',
      'a.example,*',
      'shop example',
      ',',
      'x..y',
    ]) {
      expect(() => loadGatewayConfig([], { GATEWAY_ALLOWED_HOSTS: hosts }), hosts).toThrow(
        /^GATEWAY_ALLOWED_HOSTS: /,
      );
    }
  });
});

describe('parseByteSize', () => {
  it('takes bytes or binary K/M suffixes', () => {
    expect(parseByteSize('1', 'x')).toBe(1);
    expect(parseByteSize('512KiB', 'x')).toBe(524288);
    expect(parseByteSize('1mb', 'x')).toBe(1048576);
    expect(parseByteSize(' 2 M ', 'x')).toBe(2097152);
    for (const bad of ['0', '', '-1', '1.5M', 'MiB', '1TiB'])
      expect(() => parseByteSize(bad, 'x')).toThrow(ConfigError);
  });
});
