import { status } from '@grpc/grpc-js';

/**
 * A hint to append to an UNIMPLEMENTED refusal; '' for any other. That status comes from a gRPC
 * server that has no registry (a service's port given as the distributor's, say) or another HTTP/2
 * server, never from the distributor itself, whose own refusals have codes of their own: "the
 * distributor refused this node" alone sent the operator looking at the distributor's settings
 * rather than at this component's address for it.
 */
export function notADistributorHint(code: number, distributor: string): string {
  if (code !== status.UNIMPLEMENTED) return '';
  return ` — ${distributor} is not the distributor's gRPC port (a gRPC or HTTP/2 server without the registry answered): check --distributor (DISTRIBUTOR_ADDRESS)`;
}
