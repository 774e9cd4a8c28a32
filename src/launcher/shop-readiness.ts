import { type HttpEndpoint, httpEndpointUrl, parseHttpEndpoint } from '../common/http-endpoint.js';
import { loopbackIfUnspecified } from '../common/loopback.js';
import { fetchGatewayStatus, type GatewayStatusView } from './gateway-status-probe.js';
import type { LauncherLineLevel } from './log-line-formatter.js';

/** How long the shop may take to be ready, from the start or a restart, before the launcher warns. */
export const READY_WARNING_MS = 30_000;
const POLL_MS = 250;
/** After the warning: whoever is missing may be missing for long; the launcher asks less often. */
const SLOW_POLL_MS = 1_000;
const ASK_TIMEOUT_MS = 2_000;
/**
 * Every service registered and routed, one of them with no connection from the gateway yet, none
 * failed: on loopback the gateway connects within milliseconds of the registration, so it asks again
 * this soon rather than a whole POLL_MS later (probing saw such a poll in 1 or 2 of 8 starts); at most
 * QUICK_ASKS times per wait, so that an address that hangs is asked about at the usual pace.
 */
const QUICK_POLL_MS = 20;
const QUICK_ASKS = 25;
const NOT_LISTENING = 'the gateway has not said that it listens yet (see its lines above)';

/** Options of {@link ShopReadiness}. */
export interface ShopReadinessOptions {
  /** The services the launcher started: each must be registered and routed. */
  readonly services: readonly string[];
  readonly say: (text: string, level: LauncherLineLevel) => void;
  readonly warnAfterMs?: number;
  readonly fetchStatus?: (endpoint: HttpEndpoint, timeoutMs: number) => Promise<GatewayStatusView>;
}

/**
 * Tells the user when the shop `npm start` runs answers: once the gateway is registered, routes
 * to every service the launcher started and holds a connection to an instance of each (what its
 * GET /status.json lists, the gateway's own view, so that a request made on that line is served),
 * one line; a warning naming who is missing, or which service is registered where the gateway does
 * not reach it and at which address, if that takes longer than READY_WARNING_MS; and one line
 * again once a component the launcher restarted is back (a service counts as back only with a registration made after it exited). Nothing else:
 * a shop that runs is quiet.
 */
export class ShopReadiness {
  readonly #options: ShopReadinessOptions;
  readonly #warnAfterMs: number;
  readonly #fetch: (endpoint: HttpEndpoint, timeoutMs: number) => Promise<GatewayStatusView>;
  /** Where to ask the gateway, once it said it listens. */
  #endpoint: HttpEndpoint | undefined;
  /** Why there is no {@link #endpoint} to ask at. */
  #noEndpoint = NOT_LISTENING;
  /** Per service, the earliest registration time (ms since the epoch) that counts: after its restart. */
  readonly #registeredAfter = new Map<string, number>();
  /** Since when (performance.now()) the launcher waits; undefined while the shop is ready. */
  #waitingSince: number | undefined;
  /** The components restarted since the shop was last ready; none before it first was. */
  #restarted: string[] = [];
  #warned = false;
  #lastProblem = NOT_LISTENING;
  #pollTimer: NodeJS.Timeout | undefined;
  #warnTimer: NodeJS.Timeout | undefined;
  #asking = false;
  #stopped = false;
  /** The QUICK_POLL_MS asks left in this wait. */
  #quickAsks = QUICK_ASKS;

  constructor(options: ShopReadinessOptions) {
    this.#options = options;
    this.#warnAfterMs = options.warnAfterMs ?? READY_WARNING_MS;
    this.#fetch = options.fetchStatus ?? fetchGatewayStatus;
  }

  /** Begins the first wait: call it as the components are started. */
  start(): void {
    if (this.#stopped || this.#waitingSince !== undefined) return;
    this.#wait();
  }

  /**
   * The gateway listens at `url` (its real port, as httpEndpointUrl writes it): where to ask from
   * now on. One the launcher cannot read leaves it waiting, and saying why if that lasts.
   */
  gatewayListening(url: string): void {
    if (url === '') return;
    const endpoint = parseHttpEndpoint(url);
    if (endpoint === undefined) {
      this.#noEndpoint = `the gateway says it listens at "${url}", which the launcher cannot read as a URL`;
      return;
    }
    this.#endpoint = dialable(endpoint);
    if (this.#waitingSince !== undefined && !this.#asking) this.#schedule(0);
  }

  /** `component` exited and the launcher starts it again: the shop is not ready until it is back. */
  restarted(component: string): void {
    if (this.#stopped) return;
    if (component === 'gateway') {
      this.#endpoint = undefined;
      this.#noEndpoint = NOT_LISTENING;
    }
    const at = Date.now();
    // Every service registers again with a distributor that restarted.
    const services =
      component === 'distributor'
        ? this.#options.services
        : this.#options.services.filter((name) => name === component);
    for (const name of services) this.#registeredAfter.set(name, at);
    if (!this.#restarted.includes(component)) this.#restarted.push(component);
    if (this.#waitingSince === undefined) this.#wait();
  }

  /** Stops asking and clears every timer. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#pollTimer);
    clearTimeout(this.#warnTimer);
  }

  #wait(): void {
    this.#waitingSince = performance.now();
    this.#warned = false;
    this.#quickAsks = QUICK_ASKS;
    clearTimeout(this.#warnTimer);
    this.#warnTimer = setTimeout(() => this.#warn(), this.#warnAfterMs);
    this.#schedule(0);
  }

  #schedule(delayMs: number): void {
    clearTimeout(this.#pollTimer);
    this.#pollTimer = setTimeout(() => void this.#ask(), delayMs);
  }

  async #ask(): Promise<void> {
    const endpoint = this.#endpoint;
    if (this.#stopped || this.#waitingSince === undefined) return;
    if (endpoint === undefined) {
      this.#lastProblem = this.#noEndpoint;
      this.#schedule(this.#pollMs());
      return;
    }
    this.#asking = true;
    let quick = false;
    try {
      const { missing, draining, unreached } = assess(
        await this.#fetch(endpoint, ASK_TIMEOUT_MS),
        this.#options.services,
        this.#registeredAfter,
      );
      if (missing.length === 0 && draining.length === 0 && unreached.length === 0) {
        if (!this.#stopped && this.#waitingSince !== undefined && this.#endpoint === endpoint) {
          this.#ready(httpEndpointUrl(endpoint));
        }
        return;
      }
      if (
        missing.length === 0 &&
        draining.length === 0 &&
        unreached.every((each) => each.unreachableSeconds === undefined) &&
        this.#quickAsks > 0
      ) {
        this.#quickAsks--;
        quick = true;
      }
      this.#lastProblem = [
        ...(missing.length === 0
          ? []
          : [
              `${listed(missing)} ${missing.length === 1 ? 'has' : 'have'} not registered with the distributor, or the gateway does not route to ${missing.length === 1 ? 'it' : 'them'} yet (see ${missing.length === 1 ? 'its' : 'their'} lines above)`,
            ]),
        ...(draining.length === 0 ? [] : [drainingProblem(draining)]),
        ...(unreached.length === 0 ? [] : [unreachedProblem(unreached)]),
      ]
        .concat('the launcher says so once the shop is ready')
        .join('; ');
    } catch (error) {
      this.#lastProblem = `the gateway at ${httpEndpointUrl(endpoint)} does not tell the launcher: ${error instanceof Error ? error.message : String(error)}`;
    } finally {
      this.#asking = false;
    }
    if (!this.#stopped && this.#waitingSince !== undefined) {
      this.#schedule(quick ? QUICK_POLL_MS : this.#pollMs());
    }
  }

  #pollMs(): number {
    return this.#warned ? SLOW_POLL_MS : POLL_MS;
  }

  #ready(url: string): void {
    const seconds = ((performance.now() - this.#waitingSince!) / 1000).toFixed(1);
    clearTimeout(this.#warnTimer);
    this.#waitingSince = undefined;
    const restarted = this.#restarted.splice(0);
    this.#options.say(
      restarted.length === 0
        ? `the shop is ready: ${url} (${listed(this.#options.services)} registered; ${seconds} s)`
        : `the shop is ready again: ${url} (${listed(restarted)} back; ${seconds} s after ${restarted.length === 1 ? 'it' : 'they'} exited)`,
      'info',
    );
  }

  #warn(): void {
    if (this.#stopped || this.#waitingSince === undefined) return;
    this.#warned = true;
    const after = this.#restarted.length === 0 ? 'the start' : `${listed(this.#restarted)} exited`;
    this.#options.say(
      `the shop is not ready ${Math.round(this.#warnAfterMs / 1000)} s after ${after}: ${this.#lastProblem}`,
      'warn',
    );
  }
}

/** A service registered and routed, none of whose instances the gateway holds a connection to. */
interface Unreached {
  readonly service: string;
  /** Where its instances registered, as the gateway's status lists them. */
  readonly addresses: readonly string[];
  /** How long the gateway has failed to connect to each of them (the least), once it has to each. */
  readonly unreachableSeconds: number | undefined;
}

/**
 * What the gateway's status shows standing between the shop and ready. `missing`: `gateway` when it
 * is not registered itself, and each service with no serving node (registered after its restart,
 * if it restarted) that a listed route is served by, nor one listed as draining. `draining`: each
 * service with no such serving node but one registered so and listed as draining, as a service is
 * from its start until its database first answers (a database that does not exist, a password the
 * server refuses): told apart, as "has not registered" sent the user to look at the registration.
 * `unreached`: each service with such nodes, none of which the gateway holds a connection to
 * (`connected`): registered at an address the gateway cannot reach (link-local, another interface's
 * or host's, behind a firewall), or still connecting; a request to it would fail, as the gateway's
 * own /readyz says once its attempts fail.
 */
function assess(
  status: GatewayStatusView,
  services: readonly string[],
  registeredAfter: ReadonlyMap<string, number>,
): { missing: string[]; draining: string[]; unreached: Unreached[] } {
  const nodes = Array.isArray(status.nodes) ? status.nodes : [];
  const routes = Array.isArray(status.routes) ? status.routes : [];
  const routed = new Set(routes.filter((route) => route.listed).flatMap((route) => route.serving));
  const missing = status.registered === true ? [] : ['gateway'];
  const draining: string[] = [];
  const unreached: Unreached[] = [];
  for (const service of services) {
    const after = registeredAfter.get(service) ?? 0;
    const registered = nodes.filter(
      (node) =>
        node.name === service &&
        node.kept !== true &&
        node.registeredAt !== null &&
        Date.parse(node.registeredAt) >= after,
    );
    const serving = registered.filter((node) => node.state === 'serving' && routed.has(node.id));
    if (serving.length === 0) {
      if (registered.some((node) => node.state === 'draining')) draining.push(service);
      else missing.push(service);
    } else if (!serving.some((node) => node.connected === true)) {
      const failing = serving.map((node) => node.unreachableSeconds);
      unreached.push({
        service,
        addresses: serving.map((node) => (typeof node.address === 'string' ? node.address : node.id)),
        unreachableSeconds: failing.every((seconds) => typeof seconds === 'number')
          ? Math.min(...(failing as number[]))
          : undefined,
      });
    }
  }
  return { missing, draining, unreached };
}

/** What the launcher says of the services registered whose every instance is draining. */
function drainingProblem(draining: readonly string[]): string {
  const one = draining.length === 1;
  return `${listed(draining)} ${one ? 'is' : 'are'} registered but not serving (draining, as a service is until its database answers: see ${one ? 'its' : 'their'} lines above)`;
}

/**
 * What the launcher says of the services the gateway does not reach: which, where they registered,
 * and what to set. Those whose every instance the gateway has failed to connect to (refused, or
 * past its connect timeout) are told apart from those it is still connecting to (an address that
 * drops packets, for the gateway's connect timeout): "cannot connect ... its attempts failing" for
 * the least of their times, "has not connected ... yet" for the others, each in a sentence of its
 * own, so that a service failing for long is never said to be merely connecting, nor one merely
 * connecting to be out of reach.
 */
function unreachedProblem(unreached: readonly Unreached[]): string {
  const failing = unreached.filter((each) => each.unreachableSeconds !== undefined);
  const pending = unreached.filter((each) => each.unreachableSeconds === undefined);
  return [
    ...(failing.length === 0
      ? []
      : [
          unreachedSentence(
            failing,
            (it) => `cannot connect to ${it} there`,
            `its attempts failing for ${Math.min(...failing.map((each) => each.unreachableSeconds!))} s`,
            '',
          ),
        ]),
    ...(pending.length === 0
      ? []
      : [
          unreachedSentence(
            pending,
            (it) => `has not connected to ${it} there yet`,
            'no answer to its attempts so far',
            'if that lasts, ',
          ),
        ]),
  ].join('; ');
}

function unreachedSentence(
  unreached: readonly Unreached[],
  gatewayHas: (it: string) => string,
  how: string,
  when: string,
): string {
  const one = unreached.length === 1;
  const where = unreached.map(({ service, addresses }) => `${service} (at ${addresses.join(', ')})`);
  return (
    `${listed(where)} ${one ? 'is' : 'are'} registered, but the gateway ${gatewayHas(one ? 'it' : 'them')} ` +
    `(${how}; see its lines above): ${when}give ${one ? 'it' : 'them'} an address the gateway reaches, ` +
    `--host (SERVICE_HOST) or --advertise-host (ADVERTISE_HOST), or open the way from the gateway to ${one ? 'that address' : 'those addresses'}`
  );
}

/** Where to ask on this machine: its loopback when the gateway listens on every interface. */
function dialable(endpoint: HttpEndpoint): HttpEndpoint {
  return { ...endpoint, host: loopbackIfUnspecified(endpoint.host) };
}

function listed(names: readonly string[]): string {
  return names.join(', ');
}
