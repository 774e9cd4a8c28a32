import { Metadata } from '@grpc/grpc-js';
import type { DistributorConnection } from './distributor-connection.js';
import { DISTRIBUTOR_METHODS, type RegistryCredentials } from './registry-credentials.js';
import type { DescriptorSetFetcher } from './registry-view.js';

/**
 * Fetches descriptor sets with GetDescriptorSet over the distributor client of the moment (see
 * DistributorConnection; over the connection of the moment when given a function, as a
 * registration moved to a new connection has), with the credentials its other calls carry, each
 * call within `timeoutMs`. A set whose answer did not prove the distributor holds the token is refused, not routed by.
 */
export function createDescriptorSetFetcher(
  connectionOf: DistributorConnection | (() => DistributorConnection),
  credentials: RegistryCredentials,
  timeoutMs = 10_000,
): DescriptorSetFetcher {
  return (sha256) =>
    new Promise((resolve, reject) => {
      const connection = typeof connectionOf === 'function' ? connectionOf() : connectionOf;
      const { options, check } = credentials.forCall(DISTRIBUTOR_METHODS.getDescriptorSet, connection);
      const call = connection.client.getDescriptorSet(
        { sha256 },
        new Metadata(),
        { ...options, deadline: Date.now() + timeoutMs },
        (error, response) => {
          if (error) reject(error);
          else if (!proof.proven) reject(proof.error());
          else resolve(response.descriptorSet);
        },
      );
      const proof = check(call);
    });
}
