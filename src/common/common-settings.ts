import { resolve } from 'node:path';
import { ConfigError, formatHostPort, parseHost, parseHostPort, parsePort } from './config.js';
import { interfaceHolding, interfaceNames } from './interface-holding.js';
import { isLinkLocalHost } from './loopback.js';
import { OBSERVABILITY_SETTINGS } from './observability-settings.js';
import { parsePemFilePath } from './pem-file-path.js';
import {
  nonEmpty,
  oneOf,
  optionalSetting,
  type Setting,
  type SettingsValues,
  setting,
  settingName,
} from './settings.js';
import type { TlsFileSources } from './tls-file-types.js';

/** pino's levels, and "silent". */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The environment variable of the shared registration token. */
export const REGISTRY_TOKEN_ENV = 'SHOP_REGISTRY_TOKEN';

/** The listening port of a component. */
export function portSetting(env: string, defaultPort: number): Setting<number> {
  return setting({
    flag: 'port',
    env,
    default: String(defaultPort),
    help: 'port to listen on; 0 picks a free one',
    parse: parsePort,
  });
}

/** The address a component listens on. */
export function hostSetting(env: string, defaultHost: string): Setting<string> {
  return setting({
    flag: 'host',
    env,
    default: defaultHost,
    help: 'address to listen on',
    parse: (value, source) => {
      const host = parseHost(value, source);
      // The system binds a link-local address only on the interface a zone id names: without one,
      // listen failed with a bare EINVAL (exit 1), and the launcher started it again for ever.
      if (isLinkLocalHost(host) && !host.includes('%')) {
        // The interface that holds it, by its name here: eth0 may be none of this machine's.
        const name = interfaceHolding(host);
        const example = name ? `${host}%${name}` : `${host}%<interface>: none of this machine's holds it`;
        throw new ConfigError(
          `${source}: a link-local address (fe80::/10) is bound on one interface, named by a zone id (${example}), got "${value}"`,
        );
      }
      // A zone id naming no interface is no zone for the system (scope 0): listen failed with the
      // same bare EINVAL (exit 1), started again for ever. A numeric one is no name either (libuv
      // reads the zone with if_nametoindex).
      if (isLinkLocalHost(host) && host.includes('%')) {
        const [address, zone] = host.split('%', 2) as [string, string];
        const names = interfaceNames();
        if (!names.includes(zone)) {
          const holder = interfaceHolding(address);
          const hint = holder
            ? `${address}%${holder} is held by ${holder}`
            : `interfaces here: ${names.join(', ')}`;
          throw new ConfigError(
            `${source}: the zone id "${zone}" names no interface: this machine has none of that name (${hint}), got "${value}"`,
          );
        }
      }
      return host;
    },
  });
}

/**
 * Settings every component has: its log level, its TLS files and the registration token. TLS is on
 * when a certificate is given, mutual when a CA is given too; `TLS_DIR` names a folder made by
 * `npm run certs` (ca.crt, <component>.crt, <component>.key) so that one environment serves every
 * component of `npm start`.
 */
export const COMMON_SETTINGS = {
  logLevel: setting({
    env: 'LOG_LEVEL',
    default: 'info',
    help: `log level: ${LOG_LEVELS.join(', ')}`,
    parse: oneOf(LOG_LEVELS),
  }),
  tlsDir: optionalSetting({
    flag: 'tls-dir',
    env: 'TLS_DIR',
    help: 'folder of ca.crt, <component>.crt and <component>.key (from npm run certs): mTLS for this component',
    parse: nonEmpty,
  }),
  tlsCa: optionalSetting({
    flag: 'tls-ca',
    env: 'TLS_CA',
    defaultText: 'TLS_DIR/ca.crt',
    help: 'CA certificate (PEM): peers must present certificates it issued (mTLS). Re-read when the file changes',
    parse: parsePemFilePath,
  }),
  tlsCert: optionalSetting({
    flag: 'tls-cert',
    env: 'TLS_CERT',
    defaultText: 'TLS_DIR/<component>.crt',
    help: "this component's certificate (PEM); with it, TLS is on. Re-read when the file changes",
    parse: parsePemFilePath,
  }),
  tlsKey: optionalSetting({
    flag: 'tls-key',
    env: 'TLS_KEY',
    defaultText: 'TLS_DIR/<component>.key',
    help: "this component's private key (PEM), with --tls-cert. Re-read when the file changes",
    parse: parsePemFilePath,
  }),
  registryToken: optionalSetting({
    env: REGISTRY_TOKEN_ENV,
    defaultText: 'none (npm start makes one per run)',
    help: 'shared secret for Register, Watch, List and GetDescriptorSet: the components prove it on every call and the distributor proves it back, so it is never sent (tools may send it as "authorization: Bearer …"); 16 to 512 printable characters without spaces (an environment variable only, so it stays out of ps)',
    parse: parseToken,
  }),
  ...OBSERVABILITY_SETTINGS,
} as const;

/** The distributor's address, for components that register with it. */
export const DISTRIBUTOR_ADDRESS_SETTING = setting({
  flag: 'distributor',
  env: 'DISTRIBUTOR_ADDRESS',
  default: '127.0.0.1:9000',
  help: 'the distributor to register with, host:port ([IPv6]:port)',
  parse: (value, source) => {
    const address = parseHostPort(value, source);
    // A link-local address is dialled on an interface its zone id names (fe80::1%eth0), and without
    // one the system refuses the connect (EINVAL); grpc-js hands the target to http2.connect as a
    // URL, which takes no zone id: the connection is made, then fails with "TypeError: Invalid URL".
    // Either way the component stayed unregistered, retrying for ever.
    if (address.host.includes('%') || isLinkLocalHost(address.host)) {
      const what = isLinkLocalHost(address.host)
        ? 'a link-local IPv6 address (fe80::/10, with or without a zone id)'
        : 'an IPv6 address with a zone id';
      throw new ConfigError(
        `${source}: ${what} cannot be dialled by gRPC here; give a global or unique local address, or a host name, got "${value}"`,
      );
    }
    return formatHostPort(address);
  },
});

const TOKEN = /^[\x21-\x7e]{16,512}$/;

function parseToken(value: string, source: string): string {
  if (!TOKEN.test(value)) {
    throw new ConfigError(`${source}: expected 16 to 512 printable characters without spaces`);
  }
  return value;
}

/** The files of a component's TLS identity; undefined when it runs plaintext. */
export interface TlsSettings {
  readonly caFile?: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** The setting each file came from, for messages about it. */
  readonly sources?: TlsFileSources;
}

/**
 * A component's TLS files from its settings: explicit files win over TLS_DIR's. A certificate
 * without its key (or the reverse), or a CA alone, is a ConfigError.
 */
export function tlsSettings(
  values: SettingsValues<typeof COMMON_SETTINGS>,
  component: string,
): TlsSettings | undefined {
  const dir = values.tlsDir;
  const caFile = values.tlsCa ?? (dir && resolve(dir, 'ca.crt'));
  const certFile = values.tlsCert ?? (dir && resolve(dir, `${component}.crt`));
  const keyFile = values.tlsKey ?? (dir && resolve(dir, `${component}.key`));
  if (!certFile && !keyFile) {
    if (caFile)
      throw new ConfigError(
        "TLS_CA / --tls-ca: a CA needs this component's own certificate and key too (TLS_CERT, TLS_KEY)",
      );
    return undefined;
  }
  if (!certFile || !keyFile) {
    throw new ConfigError('TLS_CERT / --tls-cert and TLS_KEY / --tls-key go together: give both');
  }
  const sourceOf = (explicit: string | undefined, own: Setting<unknown>): string =>
    settingName(explicit === undefined ? COMMON_SETTINGS.tlsDir : own);
  const sources: TlsFileSources = {
    ...(caFile ? { caFile: sourceOf(values.tlsCa, COMMON_SETTINGS.tlsCa) } : {}),
    certFile: sourceOf(values.tlsCert, COMMON_SETTINGS.tlsCert),
    keyFile: sourceOf(values.tlsKey, COMMON_SETTINGS.tlsKey),
  };
  return Object.freeze({ ...(caFile ? { caFile } : {}), certFile, keyFile, sources: Object.freeze(sources) });
}
