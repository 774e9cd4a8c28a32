import type { ChannelCredentials, ChannelOptions } from '@grpc/grpc-js';
import type { BackoffOptions } from '../common/backoff.js';
import type { KeepaliveOptions } from '../common/grpc-server.js';
import type { Logger } from '../common/logger.js';
import type { NodeDescription } from '../gen/distributor.js';

/** What a node registers; the SHA-256 of its descriptor set is computed when not given. */
export type RegistrationNode = Omit<NodeDescription, 'descriptorSetSha256'> &
  Partial<Pick<NodeDescription, 'descriptorSetSha256'>>;

/** Options of RegistrationClient (registration-client.ts). */
export interface RegistrationClientOptions {
  /** The distributor's address, "host:port". */
  distributor: string;
  /** What to register: the port must be the one really bound. */
  node: RegistrationNode;
  /**
   * Whether the node receives the node list (a gateway): snapshots with every node's descriptor set
   * filled in, kept from the distributor's updates. Default false (a service): the stream carries
   * acknowledgements of the node's own state only.
   */
  watchNodes?: boolean;
  log?: Logger;
  backoff?: BackoffOptions;
  /** Backoff between tries of a move that failed (see renewConnection); MOVE_RETRY by default. */
  moveRetry?: BackoffOptions;
  keepalive?: KeepaliveOptions;
  /** The distributor's registration token, proven on every call and never sent (see registry-credentials.ts); none by default. */
  token?: string;
  /** How to reach the distributor: TLS (mTLS) credentials, or plaintext by default. */
  credentials?: ChannelCredentials;
  /** Channel options that go with the credentials (see secureNamingChannelOptions). */
  channelOptions?: ChannelOptions;
  /**
   * How long a registration stream may go without its first answer before it is given up as
   * UNAVAILABLE and tried again (see FirstAnswerDeadline); default 30,000 ms.
   */
  answerTimeoutMs?: number;
  /**
   * How long a connection attempt to the distributor may hang before a new one replaces it (see
   * DistributorConnection); default 10,000 ms.
   */
  connectTimeoutMs?: number;
}
