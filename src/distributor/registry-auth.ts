import { hash, timingSafeEqual } from 'node:crypto';
import { Metadata, status } from '@grpc/grpc-js';
import type { ServerSurfaceCall } from '@grpc/grpc-js/build/src/server-call.js';
import { REGISTRY_TOKEN_ENV } from '../common/common-settings.js';
import { identityForName, OPERATOR_NAME } from '../common/identity.js';
import {
  CALLER_PROOF_HEADER,
  type CallerProof,
  callerProofHolds,
  DISTRIBUTOR_PROOF_HEADER,
  endpointOfPeer,
  makeDistributorProof,
  OVER_TLS,
  PROOF_WINDOW_MS,
  parseCallerProof,
  type RegisteredNode,
} from '../common/registry-proof.js';
import { REGISTRY_TOKEN_REFUSALS, tokenProofTimeRefusal } from '../common/registry-words.js';
import { ServiceError } from '../common/service-error.js';

export type { ServerSurfaceCall };

/** The identities (URI SANs) of the client certificate a call came with; none without TLS. */
export type PeerIdentities = (call: ServerSurfaceCall) => readonly string[];

/** The principal of a registry that checks nothing, before the caller's address is added. */
export const ANONYMOUS_PRINCIPAL = 'anonymous';
/** The principal of a stream that proved only that it holds the shared token, before its address. */
export const TOKEN_PRINCIPAL = 'token';

/** Options of {@link createRegistryAuth}. */
export interface RegistryAuthOptions {
  /** The shared registration token; unset: no token is asked for. */
  token?: string | undefined;
  /** Reads the caller's certificate identities; by default there are none. */
  peerIdentities?: PeerIdentities | undefined;
  /**
   * mTLS: a registering node must hold the identity of the name it registers under (identityForName),
   * and every caller must present a certificate identity at all.
   */
  requireCertificateIdentity?: boolean | undefined;
  /**
   * Whether the distributor serves over TLS: a proof made over TLS (see OVER_TLS) is taken only
   * then. Asked of the server's credentials, not of each call's: grpc-js calls a TLS connection
   * whose client sent no certificate (a distributor with TLS but no CA asks for none) no TLS at all.
   */
  overTls?: boolean | undefined;
}

/** What a caller proved. */
export interface Caller {
  /** The URI SANs of its client certificate. */
  readonly identities: readonly string[];
  /**
   * Whether it proved that it holds the registration token (false when none is asked for). A
   * Register call's proof of the token is checked with the node it registers (confirmNode).
   */
  readonly token: boolean;
  /** The proof it sent (see registry-proof.ts), which the distributor's answer must prove itself over. */
  readonly proof?: { readonly method: string; readonly sent: CallerProof };
}

/**
 * Who may call Register, Watch, List and GetDescriptorSet, and under which principal a node holds
 * its registration.
 */
export interface RegistryAuth {
  /** Checks the credentials every Register, Watch, List or GetDescriptorSet call needs: throws UNAUTHENTICATED. */
  authenticate(call: ServerSurfaceCall): Caller;
  /**
   * The principal that registers under `name`: the certificate identity when there is one, else
   * "token@<peer address>", else "anonymous@<peer address>". A token proves membership, not who is
   * speaking: every holder shares it, so the address it connects from tells holders apart, and a
   * node restarted on its host takes its identity back at once while a holder elsewhere cannot.
   * With `requireCertificateIdentity`, throws PERMISSION_DENIED unless the caller's certificate
   * carries identityForName(name); under the name of people's tools (OPERATOR_NAME), always.
   */
  principalFor(caller: Caller, name: string, peerAddress: string): string;
  /**
   * For a Register call that proved the token with a proof (not a bearer): checks that the proof was
   * made for the node its first message describes; throws UNAUTHENTICATED otherwise. A proof taken
   * by a process that listened in the distributor's place registers nothing but the node it was made for
   * (but a node that gives no host is listed at the address the Register comes from, whoever sends it).
   */
  confirmNode(caller: Caller, node: RegisteredNode): void;
  /**
   * The initial metadata to answer a caller that proved the token with a proof: the distributor's own
   * proof, which the caller checks before it believes the answer. Sent only once the caller's proof
   * is checked (for Register, with confirmNode): the distributor proves nothing to a caller that has
   * proven nothing, or a process in its place could relay a caller's nonce to it and pass its
   * answer on. Undefined for any other caller.
   */
  answerMetadata(caller: Caller): Metadata | undefined;
}

const REGISTER_METHOD = '/shop.v1.DistributorService/Register';

const BEARER = /^Bearer +(\S+) *$/i;

// One-shot: every Register, Watch, List and GetDescriptorSet call is checked, thousands at once
// when a burst of nodes registers, and crypto.hash takes half the time of a Hash object for a token.
const sha256 = (value: string): Buffer => hash('sha256', value, 'buffer');

function unauthenticated(message: string): ServiceError {
  return new ServiceError(status.UNAUTHENTICATED, message);
}

/**
 * The refusal of a caller that proves a registry token to a distributor that holds none. Taken, its
 * registration would be listed and then dropped at once, again at every retry: the caller believes
 * no answer without the distributor's proof of the token. FAILED_PRECONDITION: it is retried with a
 * warning, and registers once the distributor is given the token.
 */
export const DISTRIBUTOR_WITHOUT_TOKEN =
  `this distributor holds no registry token, but the caller proved one: give the distributor ` +
  `${REGISTRY_TOKEN_ENV}, the same as the caller's (or unset it on the caller)`;

/**
 * Builds the distributor's authentication. The token is compared in constant time: both sides are
 * hashed to 32 bytes first, so neither the content nor the length of the expected token leaks through
 * the time a refusal takes.
 */
export function createRegistryAuth({
  token,
  peerIdentities = () => [],
  requireCertificateIdentity = false,
  overTls = false,
}: RegistryAuthOptions = {}): RegistryAuth {
  if (token !== undefined && !/^\S+$/.test(token)) {
    throw new RangeError('registry token: expected a non-empty string without spaces');
  }
  const expected = token === undefined ? undefined : sha256(token);

  /** The caller's proof, checked but for a Register's node; undefined when it sent none. */
  const checkProof = (call: ServerSurfaceCall): CallerProof | undefined => {
    const values = call.metadata.get(CALLER_PROOF_HEADER);
    if (values.length === 0) return undefined;
    const proof =
      values.length === 1 && typeof values[0] === 'string' ? parseCallerProof(values[0]) : undefined;
    if (!proof) throw unauthenticated(REGISTRY_TOKEN_REFUSALS.wrong);
    const offMs = proof.timeMs - Date.now();
    if (Math.abs(offMs) > PROOF_WINDOW_MS) throw unauthenticated(tokenProofTimeRefusal(offMs));
    const method = call.getPath();
    if (method !== REGISTER_METHOD && !callerProofHolds(token!, method, proof)) {
      throw unauthenticated(REGISTRY_TOKEN_REFUSALS.wrong);
    }
    // Made for the connection it came on: the caller's side of it as this side sees the peer, or
    // over TLS, where the distributor's certificate binds the connection (a caller sends such a
    // proof only to the holder of its key, with or without a certificate of its own; and NAT may
    // change the address). A process that took the distributor's port and kept the callers'
    // connections cannot pass their proofs on from a connection of its own: their address and
    // port are theirs while they last.
    const connectionHolds =
      proof.endpoint === OVER_TLS ? overTls : proof.endpoint === endpointOfPeer(call.getPeer());
    if (!connectionHolds) throw unauthenticated(REGISTRY_TOKEN_REFUSALS.connection);
    return proof;
  };

  const checkToken = (call: ServerSurfaceCall): { token: boolean; proof?: Caller['proof'] } => {
    if (!expected) {
      if (call.metadata.get(CALLER_PROOF_HEADER).length > 0) {
        throw new ServiceError(status.FAILED_PRECONDITION, DISTRIBUTOR_WITHOUT_TOKEN);
      }
      return { token: false };
    }
    const proof = checkProof(call);
    if (proof) return { token: true, proof: { method: call.getPath(), sent: proof } };
    const values = call.metadata.get('authorization');
    if (values.length === 0) {
      throw unauthenticated(REGISTRY_TOKEN_REFUSALS.missing);
    }
    const match = values.length === 1 && typeof values[0] === 'string' ? BEARER.exec(values[0]) : null;
    if (!match || !timingSafeEqual(sha256(match[1]!), expected)) {
      throw unauthenticated(REGISTRY_TOKEN_REFUSALS.wrong);
    }
    return { token: true };
  };

  return {
    authenticate(call) {
      const checked = checkToken(call);
      const identities = peerIdentities(call);
      if (requireCertificateIdentity && identities.length === 0) {
        throw unauthenticated(
          `missing credentials: a client certificate with a URI SAN such as ${identityForName('<name>')} is required`,
        );
      }
      return { identities, ...checked };
    },
    confirmNode(caller, node) {
      const proof = caller.proof;
      if (proof?.method !== REGISTER_METHOD) return;
      if (!callerProofHolds(token!, REGISTER_METHOD, proof.sent, node)) {
        throw unauthenticated(REGISTRY_TOKEN_REFUSALS.wrong);
      }
    },
    answerMetadata(caller) {
      if (!caller.proof) return undefined;
      const metadata = new Metadata();
      metadata.set(
        DISTRIBUTOR_PROOF_HEADER,
        makeDistributorProof(token!, caller.proof.method, caller.proof.sent.nonce),
      );
      return metadata;
    },
    principalFor(caller, name, peerAddress) {
      if (name === OPERATOR_NAME) {
        // Its certificate is handed to people for their tools; as a node it could claim any free route.
        throw new ServiceError(
          status.PERMISSION_DENIED,
          `the name ${OPERATOR_NAME} is for people's tools (grpcurl, scripts): no node registers under it`,
        );
      }
      const wanted = identityForName(name);
      if (caller.identities.includes(wanted)) return wanted;
      if (requireCertificateIdentity) {
        throw new ServiceError(
          status.PERMISSION_DENIED,
          `certificate identity ${caller.identities.join(', ')} does not match the name ${name}: ` +
            `registering as ${name} needs ${wanted}`,
        );
      }
      if (caller.identities.length > 0) return [...caller.identities].sort().join(' ');
      return `${caller.token ? TOKEN_PRINCIPAL : ANONYMOUS_PRINCIPAL}@${peerAddress}`;
    },
  };
}
