import { CallCredentials, Metadata, status as Status, type StatusObject } from '@grpc/grpc-js';
import {
  CALLER_PROOF_HEADER,
  DISTRIBUTOR_PROOF_HEADER,
  distributorProofHolds,
  endpointText,
  makeCallerProof,
  makeNonce,
  OVER_TLS,
  type RegisteredNode,
} from '../common/registry-proof.js';
import { retryClassOf } from '../common/retry-policy.js';
import { checkRegistryToken } from './registry-token.js';

/** The methods of the distributor a component calls, as their proofs name them. */
export const DISTRIBUTOR_METHODS = {
  register: '/shop.v1.DistributorService/Register',
  watch: '/shop.v1.DistributorService/Watch',
  getDescriptorSet: '/shop.v1.DistributorService/GetDescriptorSet',
} as const;

/** The connection calls go out on: whether it is TLS, and this side's address of it. */
export interface ProvenConnection {
  readonly secure: boolean;
  localEndpoint(): { address: string; port: number } | undefined;
}

/** A call that can be ended, and that reports its answer's headers. */
interface ProvableCall {
  cancel(): void;
  on(event: 'metadata', listener: (metadata: Metadata) => void): unknown;
}

/**
 * The registry token as a component uses it (see registry-proof.ts): a proof of it on every call to
 * the distributor, and a check that the answer proves the distributor holds it too, before anything
 * the call returns is believed. Without a token, calls carry nothing and any answer is taken.
 */
export class RegistryCredentials {
  readonly #token: string | undefined;

  constructor(
    token: string | undefined,
    /** The distributor's address, for the message when an answer proves nothing. */
    readonly distributor: string,
  ) {
    if (token !== undefined) checkRegistryToken(token);
    this.#token = token;
  }

  /**
   * The call options of one call of `method` over `connection` (for Register, made for `node`, the
   * node its first message describes), and the check of its answer (see {@link AnswerProof}). The
   * proof is made as grpc-js sends the call, once it has picked the connection: it names this side
   * of that connection, which the distributor checks against the peer it sees.
   */
  forCall(
    method: string,
    connection: ProvenConnection,
    node?: RegisteredNode,
  ): { options: { credentials?: CallCredentials }; check: (call: ProvableCall) => AnswerProof } {
    const token = this.#token;
    if (token === undefined) return { options: {}, check: () => UNCHECKED };
    const nonce = makeNonce();
    const credentials = CallCredentials.createFromMetadataGenerator((_options, callback) => {
      const side = connection.localEndpoint();
      if (!connection.secure && side === undefined) {
        // grpc-js ends the call UNKNOWN ("Getting metadata from plugin failed with error: …"), which
        // retry-policy.ts takes for transient: it is tried again as any lost link.
        callback(new Error('the connection to the distributor closed as the call started'));
        return;
      }
      const endpoint =
        side === undefined || connection.secure ? OVER_TLS : endpointText(side.address, side.port);
      const metadata = new Metadata();
      metadata.set(CALLER_PROOF_HEADER, makeCallerProof(token, method, nonce, endpoint, node));
      callback(null, metadata);
    });
    const holds = (headers: Metadata): boolean => {
      const values = headers.get(DISTRIBUTOR_PROOF_HEADER);
      return values.length === 1 && distributorProofHolds(token, method, nonce, String(values[0]));
    };
    return {
      options: { credentials },
      check: (call) => new AnswerProof(call, holds, this.distributor, connection.secure),
    };
  }
}

/**
 * Follows one call's answer: once its headers arrive without the distributor's proof, the call is
 * ended, and its status says why. Until they arrive with it, nothing the call returns is proven.
 */
export class AnswerProof {
  #proven: boolean;
  #unproven = false;
  readonly #checked: boolean;

  constructor(
    call: ProvableCall,
    holds: ((headers: Metadata) => boolean) | undefined,
    readonly distributor: string,
    /**
     * Whether the call went out over TLS: the component's TLS check of the server (its CA, and the
     * distributor's identity, secure naming) has then proven whom it speaks to, as far as a refusal
     * goes (see refusalUnproven).
     */
    readonly overTls = false,
  ) {
    this.#checked = holds !== undefined;
    this.#proven = !this.#checked;
    if (!holds) return;
    call.on('metadata', (headers) => {
      if (holds(headers)) {
        this.#proven = true;
        return;
      }
      this.#unproven = true;
      call.cancel();
    });
  }

  /** Whether the answer proved the distributor holds the token (always, without a token). */
  get proven(): boolean {
    return this.#proven;
  }

  /**
   * The status the call ended with; when its answer proved nothing, UNAVAILABLE saying so: retried,
   * as a distributor away is, since the real one may take its port back.
   */
  statusOf(ended: StatusObject): StatusObject {
    if (!this.#unproven) return ended;
    return { code: Status.UNAVAILABLE, details: unprovenDetails(this.distributor), metadata: ended.metadata };
  }

  /**
   * Whether `ended` is a refusal for good (retry-policy's `permanent`: UNAUTHENTICATED,
   * PERMISSION_DENIED, …) that came without the distributor's proof. The distributor proves itself
   * in every answer to a caller that proved the token, so such a refusal is either the distributor's
   * answer to a token that is not its own, or a process in its place: either way it is retried, so
   * that a process holding the distributor's port cannot stop a component for good with one status.
   * Over TLS no process in its place gets that far (the component checked the distributor's
   * certificate), so a refusal there is the distributor's, proven or not: a wrong token, a clock too
   * far off, a client certificate without an identity stop the component, as a person must act.
   */
  refusalUnproven(ended: StatusObject): boolean {
    return this.#checked && !this.#proven && !this.overTls && retryClassOf(ended.code) === 'permanent';
  }

  /** The error of a unary call whose answer came without the proof. */
  error(): StatusObject {
    return { code: Status.UNAVAILABLE, details: unprovenDetails(this.distributor), metadata: new Metadata() };
  }
}

const UNCHECKED_CALL: ProvableCall = { cancel() {}, on() {} };
const UNCHECKED = new AnswerProof(UNCHECKED_CALL, undefined, '');

function unprovenDetails(distributor: string): string {
  return (
    `the process answering at ${distributor} did not prove that it holds the registry token: it is not ` +
    "this shop's distributor (another process may have taken its port while it restarted), or a distributor " +
    'older than this component (upgrade the distributor first); nothing it sent is used'
  );
}
