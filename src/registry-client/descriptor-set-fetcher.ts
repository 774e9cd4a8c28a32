import type { Metadata } from '@grpc/grpc-js';
import type { DistributorServiceClient } from '../gen/distributor.js';
import type { DescriptorSetFetcher } from './registry-view.js';

/**
 * Fetches descriptor sets with GetDescriptorSet over the distributor client of the moment (see
 * DistributorConnection), with the credentials its other calls carry, each call within `timeoutMs`.
 */
export function createDescriptorSetFetcher(
  client: () => DistributorServiceClient,
  metadata: Metadata,
  timeoutMs = 10_000,
): DescriptorSetFetcher {
  return (sha256) =>
    new Promise((resolve, reject) => {
      client().getDescriptorSet(
        { sha256 },
        metadata,
        { deadline: Date.now() + timeoutMs },
        (error, response) => (error ? reject(error) : resolve(response.descriptorSet)),
      );
    });
}
