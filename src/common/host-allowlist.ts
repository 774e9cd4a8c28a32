import { isIP } from 'node:net';
import { ConfigError } from './config.js';

// DNS rebinding: a web page on attacker.example, whose name then resolves to a gateway's address
// (127.0.0.1 on a laptop running `npm start`, 10.0.0.3 inside a network), calls the REST API as
// same-origin requests: CORS never applies, and the page read /status.json and purchases and
// deleted members. Such requests carry the attacker's name in Host. A gateway answers only the names
// it is known by: any IP literal and localhost (a page cannot rebind those), the machine's own host
// name, and the names its operator lists; any other Host is 421 Misdirected Request. The metrics
// port of every component judges every request the same way, with its own list
// (--metrics-allowed-hosts; see admin-server.ts).

/**
 * Whether a request names more than one host, which RFC 9112 (section 3.2) has answered 400 whatever
 * its version: two Host lines (Node keeps the first and drops the others, and a proxy in front may
 * have read the other one), or a list on one line (no host or port has a comma).
 */
export function namesSeveralHosts(request: {
  readonly rawHeaders: readonly string[];
  readonly headers: { readonly host?: string | undefined };
}): boolean {
  return hostLines(request.rawHeaders) > 1 || request.headers.host?.includes(',') === true;
}

/**
 * How many Host lines a request came with, from its raw headers: Node's `headersDistinct` would tell
 * too, but builds an array for every header of every request to answer it.
 */
export function hostLines(rawHeaders: readonly string[]): number {
  let count = 0;
  for (let index = 0; index < rawHeaders.length; index += 2) {
    const name = rawHeaders[index]!;
    if (name.length === 4 && name.toLowerCase() === 'host') count++;
  }
  return count;
}

/** A host name as `--allowed-hosts` takes it: DNS labels, `.` before a whole domain. */
const NAME =
  /^\.?(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** The names a gateway's port, or a component's metrics port, answers besides IP literals and localhost. */
export class HostAllowlist {
  readonly #any: boolean;
  readonly #names: ReadonlySet<string>;
  /** Domains whose every name is allowed, each with its leading dot (".shop.example"). */
  readonly #domains: readonly string[];

  /** `entries`: as parseAllowedHosts gives them; `ownNames`: the machine's host name(s). */
  constructor(entries: readonly string[], ownNames: readonly string[] = []) {
    this.#any = entries.includes('*');
    this.#names = new Set([
      ...entries.filter((entry) => !entry.startsWith('.')),
      ...ownNames.map(normalName),
    ]);
    this.#domains = entries.filter((entry) => entry.startsWith('.'));
  }

  /**
   * Whether a request with this Host header is answered. None at all (HTTP/1.0, which no browser
   * sends) is: the gateway refuses a missing one in HTTP/1.1 before this.
   */
  allows(host: string | undefined): boolean {
    if (this.#any || host === undefined) return true;
    const name = hostName(host);
    if (name === undefined) return false;
    if (name.startsWith('[') || isIP(name) !== 0) return true;
    if (name === 'localhost' || name.endsWith('.localhost')) return true;
    if (this.#names.has(name)) return true;
    return this.#domains.some((domain) => name.endsWith(domain) || name === domain.slice(1));
  }
}

/** The host of a Host header (`name[:port]`, `[v6]:port`), lower case and without a final dot. */
function hostName(host: string): string | undefined {
  let name = host.trim().toLowerCase();
  if (name.startsWith('[')) {
    const end = name.indexOf(']');
    if (end < 0) return undefined;
    const literal = name.slice(1, end);
    // Only a port may follow: `[::1]attacker.example` or `[::1], other` names no address.
    if (!/^(?::[0-9]*)?$/.test(name.slice(end + 1))) return undefined;
    return isIP(literal) === 6 ? `[${literal}]` : undefined;
  }
  const colon = name.lastIndexOf(':');
  if (colon >= 0) {
    if (!/^[0-9]*$/.test(name.slice(colon + 1))) return undefined;
    name = name.slice(0, colon);
  }
  return normalName(name);
}

function normalName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/**
 * `--allowed-hosts`: host names, comma-separated, `.shop.example` for a domain and its every name,
 * `*` for any Host; empty: none beyond IP literals, localhost and the machine's own name.
 */
export function parseAllowedHosts(value: string, source: string): readonly string[] {
  const entries = value
    .split(',')
    .map((entry) => normalName(entry.trim()))
    .filter((entry) => entry.length > 0);
  if (value.trim() !== '' && entries.length === 0) {
    throw new ConfigError(
      `${source}: "${value}" names no host; give names such as shop.example, or * for any`,
    );
  }
  if (entries.includes('*')) {
    if (entries.length > 1) throw new ConfigError(`${source}: "*" allows any Host and goes alone`);
    return Object.freeze(['*']);
  }
  for (const entry of entries) {
    if (!NAME.test(entry)) {
      throw new ConfigError(
        `${source}: expected host names such as shop.example or .shop.example (a domain and its names), without scheme or port, got "${entry}"`,
      );
    }
  }
  return Object.freeze(entries);
}
