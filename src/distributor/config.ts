import { parseFlags, parsePort, pick } from '../common/config.js';

/** The distributor's validated configuration. */
export interface DistributorConfig {
  readonly host: string;
  readonly port: number;
  readonly logLevel: string;
}

export const DISTRIBUTOR_USAGE = `usage: distributor [--port N] [--host ADDRESS]
  --port  DISTRIBUTOR_PORT  port to listen on; 0 picks a free one (default 9000)
  --host  DISTRIBUTOR_HOST  address to listen on (default 0.0.0.0)
          LOG_LEVEL         fatal, error, warn, info, debug or silent (default info)`;

/** Reads flags, then environment variables, then defaults; throws ConfigError on a bad value. */
export function loadDistributorConfig(argv: string[], env: NodeJS.ProcessEnv): DistributorConfig {
  const values = parseFlags(argv, ['port', 'host']);
  const port = parsePort(...pick(values.port, 'port', env, 'DISTRIBUTOR_PORT', '9000'));
  const [host] = pick(values.host, 'host', env, 'DISTRIBUTOR_HOST', '0.0.0.0');
  return Object.freeze({ host, port, logLevel: env.LOG_LEVEL || 'info' });
}
