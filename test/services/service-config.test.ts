import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/common/config.js';
import { validateHost } from '../../src/distributor/node-validation.js';
import { describeMysql, parseMysqlUrl } from '../../src/services/common/mysql-url.js';
import { loadServiceConfig, serviceUsage } from '../../src/services/common/service-config.js';
import { goodsService } from '../../src/services/goods/goods-service.js';
import { membersService } from '../../src/services/members/members-service.js';
import { purchasesService } from '../../src/services/purchases/purchases-service.js';

const loadGoodsConfig = (argv: string[], env: NodeJS.ProcessEnv) =>
  loadServiceConfig(goodsService, argv, env);
const loadMembersConfig = (argv: string[], env: NodeJS.ProcessEnv) =>
  loadServiceConfig(membersService, argv, env);
const loadPurchasesConfig = (argv: string[], env: NodeJS.ProcessEnv) =>
  loadServiceConfig(purchasesService, argv, env);

describe('service configuration', () => {
  it('defaults: the book ports, loopback only, the local distributor, SQLite in ./data, no TLS', () => {
    const defaults = {
      host: '127.0.0.1',
      distributor: '127.0.0.1:9000',
      advertiseHost: '',
      storage: { kind: 'sqlite', dataDir: './data' },
      logLevel: 'info',
      maxCallsInFlight: 128,
      maxConnections: undefined,
      unreadAnswerTimeoutMs: 30_000,
    };
    // Metrics and request ids on, /metrics on the service's port + 100.
    const observability = (metricsPort: number) => ({
      metrics: true,
      requestIds: true,
      metricsPort,
      metricsPortGiven: false,
      metricsAllowedHosts: [],
    });
    expect(loadGoodsConfig([], {})).toEqual({ ...defaults, port: 9010, observability: observability(9110) });
    expect(loadMembersConfig([], {})).toEqual({
      ...defaults,
      port: 9020,
      observability: observability(9120),
    });
    expect(loadPurchasesConfig([], {})).toEqual({
      ...defaults,
      port: 9030,
      observability: observability(9130),
    });
  });

  it('reads the environment', () => {
    const config = loadPurchasesConfig([], {
      PURCHASES_PORT: '0',
      SERVICE_HOST: '127.0.0.1',
      DISTRIBUTOR_ADDRESS: 'registry.local:9100',
      ADVERTISE_HOST: 'purchases-1.internal',
      MYSQL_URL: 'mysql://shop:p%40ss@db.local:3307/shop',
      LOG_LEVEL: 'warn',
      SERVICE_MAX_CONNECTIONS: '500',
      SERVICE_UNREAD_ANSWER_TIMEOUT_MS: '5000',
    });
    expect(config).toEqual({
      host: '127.0.0.1',
      port: 0,
      distributor: 'registry.local:9100',
      advertiseHost: 'purchases-1.internal',
      storage: {
        kind: 'mysql',
        connection: { host: 'db.local', port: 3307, user: 'shop', password: 'p@ss', database: 'shop' },
      },
      logLevel: 'warn',
      observability: {
        metrics: true,
        requestIds: true,
        metricsPort: 0,
        metricsPortGiven: false,
        metricsAllowedHosts: [],
      },
      maxCallsInFlight: 128,
      maxConnections: 500,
      unreadAnswerTimeoutMs: 5_000,
    });
  });

  it('flags win over the environment', () => {
    const config = loadGoodsConfig(
      ['--port', '0', '--host', '::', '--distributor', '[::1]:9000', '--advertise-host', '10.0.0.5'],
      { GOODS_PORT: '7000', SERVICE_HOST: '127.0.0.1', DISTRIBUTOR_ADDRESS: 'x:1', DATA_DIR: '/var/shop' },
    );
    expect(config).toMatchObject({
      port: 0,
      host: '::',
      distributor: '[::1]:9000',
      advertiseHost: '10.0.0.5',
      storage: { kind: 'sqlite', dataDir: '/var/shop' },
    });
  });

  it.each(['0.0.0.0', '::', '[::1]', 'localhost', 'goods.internal', 'shop_goods', '10.0.0.2'])(
    '--host %s is a host to listen on',
    (host) => {
      expect(loadGoodsConfig(['--host', host], {}).host).toBe(host.replace(/^\[(.*)\]$/, '$1'));
    },
  );

  it('an advertised host it accepts is one the distributor accepts; a zone id is refused at start', () => {
    for (const host of [
      '10.0.0.2',
      '::1',
      '[fd63:163::2]',
      'goods.internal',
      'shop_goods',
      'Goods.Example.',
      'localhost',
    ]) {
      const advertised = loadGoodsConfig(['--advertise-host', host], {}).advertiseHost;
      expect(() => validateHost(advertised), host).not.toThrow();
    }
    expect(() => loadGoodsConfig(['--advertise-host', 'fe80::1%eth0'], {})).toThrow(
      /--advertise-host: a zone id/,
    );
  });

  it.each(['fe80::1', '[fe80::5490:5bff:fe73:fe59]', 'FEBF::1'])(
    'refuses the link-local %s as the advertised host: no gateway can connect to it without a zone id',
    (host) => {
      expect(() => loadGoodsConfig(['--advertise-host', host], {})).toThrow(
        /^--advertise-host: a link-local address \(fe80::\/10\) cannot be dialled/,
      );
    },
  );

  it.each(['0.0.0.0', '::', '[::]', '0:0:0:0:0:0:0:0'])(
    'refuses the any-address %s as the advertised host: each node dialling it reaches itself',
    (host) => {
      expect(() => loadGoodsConfig(['--advertise-host', host], {})).toThrow(ConfigError);
      expect(() => loadGoodsConfig([], { ADVERTISE_HOST: host })).toThrow(
        /^ADVERTISE_HOST: .* is the any-address, which others dial as themselves/,
      );
    },
  );

  it('bounds the calls in flight by --max-calls-in-flight or MAX_CALLS_IN_FLIGHT, at least 1', () => {
    expect(loadGoodsConfig(['--max-calls-in-flight', '16'], {}).maxCallsInFlight).toBe(16);
    expect(loadGoodsConfig([], { MAX_CALLS_IN_FLIGHT: '512' }).maxCallsInFlight).toBe(512);
    expect(() => loadGoodsConfig([], { MAX_CALLS_IN_FLIGHT: '0' })).toThrow(
      /MAX_CALLS_IN_FLIGHT: expected a whole number of at least 1/,
    );
  });

  it('a service reads only its own port variable', () => {
    expect(loadGoodsConfig([], { MEMBERS_PORT: '1' }).port).toBe(9010);
  });

  it.each([
    [['--port', '70000'], {}, /--port: expected a port from 0 to 65535/],
    [['--port', 'abc'], {}, /--port: expected a whole number/],
    [[], { GOODS_PORT: '-1' }, /GOODS_PORT: expected a whole number/],
    [['--distributor', 'nowhere'], {}, /--distributor: expected host:port/],
    [['--distributor', '127.0.0.1:0'], {}, /--distributor: the port must not be 0/],
    [['--advertise-host', 'bad host!'], {}, /--advertise-host: expected a host name or an IP address/],
    [['--advertise-host', '10.0.0.256'], {}, /--advertise-host: expected a host name or an IP address/],
    [['--host', 'bad host!'], {}, /--host: expected a host name or an IP address/],
    [['--host', '999.1.1.1'], {}, /--host: expected a host name or an IP address/],
    [[], { SERVICE_HOST: 'a..b' }, /SERVICE_HOST: expected a host name or an IP address/],
    [['--colour'], {}, /Unknown option '--colour'/],
    [['--metric-port', '1'], {}, /^Unknown option '--metric-port': did you mean --metrics-port\?$/],
    [['--distrib', 'h:1'], {}, /^Unknown option '--distrib': did you mean --distributor\?$/],
    [['stray'], {}, /Unexpected argument 'stray'/],
    [[], { LOG_LEVEL: 'loud' }, /LOG_LEVEL: expected one of fatal, error/],
    [[], { MYSQL_URL: 'postgres://u@h/db' }, /MYSQL_URL: expected a mysql:\/\/ URL/],
    [[], { MYSQL_URL: 'mysql://u@h:3306' }, /MYSQL_URL: the URL must name one database/],
    [
      [],
      { MYSQL_URL: 'mysql://u@h/db?multipleStatements=true' },
      /unsupported URL parameter "multipleStatements"/,
    ],
    [[], { MYSQL_URL: 'not a url' }, /MYSQL_URL: expected a URL/],
    [[], { MYSQL_URL: 'mysql://root:%zz@h/db' }, /MYSQL_URL: the URL's password holds a malformed %-escape/],
    [[], { MYSQL_URL: 'mysql://%e9@h/db' }, /MYSQL_URL: the URL's user holds a malformed %-escape/],
    [[], { MYSQL_URL: 'mysql://u@h/%zz' }, /MYSQL_URL: the URL's database holds a malformed %-escape/],
    [[], { MYSQL_URL: 'mysql://u@h/db?ssl=bogus' }, /MYSQL_URL: unknown "ssl" profile "bogus"/],
    // mysql2 takes port 0 for its default, 3306: the log would name one server and it would dial another.
    [[], { MYSQL_URL: 'mysql://u@h:0/db' }, /MYSQL_URL: the URL's port must not be 0/],
    // A socket path written as the host: it was dialled as a host name, NOT_SERVING for ever.
    [
      [],
      { MYSQL_URL: 'mysql://u@%2Frun%2Fmysqld%2Fmysqld.sock/db' },
      /MYSQL_URL: the URL's host "%2Frun%2Fmysqld%2Fmysqld.sock" is not a host name \(a socket path is not supported/,
    ],
    // Not a host: it was looked up as one name, and the service stayed database-down for ever.
    [
      [],
      { MYSQL_URL: 'mysql://u@db1,db2:3306/db' },
      /MYSQL_URL: the URL's host "db1,db2" is not a host name or an IP address \(one host only\)/,
    ],
    [[], { MYSQL_URL: 'mysql://u@999.1.1.1/db' }, /MYSQL_URL: the URL's host "999.1.1.1" is not a host name/],
  ])('%j with %j is a ConfigError saying %s', (argv, env, message) => {
    expect(() => loadGoodsConfig(argv, env)).toThrow(ConfigError);
    expect(() => loadGoodsConfig(argv, env)).toThrow(message);
  });

  it('the usage names every flag and variable', () => {
    for (const word of [
      '--port',
      'MEMBERS_PORT',
      '--host',
      'SERVICE_HOST',
      '--distributor',
      'DISTRIBUTOR_ADDRESS',
      '--advertise-host',
      'ADVERTISE_HOST',
      'MYSQL_URL',
      'DATA_DIR',
      '<service>.sqlite',
      'TLS_DIR',
      'SHOP_REGISTRY_TOKEN',
      'LOG_LEVEL',
      '9020',
    ]) {
      expect(serviceUsage(membersService)).toContain(word);
    }
  });
});

describe('MySQL URL', () => {
  it('accepts an ssl parameter, as a profile name or JSON', () => {
    expect(parseMysqlUrl('mysql://u@h/db?ssl=Amazon%20RDS', 'x').ssl).toBe('Amazon RDS');
    expect(parseMysqlUrl('mysql://u@h/db?ssl={"rejectUnauthorized":true}', 'x').ssl).toEqual({
      rejectUnauthorized: true,
    });
  });

  it('says to percent-encode a password that holds #, ? or / as typed, and takes it encoded', () => {
    for (const url of [
      'mysql://shop:pa#ss@db.local:3306/shop',
      'mysql://shop:pa?ss@db.local:3306/shop',
      // Parses, as host "root" and port 123: the "#" part gives it away.
      'mysql://root:123#4@db.local:3306/shop',
      // Parse too, as host "root" and port 123, with no database: the "@" after it gives them away.
      'mysql://root:123?4@db.local:3306/shop',
      'mysql://root:123/4@db.local:3306/shop',
    ]) {
      expect(() => parseMysqlUrl(url, 'MYSQL_URL')).toThrow(/percent-encoded: # as %23/);
    }
    expect(parseMysqlUrl('mysql://root:123%234@db.local:3306/shop', 'x')).toMatchObject({
      host: 'db.local',
      password: '123#4',
    });
  });

  it('is described for logs without its password', () => {
    expect(describeMysql(parseMysqlUrl('mysql://shop:secret@db.local:3307/shop', 'x'))).toBe(
      'mysql://shop:***@db.local:3307/shop',
    );
  });
});
