import { type StatusObject, status } from '@grpc/grpc-js';
import { describe, expect, it, vi } from 'vitest';
import { REGISTRY_TOKEN_REFUSALS } from '../../src/common/registry-words.js';
import { channelCredentials, secureNamingChannelOptions, serverCredentials } from '../../src/common/tls.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { useDistributorHarness } from '../distributor/support/distributor-harness.js';
import { useTestPki } from '../helpers/certs.js';
import { captureLog } from '../helpers/log-capture.js';
import { goodsNode } from '../helpers/nodes.js';
import { startRefusingDistributor } from '../helpers/refusing-distributor.js';

// With a registry token, a refusal without the distributor's proof is retried (a process holding its
// port could send it). Over TLS no such process gets past the component's check of the distributor's
// certificate: a refusal there is the distributor's, and one that only a person can fix stops the
// component, as it did before the proofs.

const { cleanups, startDistributor } = useDistributorHarness();
const testPki = useTestPki('refusal-over-tls-', { names: ['distributor', 'goods'] });
const TOKEN = 'refusal-over-tls-token-0123456789';

/** The first refusal for good of goods registering over TLS with `token`, or of its third try. */
async function firstEnd(
  address: string,
  token: string,
): Promise<{ refused: boolean; ended: StatusObject; warnings: number }> {
  const files = testPki.pki.files('goods');
  const { log, lines } = captureLog('goods');
  const client = new RegistrationClient({
    distributor: address,
    node: goodsNode(),
    log,
    token,
    credentials: channelCredentials(files, { expectedName: 'distributor' }),
    channelOptions: secureNamingChannelOptions(files, 'distributor'),
    backoff: { initialMs: 20, maxMs: 50 },
  });
  cleanups.push(() => client.stop(100));
  const outcome = new Promise<{ refused: boolean; ended: StatusObject }>((resolve) => {
    let ends = 0;
    client.once('refused', (ended) => resolve({ refused: true, ended }));
    client.on('disconnected', (ended) => {
      if (++ends === 3) resolve({ refused: false, ended });
    });
  });
  client.start();
  const ended = await outcome;
  return { ...ended, warnings: lines.filter((line) => line.proven === false).length };
}

describe('a refusal over TLS, with a registry token', () => {
  it("stops a component whose token is not the distributor's: the certificate proved whose refusal it is", async () => {
    const { certFile, keyFile } = testPki.pki.files('distributor');
    const { address } = await startDistributor({
      credentials: serverCredentials({ certFile, keyFile }),
      registryToken: TOKEN,
    });
    const outcome = await firstEnd(address, 'not-the-distributors-token-0123');
    expect(outcome).toMatchObject({
      refused: true,
      ended: { code: status.UNAUTHENTICATED, details: 'invalid credentials: the registry token is wrong' },
      warnings: 0,
    });
  });

  it('stops a component whose client certificate carries no identity, though its token is right', async () => {
    // Refused before the node's proof is checked, so without the distributor's proof: as a
    // certificate without a URI SAN (the test PKI issues none) is, under mutual TLS.
    const { address } = await startDistributor({
      credentials: serverCredentials(testPki.pki.files('distributor')),
      registryToken: TOKEN,
      requireCertificateIdentity: true,
      peerIdentities: () => [],
    });
    const outcome = await firstEnd(address, TOKEN);
    expect(outcome).toMatchObject({
      refused: true,
      ended: {
        code: status.UNAUTHENTICATED,
        details: expect.stringMatching(/^missing credentials: a client certificate with a URI SAN/),
      },
      warnings: 0,
    });
  });

  it('keeps a component trying while its distributor is older and asks for the bearer, so it registers once that is upgraded', async () => {
    // A distributor built before the proofs refuses them as a missing bearer, with its certificate.
    // The README has operators upgrade the distributor first; a host upgraded before it, on a shop
    // that also has a token, stopped with exit 3 and stayed down after the distributor's upgrade.
    const distributorFiles = testPki.pki.files('distributor');
    const older = await startRefusingDistributor(
      { code: status.UNAUTHENTICATED, details: REGISTRY_TOKEN_REFUSALS.missing },
      serverCredentials(distributorFiles),
    );
    const { port } = older;
    cleanups.push(() => older.stop());
    const files = testPki.pki.files('goods');
    const { log, lines } = captureLog('goods');
    const client = new RegistrationClient({
      distributor: `127.0.0.1:${port}`,
      node: goodsNode(),
      log,
      token: TOKEN,
      credentials: channelCredentials(files, { expectedName: 'distributor' }),
      channelOptions: secureNamingChannelOptions(files, 'distributor'),
      backoff: { initialMs: 20, maxMs: 50 },
    });
    cleanups.push(() => client.stop(100));
    const refused: StatusObject[] = [];
    client.on('refused', (ended) => refused.push(ended));
    const registered = new Promise<string>((resolve) => client.once('registered', resolve));
    client.start();
    await vi.waitFor(() => expect(older.calls).toBeGreaterThanOrEqual(3));
    older.stop();
    await startDistributor({ credentials: serverCredentials(distributorFiles), registryToken: TOKEN }, port);
    expect(await registered).toMatch(/^goods@/);
    expect(refused).toEqual([]);
    const warnings = lines.filter((line) => line.event === 'refused');
    expect(warnings.length).toBeGreaterThanOrEqual(2);
    for (const warning of warnings) {
      expect(warning).toMatchObject({ level: 40, code: 'UNAUTHENTICATED' });
      expect(warning.msg).toContain(
        `127.0.0.1:${port} asks for the registry token as a bearer (UNAUTHENTICATED: ${REGISTRY_TOKEN_REFUSALS.missing}); retrying with backoff until it takes this component's proof — this component proves its SHOP_REGISTRY_TOKEN`,
      );
      expect(warning.msg).toContain('(upgrade the distributor first)');
    }
  });
});
