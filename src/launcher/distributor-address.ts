import { ConfigError, formatHostPort } from '../common/config.js';
import { isLinkLocalHost, loopbackIfUnspecified } from '../common/loopback.js';
import { loadSettings } from '../common/settings.js';
import { DISTRIBUTOR_SETTINGS } from '../distributor/config.js';

/**
 * The DISTRIBUTOR_ADDRESS the launcher gives the other components when the environment moves the
 * distributor (DISTRIBUTOR_PORT or DISTRIBUTOR_HOST) without saying where to reach it: where it
 * will listen, or this machine's loopback when it listens on every interface. Undefined when there
 * is nothing to derive (the default, or DISTRIBUTOR_ADDRESS given), or when the distributor's own
 * settings are wrong, which it reports itself (exit 2). Before, the others kept dialling the
 * default 127.0.0.1:9000 and the shop never routed, or registered with another shop's distributor.
 */
export function derivedDistributorAddress(env: NodeJS.ProcessEnv): string | undefined {
  if (env.DISTRIBUTOR_ADDRESS || (!env.DISTRIBUTOR_PORT && !env.DISTRIBUTOR_HOST)) return undefined;
  let where: { host: string; port: number };
  try {
    // Flags npm kept as its own settings: the launcher looked for them first (run-launcher.ts).
    where = loadSettings(
      { port: DISTRIBUTOR_SETTINGS.port, host: DISTRIBUTOR_SETTINGS.host },
      [],
      env,
      'checked',
    );
  } catch {
    return undefined;
  }
  if (where.port === 0) {
    throw new ConfigError(
      'DISTRIBUTOR_PORT=0: the other components could not know where to reach the distributor; give it a port, or set DISTRIBUTOR_ADDRESS',
    );
  }
  // The distributor binds it with its zone id; the others could not dial it (gRPC here takes no
  // zone id), and each would say so of a DISTRIBUTOR_ADDRESS the user never set.
  if (isLinkLocalHost(where.host)) {
    throw new ConfigError(
      `DISTRIBUTOR_HOST=${where.host}: the other components cannot dial a link-local address (gRPC here takes no zone id); let the distributor listen on another address, or :: (every interface), or set DISTRIBUTOR_ADDRESS`,
    );
  }
  return formatHostPort({ host: loopbackIfUnspecified(where.host), port: where.port });
}
