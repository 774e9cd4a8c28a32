import { describe, expect, it } from 'vitest';
import { channelCredentials, secureNamingChannelOptions, serverCredentials } from '../../src/common/tls.js';
import { NodeState } from '../../src/gen/distributor.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { useTestPki } from '../helpers/certs.js';
import { captureLog } from '../helpers/log-capture.js';
import { goodsNode } from '../helpers/nodes.js';
import { useDistributorHarness } from './support/distributor-harness.js';

// A distributor with a registry token and TLS but no CA (TLS_CERT and TLS_KEY, no TLS_CA) asks its
// callers for no certificate. Their proofs leave the address out, as over any TLS connection, and
// must be taken: grpc-js reports a TLS call without a client certificate as no TLS at all.

const { cleanups, startDistributor } = useDistributorHarness();

const testPki = useTestPki('registry-proof-server-tls-', { names: ['distributor', 'goods'] });

const TOKEN = 'registry-proof-server-tls-token';

describe('a distributor with a token and TLS without a CA', () => {
  it('registers a component whose proofs leave the address out, the connection being TLS', async () => {
    const { certFile, keyFile } = testPki.pki.files('distributor');
    const files = testPki.pki.files('goods');
    const { address } = await startDistributor({
      credentials: serverCredentials({ certFile, keyFile }),
      registryToken: TOKEN,
    });
    const { log } = captureLog('goods');
    const client = new RegistrationClient({
      distributor: address,
      // Nothing to route: what is under test is the connection, not the registration.
      node: goodsNode({ descriptorSet: Buffer.alloc(0), state: NodeState.NODE_STATE_SERVING }),
      log,
      token: TOKEN,
      credentials: channelCredentials(files, { expectedName: 'distributor' }),
      channelOptions: secureNamingChannelOptions(files, 'distributor'),
      backoff: { initialMs: 50, maxMs: 200 },
    });
    const outcome = new Promise<string>((resolve) => {
      client.once('registered', () => resolve('registered'));
      client.once('refused', (ended) => resolve(`refused: ${ended.details}`));
    });
    client.start();
    cleanups.push(() => client.stop(100));
    expect(await outcome).toBe('registered');
  });
});
