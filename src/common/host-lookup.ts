import { lookup } from 'node:dns/promises';

/** Resolves a host name to every address it has here, as dns.lookup with `all` does. */
export type HostLookup = (name: string) => Promise<readonly string[]>;

/** The system's resolver (getaddrinfo: /etc/hosts, then DNS), as grpc-js resolves a name. */
export const lookupAll: HostLookup = async (name) =>
  (await lookup(name, { all: true })).map((found) => found.address);

/**
 * How long a start waits for a host name to resolve before taking it as one that does not. The
 * system's resolver gives up on a DNS server that does not answer only after its timeout and
 * attempts (5 s twice per server by default): probed with a DNS server that drops queries, a
 * service with --distributor a name registered 10 s late, and a SIGTERM meanwhile was acted on
 * only after the lookup. A name in /etc/hosts or from a DNS server that answers takes milliseconds.
 * The timeout bounds the wait, not the lookup: getaddrinfo runs on in libuv's threadpool, and
 * Node's exit waits for it, so a process stopped meanwhile exits only when it returns.
 */
export const START_LOOKUP_TIMEOUT_MS = 2_000;

/** `resolve(name)`, rejected when it takes longer than `timeoutMs`. */
export async function lookupWithin(
  resolve: HostLookup,
  name: string,
  timeoutMs = START_LOOKUP_TIMEOUT_MS,
): Promise<readonly string[]> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name} did not resolve within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([resolve(name), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
