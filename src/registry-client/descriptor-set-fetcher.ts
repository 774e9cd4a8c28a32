import type { DistributorServiceClient } from '../gen/distributor.js';
import { DISTRIBUTOR_METHODS, type RegistryCredentials } from './registry-credentials.js';
import type { DescriptorSetFetcher } from './registry-view.js';

/**
 * Fetches descriptor sets with GetDescriptorSet over the distributor client of the moment (see
 * DistributorConnection), with the credentials its other calls carry, each call within `timeoutMs`.
 * A set whose answer did not prove the distributor holds the token is refused, not routed by.
 */
export function createDescriptorSetFetcher(
  client: () => DistributorServiceClient,
  credentials: RegistryCredentials,
  timeoutMs = 10_000,
): DescriptorSetFetcher {
  return (sha256) =>
    new Promise((resolve, reject) => {
      const { metadata, check } = credentials.forCall(DISTRIBUTOR_METHODS.getDescriptorSet);
      const call = client().getDescriptorSet(
        { sha256 },
        metadata,
        { deadline: Date.now() + timeoutMs },
        (error, response) => {
          if (error) reject(error);
          else if (!proof.proven) reject(proof.error());
          else resolve(response.descriptorSet);
        },
      );
      const proof = check(call);
    });
}
