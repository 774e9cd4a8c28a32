import { ConfigError, isHostNameOrAddress } from '../../common/config.js';

/** Where and as whom a service connects to MySQL: the parts of a `mysql://` URL. */
export interface MysqlConnectionOptions {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** mysql2's `ssl` option: a profile name or an object (JSON in the URL's `ssl` parameter). */
  readonly ssl?: string | Record<string, unknown>;
}

/**
 * Parses `mysql://user:password@host:port/database[?ssl=...]`.
 *
 * The URL is taken apart here rather than handed to mysql2 as `uri` because mysql2 turns every query
 * parameter into a driver option and lets it override ours: `?multipleStatements=true` would switch
 * statement stacking back on. Only `ssl` is accepted; anything else is a configuration error.
 */
export function parseMysqlUrl(value: string, source: string): MysqlConnectionOptions {
  const example = 'mysql://user:password@127.0.0.1:3306/shop';
  // A password holding "#", "?" or "/" as typed ends the URL's host part there: the URL then does
  // not parse, or names another host (mysql://root:123#4@db/shop is host "root", port 123).
  const encodeHint =
    ' (a user or password holding # ? / @ : or % must be percent-encoded: # as %23, ? as %3F)';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${source}: expected a URL such as ${example}${encodeHint}`);
  }
  if (url.hash !== '') throw new ConfigError(`${source}: the URL has a "#" part${encodeHint}`);
  if (url.protocol !== 'mysql:') {
    throw new ConfigError(`${source}: expected a mysql:// URL such as ${example}, got "${url.protocol}//"`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new ConfigError(`${source}: the URL names no host, e.g. ${example}`);
  // A mysql:// host is kept %-encoded (`%2Frun%2Fmysqld.sock`, a socket path as some drivers read
  // it): no host name holds "%", and it was dialled as one, failing every call without a word at start.
  if (host.includes('%')) {
    throw new ConfigError(
      `${source}: the URL's host "${host}" is not a host name (a socket path is not supported: give host:port, e.g. ${example})`,
    );
  }
  // A mysql:// host is not checked by URL (no scheme it knows): "db1,db2" (a failover list, as
  // other drivers read it) or "999.1.1.1" was looked up as one name, database-down for ever.
  if (!isHostNameOrAddress(host)) {
    throw new ConfigError(
      `${source}: the URL's host "${host}" is not a host name or an IP address (one host only), e.g. ${example}`,
    );
  }
  const database = decoded(url.pathname.slice(1), 'database', source);
  if (!database || database.includes('/')) {
    // An "@" after the host part: a password with "?" or "/" as typed, cut there
    // (mysql://root:123?4@db/shop is host "root", port 123, and no database).
    const cut = `${url.pathname}${url.search}`.includes('@') ? encodeHint : '';
    throw new ConfigError(`${source}: the URL must name one database, e.g. ${example}${cut}`);
  }
  // mysql2 reads port 0 as its default, 3306: the logs would name one server while it dialled another.
  if (url.port === '0') throw new ConfigError(`${source}: the URL's port must not be 0, e.g. ${example}`);
  let ssl: MysqlConnectionOptions['ssl'];
  for (const [key, raw] of url.searchParams) {
    if (key !== 'ssl') {
      throw new ConfigError(`${source}: unsupported URL parameter "${key}" (only "ssl" is accepted)`);
    }
    ssl = parseSsl(raw, source);
  }
  return {
    host,
    port: url.port ? Number(url.port) : 3306,
    user: decoded(url.username, 'user', source),
    password: decoded(url.password, 'password', source),
    database,
    ...(ssl === undefined ? {} : { ssl }),
  };
}

/** A part of the URL with its %-escapes decoded; a malformed escape is a configuration error. */
function decoded(text: string, part: string, source: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    // The part itself is not repeated: it may be the password.
    throw new ConfigError(`${source}: the URL's ${part} holds a malformed %-escape (write "%" as %25)`);
  }
}

/**
 * The SSL profiles mysql2 knows by name (its lib/constants/ssl_profiles.js): any other name made
 * the driver throw when the pool was made, after the start had been taken as good.
 */
const SSL_PROFILES = ['Amazon RDS'];

function parseSsl(raw: string, source: string): string | Record<string, unknown> {
  if (!raw.startsWith('{')) {
    if (SSL_PROFILES.includes(raw)) return raw;
    throw new ConfigError(
      `${source}: unknown "ssl" profile "${raw}" (mysql2 knows ${SSL_PROFILES.map((name) => `"${name}"`).join(', ')}; or give a JSON object)`,
    );
  }
  try {
    const parsed: unknown = JSON.parse(raw);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      return parsed as Record<string, unknown>;
  } catch {
    // Reported below with the same message as any other malformed value.
  }
  throw new ConfigError(`${source}: the "ssl" parameter must be a profile name or a JSON object`);
}

/** A URL fit for logs: the password is replaced. */
export function describeMysql(options: MysqlConnectionOptions): string {
  const user = options.user ? `${options.user}${options.password ? ':***' : ''}@` : '';
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return `mysql://${user}${host}:${options.port}/${options.database}`;
}
