import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { unmappedAddress } from './address-group.js';

// The registry token proven both ways, never sent. Sent as `authorization: Bearer`, it went to
// whatever listened on the distributor's address: a process that took the port while the
// distributor restarted received every component's token, and, holding it, listed a rogue members
// node to the gateway, which sent it sign-ins. Now each call carries a proof of the token made for
// that call alone (its method, a fresh nonce, the time, the connection's address on the caller's
// side and, for Register, the node it registers), and the distributor answers with a proof of its
// own over the caller's nonce, which the caller checks before it believes anything the call
// returns. A process without the token can make neither, and cannot pass a caller's proof on to the
// distributor from a connection of its own (a relay, once the distributor is back: it cannot take
// the caller's own address and port while the caller's connection holds them). Over TLS the
// certificates do that, and the address is left out (NAT may change it). grpcurl and older nodes
// may still send the token as a bearer: the distributor takes it.

/**
 * The caller's proof, in the call's metadata: `v1 <time ms> <nonce hex> <endpoint> <hmac hex>`, the
 * endpoint the caller's side of its connection ("127.0.0.1:53124", "[::1]:53124"), or `-` over TLS.
 */
export const CALLER_PROOF_HEADER = 'x-shop-registry-proof';
/** The distributor's proof, in the answer's initial metadata: `v1 <hmac hex>`. */
export const DISTRIBUTOR_PROOF_HEADER = 'x-shop-distributor-proof';

/**
 * How far a proof's time may lie from the distributor's clock, either way. A captured proof is of use
 * to nobody after it; within it, it still opens the one call it names, from the one address and port
 * it names once the caller's connection there has closed (a Watch that then lasts, or the Register
 * of its node at that address). Token mode is for one machine, whose components share a clock.
 */
export const PROOF_WINDOW_MS = 5 * 60_000;

const CALLER_PROOF = /^v1 ([0-9]{1,15}) ([0-9a-f]{32}) (-|[0-9a-f.:[\]]{3,60}) ([0-9a-f]{64})$/;

/** The endpoint of a proof made over TLS, where the certificates bind the connection. */
export const OVER_TLS = '-';

/** An address and port as proofs write them: IPv4 unmapped from IPv6, IPv6 in brackets, lower case. */
export function endpointText(address: string, port: number): string {
  const host = unmappedAddress(address.toLowerCase());
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A peer as grpc-js gives it ("127.0.0.1:53124", "[::ffff:127.0.0.1]:53124") as proofs write it. */
export function endpointOfPeer(peer: string): string | undefined {
  const colon = peer.lastIndexOf(':');
  if (colon < 0) return undefined;
  const host = peer.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return endpointText(host, Number(peer.slice(colon + 1)));
}
const DISTRIBUTOR_PROOF = /^v1 ([0-9a-f]{64})$/;

/** What a Register call's proof is bound to: the node it describes in its first message. */
export interface RegisteredNode {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

/** A caller's proof as read from its metadata, not yet checked against the token. */
export interface CallerProof {
  readonly timeMs: number;
  readonly nonce: string;
  /** The caller's side of the connection it was made for (see endpointText), or OVER_TLS. */
  readonly endpoint: string;
  readonly mac: Buffer;
}

function mac(token: string, ...parts: readonly string[]): Buffer {
  // Each part on a line of its own: no part holds a line break (a method path, digits, hex, a node
  // name or host the distributor validates), so no two lists of parts make the same text.
  return createHmac('sha256', token).update(parts.join('\n')).digest();
}

function nodeBinding(node: RegisteredNode | undefined): string {
  return node === undefined ? '' : `${node.name}@${node.host}:${node.port}`;
}

function callerMac(
  token: string,
  method: string,
  proof: Omit<CallerProof, 'mac'>,
  node?: RegisteredNode,
): Buffer {
  return mac(
    token,
    'shop-registry caller v1',
    method,
    String(proof.timeMs),
    proof.nonce,
    proof.endpoint,
    nodeBinding(node),
  );
}

function distributorMac(token: string, method: string, nonce: string): Buffer {
  return mac(token, 'shop-registry distributor v1', method, nonce);
}

/** A fresh nonce for one call: the distributor's answer proves itself over it. */
export function makeNonce(): string {
  return randomBytes(16).toString('hex');
}

/**
 * A caller's proof for one call of `method` ("/shop.v1.DistributorService/Register") with `nonce`,
 * made for the connection whose side `endpoint` is (see endpointText; OVER_TLS over TLS). For
 * Register, `node` is the node its first message describes.
 */
export function makeCallerProof(
  token: string,
  method: string,
  nonce: string,
  endpoint: string,
  node?: RegisteredNode,
  nowMs = Date.now(),
): string {
  const timeMs = Math.round(nowMs);
  const hmac = callerMac(token, method, { timeMs, nonce, endpoint }, node);
  return `v1 ${timeMs} ${nonce} ${endpoint} ${hmac.toString('hex')}`;
}

/** The caller's proof in a header value, or undefined when it is not one. */
export function parseCallerProof(header: string): CallerProof | undefined {
  const match = CALLER_PROOF.exec(header);
  if (!match) return undefined;
  return {
    timeMs: Number(match[1]),
    nonce: match[2]!,
    endpoint: match[3]!,
    mac: Buffer.from(match[4]!, 'hex'),
  };
}

/** Whether `proof` was made with `token` for this call (and, for Register, this node). */
export function callerProofHolds(
  token: string,
  method: string,
  proof: CallerProof,
  node?: RegisteredNode,
): boolean {
  return timingSafeEqual(callerMac(token, method, proof, node), proof.mac);
}

/** The distributor's answer to a caller's proof: its header value. */
export function makeDistributorProof(token: string, method: string, nonce: string): string {
  return `v1 ${distributorMac(token, method, nonce).toString('hex')}`;
}

/** Whether the distributor's header proves that it holds `token`, for this call's nonce. */
export function distributorProofHolds(
  token: string,
  method: string,
  nonce: string,
  header: string | undefined,
): boolean {
  const match = header === undefined ? null : DISTRIBUTOR_PROOF.exec(header);
  return (
    match !== null && timingSafeEqual(distributorMac(token, method, nonce), Buffer.from(match[1]!, 'hex'))
  );
}
