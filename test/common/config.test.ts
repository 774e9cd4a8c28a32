import { describe, expect, it } from 'vitest';
import {
  COMMON_SETTINGS,
  DISTRIBUTOR_ADDRESS_SETTING,
  hostSetting,
  tlsSettings,
} from '../../src/common/common-settings.js';
import { ConfigError, parseHostPort, parsePort } from '../../src/common/config.js';
import {
  loadSettings,
  markdownTable,
  optionalSetting,
  setting,
  switchSetting,
  usageText,
} from '../../src/common/settings.js';
import { ignoredOpenSwitch, loadDistributorConfig } from '../../src/distributor/config.js';

const TOKEN = 'a-token-of-sixteen-or-more';

describe('a settings table', () => {
  const table = {
    port: setting({ flag: 'port', env: 'X_PORT', default: '9000', help: 'the port', parse: parsePort }),
    name: optionalSetting({ env: 'X_NAME', help: 'a name', parse: (value) => value }),
    loud: switchSetting({ flag: 'loud', env: 'X_LOUD', help: 'shout' }),
  };

  it('takes a flag over the environment over the default', () => {
    expect(loadSettings(table, [], {})).toEqual({ port: 9000, name: undefined, loud: false });
    expect(loadSettings(table, [], { X_PORT: '9100', X_NAME: 'n', X_LOUD: '1' })).toEqual({
      port: 9100,
      name: 'n',
      loud: true,
    });
    expect(loadSettings(table, ['--port', '0', '--loud'], { X_PORT: '9100', X_LOUD: 'false' })).toEqual({
      port: 0,
      name: undefined,
      loud: true,
    });
  });

  it.each([
    ['an unknown flag', ['--bogus', '1'], {}, /Unknown option '--bogus'/],
    ['a flag without its value', ['--port'], {}, /--port/],
    ['a stray word', ['9000'], {}, /Unexpected argument '9000'/],
    ['a bad flag value', ['--port', 'abc'], {}, /--port: expected a whole number/],
    ['a bad variable', [], { X_PORT: '70000' }, /X_PORT: expected a port from 0 to 65535/],
    ['a bad switch', [], { X_LOUD: 'yes' }, /X_LOUD: expected true or false/],
    ['a flag given twice', ['--port', '9001', '--port=9002'], {}, /--port is given more than once/],
    ['a switch given twice', ['--loud', '--loud'], {}, /--loud is given more than once/],
    ['a flag given empty', ['--port='], {}, /--port: expected a value, got an empty one/],
    // A typo is named as typed, with the flag it most likely meant.
    ['a misspelt flag', ['--prot', '9011'], {}, /^Unknown option '--prot': did you mean --port\?$/],
    ['a flag in the wrong case', ['--Port=9011'], {}, /^Unknown option '--Port': did you mean --port\?$/],
    // parseArgs read -port as -p -o -r -t and named '-p', which nobody typed.
    [
      'a flag with one dash',
      ['-port', '9011'],
      {},
      /^Unknown option '-port': did you mean --port\? \(flags take two dashes\)$/,
    ],
    ['a flag like none', ['--port', '-1', '--verbose'], {}, /^Unknown option '--verbose'$/],
    // npm run goods --port=9011 (no "--"): npm keeps the flag, and goods ran on its default port.
    ['a flag npm kept as its own setting', [], { npm_config_port: '9011' }, /npm kept --port=9011/],
  ])('refuses %s with a ConfigError naming its source', (_label, argv, env, message) => {
    expect(() => loadSettings(table, argv, env)).toThrow(ConfigError);
    expect(() => loadSettings(table, argv, env)).toThrow(message);
  });

  it("looks for flags npm kept among other tables with the caller's refusal (npm start's), or not at all once looked for", () => {
    const others = {
      origins: setting({ flag: 'cors-origins', default: '', help: 'origins', parse: (v) => v }),
    };
    const launcher = {
      tables: [table, others],
      refusal: (taken: string) => `npm start takes no flags, and npm kept ${taken}`,
    };
    // A flag of another component's table, which the table loaded has not: found all the same.
    expect(() => loadSettings(table, [], { npm_config_cors_origins: 'x' }, launcher)).toThrow(
      new ConfigError('npm start takes no flags, and npm kept --cors-origins=x'),
    );
    expect(() => loadSettings(table, [], { npm_config_port: '9011' }, launcher)).toThrow(
      new ConfigError('npm start takes no flags, and npm kept --port=9011'),
    );
    // Looked for once already: a later load of the same environment does not look again.
    expect(loadSettings(table, [], { npm_config_port: '9011' }, 'checked').port).toBe(9000);
  });

  it('refuses a flag given empty even where its parser takes an empty value (a variable set empty is unset)', () => {
    const open = {
      origins: setting({
        flag: 'origins',
        env: 'X_ORIGINS',
        default: '',
        help: 'origins',
        parse: (value) => value,
      }),
    };
    expect(loadSettings(open, [], { X_ORIGINS: '' })).toEqual({ origins: '' });
    for (const argv of [['--origins='], ['--origins', ''], ['--origins', ' ']]) {
      expect(() => loadSettings(open, argv, {})).toThrow(/--origins: expected a value, got an empty one/);
    }
  });

  it('makes the usage and the README rows from the same declarations', () => {
    const usage = usageText('thing', table);
    expect(usage).toContain('usage: thing [options]');
    expect(usage).toMatch(/--port VALUE\s+X_PORT\s+the port \(default: 9000\)/);
    expect(usage).toMatch(/--loud\s+X_LOUD\s+shout \(default: false\)/);
    const markdown = markdownTable([
      { component: 'a', table },
      { component: 'b', table: { port: table.port } },
    ]);
    expect(markdown.split('\n')).toEqual([
      '| flag | environment | default | what it sets | used by |',
      '|---|---|---|---|---|',
      '| `--port` | `X_PORT` | 9000 | the port | all |',
      '|  | `X_NAME` | none | a name | a |',
      '| `--loud` | `X_LOUD` | false | shout | a |',
    ]);
  });
});

describe('parsePort and parseHostPort', () => {
  it('accept what they document and name the source of a bad value', () => {
    expect(parsePort('0', '--port')).toBe(0);
    expect(parseHostPort('[::1]:9000', 'DISTRIBUTOR_ADDRESS')).toEqual({ host: '::1', port: 9000 });
    expect(() => parsePort('65536', 'GOODS_PORT')).toThrow(
      'GOODS_PORT: expected a port from 0 to 65535, got "65536"',
    );
    expect(() => parseHostPort('localhost', '--distributor')).toThrow('--distributor: expected host:port');
    expect(() => parseHostPort('localhost:0', '--distributor')).toThrow('the port must not be 0');
  });

  it('refuse a host that --host would refuse, rather than resolve it for ever', () => {
    expect(parseHostPort('shop-distributor.internal:9000', '--distributor')).toEqual({
      host: 'shop-distributor.internal',
      port: 9000,
    });
    for (const value of ['999.1.1.1:9000', '127.0.0.1 :9000', 'shop host:9000', 'exa!mple:9000']) {
      expect(() => parseHostPort(value, 'DISTRIBUTOR_ADDRESS')).toThrow(
        `DISTRIBUTOR_ADDRESS: expected a host name or an IP address before the port, got "${value}"`,
      );
    }
  });

  it('say that an IPv6 host goes in brackets when one is given without', () => {
    expect(parseHostPort('[fd63:163::1]:9000', '--distributor')).toEqual({ host: 'fd63:163::1', port: 9000 });
    for (const value of ['fd63:163::1:9000', 'fd63:163::1', '::1:9000']) {
      expect(() => parseHostPort(value, '--distributor')).toThrow(
        `--distributor: expected host:port (e.g. 127.0.0.1:9000, an IPv6 address in brackets ([fd00::1]:9000)), got "${value}"`,
      );
    }
    expect(() => parseHostPort('10.0.0.1', '--distributor')).toThrow(
      '--distributor: expected host:port (e.g. 127.0.0.1:9000), got "10.0.0.1"',
    );
  });

  it('refuse a link-local host to listen on without the zone id of its interface, which the system cannot bind', () => {
    const host = { host: hostSetting('X_HOST', '127.0.0.1') };
    // A zone id naming an interface this machine has (lo, on every Linux one): eth0 may be none.
    expect(loadSettings(host, ['--host', 'fe80::1%lo'], {})).toEqual({ host: 'fe80::1%lo' });
    expect(loadSettings(host, ['--host', '[fd00::2]'], {})).toEqual({ host: 'fd00::2' });
    // The zone id named is of this machine's interfaces (test/common/interface-holding.test.ts).
    expect(() => loadSettings(host, [], { X_HOST: 'fe80::fc:ff:fe00:1' })).toThrow(
      /^X_HOST: a link-local address \(fe80::\/10\) is bound on one interface, named by a zone id \(fe80::fc:ff:fe00:1%.+\), got "fe80::fc:ff:fe00:1"$/,
    );
  });

  it('refuse a link-local distributor address, which grpc-js cannot dial with a zone id nor the system without', () => {
    const load = (value: string) =>
      loadSettings({ distributor: DISTRIBUTOR_ADDRESS_SETTING }, ['--distributor', value], {});
    expect(load('[fd63:163::1]:9000')).toEqual({ distributor: '[fd63:163::1]:9000' });
    expect(load('[fec0::1]:9000')).toEqual({ distributor: '[fec0::1]:9000' });
    for (const value of ['[fe80::1%eth0]:9000', '[fe80::1]:9000', '[FEBF::1]:9000']) {
      expect(() => load(value)).toThrow(
        `--distributor: a link-local IPv6 address (fe80::/10, with or without a zone id) cannot be dialled by gRPC here; give a global or unique local address, or a host name, got "${value}"`,
      );
    }
    // A zone id on an address that is not link-local is refused too, and not called link-local.
    expect(() => load('[fd63:163::1%lo]:9000')).toThrow(
      '--distributor: an IPv6 address with a zone id cannot be dialled by gRPC here; give a global or unique local address, or a host name, got "[fd63:163::1%lo]:9000"',
    );
    expect(() =>
      loadSettings({ distributor: DISTRIBUTOR_ADDRESS_SETTING }, [], {
        DISTRIBUTOR_ADDRESS: '[fe80::1%2]:9000',
      }),
    ).toThrow(ConfigError);
  });
});

describe('TLS and token settings', () => {
  const load = (env: NodeJS.ProcessEnv) => tlsSettings(loadSettings(COMMON_SETTINGS, [], env), 'goods');

  it('are off by default, and TLS_DIR names the files of the component', () => {
    expect(load({})).toBeUndefined();
    const fromDir = '--tls-dir (TLS_DIR)';
    expect(load({ TLS_DIR: '/etc/shop' })).toEqual({
      caFile: '/etc/shop/ca.crt',
      certFile: '/etc/shop/goods.crt',
      keyFile: '/etc/shop/goods.key',
      sources: { caFile: fromDir, certFile: fromDir, keyFile: fromDir },
    });
    expect(load({ TLS_DIR: '/etc/shop', TLS_CERT: '/other.crt' })).toMatchObject({
      certFile: '/other.crt',
      sources: { caFile: fromDir, certFile: '--tls-cert (TLS_CERT)', keyFile: fromDir },
    });
    expect(load({ TLS_CERT: '/a.crt', TLS_KEY: '/a.key' })).toEqual({
      certFile: '/a.crt',
      keyFile: '/a.key',
      sources: { certFile: '--tls-cert (TLS_CERT)', keyFile: '--tls-key (TLS_KEY)' },
    });
    expect(load({ TLS_DIR: '/etc/shop', TLS_CA: '/ca.crt' })?.sources?.caFile).toBe('--tls-ca (TLS_CA)');
  });

  it('refuse a certificate without its key, or a CA alone', () => {
    expect(() => load({ TLS_CERT: '/a.crt' })).toThrow(/go together/);
    expect(() => load({ TLS_CA: '/ca.crt' })).toThrow(/needs this component's own certificate/);
  });

  it('refuse a token that is short or has spaces', () => {
    expect(() => loadSettings(COMMON_SETTINGS, [], { SHOP_REGISTRY_TOKEN: 'short' })).toThrow(
      /SHOP_REGISTRY_TOKEN: expected 16 to 512 printable characters/,
    );
    expect(() => loadSettings(COMMON_SETTINGS, [], { SHOP_REGISTRY_TOKEN: `${TOKEN} x` })).toThrow(
      ConfigError,
    );
  });

  it('take a log level in any case, as every word setting is read', () => {
    // LOG_LEVEL=INFO was refused while METRICS_PORT=OFF and GATEWAY_MAX_CONNECTIONS=AUTO were taken.
    expect(loadSettings(COMMON_SETTINGS, [], { LOG_LEVEL: ' INFO ' }).logLevel).toBe('info');
    expect(loadSettings(COMMON_SETTINGS, [], { LOG_LEVEL: 'Debug' }).logLevel).toBe('debug');
  });

  it('refuse a log level pino does not know', () => {
    expect(() => loadSettings(COMMON_SETTINGS, [], { LOG_LEVEL: 'verbose' })).toThrow(
      /LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent, got "verbose"/,
    );
  });
});

describe('loadDistributorConfig', () => {
  it('listens on 127.0.0.1:9000 by default', () => {
    expect(loadDistributorConfig([], { SHOP_REGISTRY_TOKEN: TOKEN })).toMatchObject({
      host: '127.0.0.1',
      port: 9000,
      registryToken: TOKEN,
      openRegistry: false,
      // auto: set when the port is bound, by how many addresses it is bound on.
      maxConnections: undefined,
    });
    expect(
      loadDistributorConfig(['--max-connections', '300'], { SHOP_REGISTRY_TOKEN: TOKEN }).maxConnections,
    ).toBe(300);
    expect(
      loadDistributorConfig([], { SHOP_REGISTRY_TOKEN: TOKEN, DISTRIBUTOR_MAX_CONNECTIONS: 'Auto' })
        .maxConnections,
    ).toBeUndefined();
    expect(() =>
      loadDistributorConfig([], { SHOP_REGISTRY_TOKEN: TOKEN, DISTRIBUTOR_MAX_CONNECTIONS: '0' }),
    ).toThrow(
      'DISTRIBUTOR_MAX_CONNECTIONS: expected a number of connections of at least 1, or auto, got "0"',
    );
    expect(loadDistributorConfig([], { SHOP_REGISTRY_TOKEN: TOKEN }).unreadAnswerTimeoutMs).toBe(30_000);
    expect(
      loadDistributorConfig(['--unread-answer-timeout-ms', '5000'], { SHOP_REGISTRY_TOKEN: TOKEN })
        .unreadAnswerTimeoutMs,
    ).toBe(5_000);
    expect(() =>
      loadDistributorConfig([], { SHOP_REGISTRY_TOKEN: TOKEN, DISTRIBUTOR_UNREAD_ANSWER_TIMEOUT_MS: '50' }),
    ).toThrow(/DISTRIBUTOR_UNREAD_ANSWER_TIMEOUT_MS/);
  });

  it('never runs an open registry by accident', () => {
    expect(() => loadDistributorConfig([], {})).toThrow(/the registry needs credentials/);
    expect(loadDistributorConfig(['--insecure-open-registry'], {}).openRegistry).toBe(true);
    expect(loadDistributorConfig([], { TLS_DIR: '/etc/shop' }).tls?.caFile).toBe('/etc/shop/ca.crt');
  });

  it('says so when the open-registry switch does nothing, credentials being set too (they win)', () => {
    const open = (env: NodeJS.ProcessEnv) =>
      ignoredOpenSwitch(loadDistributorConfig(['--insecure-open-registry'], env));
    expect(open({})).toBeUndefined();
    expect(ignoredOpenSwitch(loadDistributorConfig([], { SHOP_REGISTRY_TOKEN: TOKEN }))).toBeUndefined();
    expect(open({ SHOP_REGISTRY_TOKEN: TOKEN })).toBe(
      '--insecure-open-registry (SHOP_REGISTRY_OPEN) has no effect: registration still requires the token (SHOP_REGISTRY_TOKEN); unset those to run the registry open',
    );
    expect(open({ SHOP_REGISTRY_TOKEN: TOKEN, TLS_DIR: '/etc/shop' })).toMatch(
      /requires the token \(SHOP_REGISTRY_TOKEN\) and a client certificate \(mTLS\);/,
    );
  });

  it('refuses a bad command line or value with a ConfigError', () => {
    expect(() => loadDistributorConfig(['--bogus'], {})).toThrow(ConfigError);
    expect(() => loadDistributorConfig([], { DISTRIBUTOR_PORT: 'abc', SHOP_REGISTRY_TOKEN: TOKEN })).toThrow(
      'DISTRIBUTOR_PORT: expected a whole number of at least 0, got "abc"',
    );
  });
});
