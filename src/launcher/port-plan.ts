import { isIP } from 'node:net';
import { ConfigError } from '../common/config.js';
import { hostNameKey, isLoopbackHost, isUnspecifiedHost, sameIpAddress } from '../common/loopback.js';
import { type MetricsPort, observabilityConfig } from '../common/observability-settings.js';
import { loadSettings, type SettingsTable } from '../common/settings.js';
import type { ShopComponent } from './components.js';

/** A port a component will listen on, as its settings read the environment. */
export interface PlannedPort {
  readonly host: string;
  readonly port: number;
  readonly what: string;
  /** The variable that sets it. */
  readonly env: string | undefined;
  /** For a metrics port derived from the component's own (port + 100): the variable that sets it. */
  readonly derivedBy?: string;
}

/**
 * Plans the ports of one `npm start` as each component's settings read the environment: their own
 * ports and the metrics ports they take (given, or derived as port + 100). Two ports given alike
 * are refused (a ConfigError): the second to bind failed with exit 1 and was started again for
 * ever. A derived metrics port on a port given to another (GOODS_PORT=9100, the distributor's
 * 9000 + 100) goes to any free port instead, as a derived port that is taken does (see the
 * README): the variables to set for that are returned, with what to say. A component whose own
 * settings are wrong is left to say so itself (exit 2). `required` lists the ports a component
 * cannot run without (its own, and a metrics port given), which the launcher finds free before it
 * starts anything (held-ports.ts).
 */
export function planPorts(
  components: readonly ShopComponent[],
  env: NodeJS.ProcessEnv,
): { env: NodeJS.ProcessEnv; notes: string[]; required: PlannedPort[] } {
  const planned = components
    .flatMap((component) => plannedPorts(component, env))
    .filter((entry) => entry.port !== 0);
  const given = planned.filter((entry) => entry.derivedBy === undefined);
  given.forEach((entry, index) => {
    const other = given.slice(0, index).find((earlier) => clash(earlier, entry));
    if (other) {
      throw new ConfigError(
        `port ${entry.port} would be both ${other.what} and ${entry.what}: give one of them another port`,
      );
    }
  });
  const moved: NodeJS.ProcessEnv = {};
  const notes: string[] = [];
  for (const entry of planned) {
    if (entry.derivedBy === undefined) continue;
    const other = planned.find((candidate) => candidate !== entry && clash(candidate, entry));
    if (!other) continue;
    moved[entry.derivedBy] = '0';
    notes.push(
      `${entry.what} would be ${other.what}, ${entry.port}: it takes any free port instead (${entry.derivedBy} sets one)`,
    );
  }
  return { env: moved, notes, required: given };
}

function clash(one: PlannedPort, other: PlannedPort): boolean {
  return one.port === other.port && sameListeningAddress(one.host, other.host);
}

/**
 * Whether two hosts to listen on take a port on one address. The any-address takes it on every
 * interface; otherwise the hosts are compared as addresses, not as text, so that one address in two
 * spellings (localhost and 127.0.0.1, ::1 and 0:0:0:0:0:0:0:1) clashes: compared as text, the second
 * component to bind failed (exit 1) and was started again for ever.
 */
function sameListeningAddress(one: string, other: string): boolean {
  if (isUnspecifiedHost(one) || isUnspecifiedHost(other)) return true;
  return addressesOf(one).some((address) => addressesOf(other).some((each) => sameIpAddress(address, each)));
}

/** The addresses a host binds: an IP address itself; localhost (RFC 6761) loopback's; another name itself. */
function addressesOf(host: string): string[] {
  if (isIP(host) !== 0) return [host];
  if (isLoopbackHost(host)) return ['127.0.0.1', '::1'];
  return [hostNameKey(host)];
}

function plannedPorts(component: ShopComponent, env: NodeJS.ProcessEnv): PlannedPort[] {
  const { port, host, metrics, metricsPort } = component.settings;
  if (!port || !host) return [];
  const table: SettingsTable = { port, host, ...(metrics && metricsPort ? { metrics, metricsPort } : {}) };
  try {
    // Flags npm kept as its own settings: the launcher looked for them first, among every component's.
    const values = loadSettings(table, [], env, 'checked') as {
      port: number;
      host: string;
      metrics?: 'on' | 'off';
      metricsPort?: MetricsPort;
    };
    const ports: PlannedPort[] = [
      { host: values.host, port: values.port, what: `${component.name}'s port`, env: port.env },
    ];
    if (values.metrics === undefined) return ports;
    const observability = observabilityConfig(
      { metrics: values.metrics, requestIds: 'on', metricsPort: values.metricsPort },
      values.port,
    );
    if (observability.metricsPort === undefined) return ports;
    ports.push({
      host: values.host,
      port: observability.metricsPort,
      what: `${component.name}'s metrics port`,
      env: metricsPort!.env,
      ...(observability.metricsPortGiven ? {} : { derivedBy: metricsPort!.env }),
    });
    return ports;
  } catch {
    return [];
  }
}
