import { copyFileSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { type StatusObject, status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type * as HostLookup from '../../src/common/host-lookup.js';
import { UNTRUSTED_AFTER_CA_CHANGE } from '../../src/common/registry-words.js';
import { channelCredentials, secureNamingChannelOptions } from '../../src/common/tls.js';
import { createDistributorServer } from '../../src/distributor/distributor-server.js';
import { NodeState } from '../../src/gen/distributor.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { replaceFile, useTestPki } from '../helpers/certs.js';
import { goodsNode } from '../helpers/nodes.js';

// A distributor listening on a host name looks the name up once its ports are bound (to warn of an
// address it did not bind): connections accepted meanwhile are served already. A CA removed later
// must cut them as it cuts the others. The lookup is held here until the test lets it go; all else
// is real.

const lookupGate = vi.hoisted(() => {
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open: () => open(), opened };
});

vi.mock('../../src/common/host-lookup.js', async (importOriginal) => {
  const original = await importOriginal<typeof HostLookup>();
  return {
    ...original,
    lookupWithin: async (...args: Parameters<typeof original.lookupWithin>) => {
      await lookupGate.opened;
      return original.lookupWithin(...args);
    },
  };
});

const testPki = useTestPki('ca-removal-early-', { names: ['distributor', 'goods'] });
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
const WAIT = { timeout: 5_000, interval: 20 };

/** A port free on 127.0.0.1 now (the distributor's own is not known before its listen resolves). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

describe('a CA removed from the CA file of a distributor listening on a host name', () => {
  it('cuts a registration accepted while the distributor still looked its host name up', async () => {
    const { pki } = testPki;
    const caFile = join(mkdtempSync(join(pki.dir, 'run-')), 'ca.crt');
    copyFileSync(pki.bothCasFile, caFile);
    const distributor = createDistributorServer({
      tls: { ...pki.files('distributor'), caFile },
      tlsRefreshIntervalMs: 50,
      requireCertificateIdentity: true,
    });
    cleanups.push(() => distributor.stop(100));
    const port = await freePort();
    const listening = distributor.listen('localhost', port);

    const files = pki.foreignFiles('goods');
    const client = new RegistrationClient({
      distributor: `127.0.0.1:${port}`,
      node: { ...goodsNode(), descriptorSet: Buffer.alloc(0), state: NodeState.NODE_STATE_SERVING },
      credentials: channelCredentials(files, { expectedName: 'distributor' }),
      channelOptions: secureNamingChannelOptions(files, 'distributor'),
      backoff: { initialMs: 50, maxMs: 200 },
    });
    const ended: StatusObject[] = [];
    client.on('disconnected', (ended_) => ended.push(ended_));
    client.start();
    cleanups.push(() => client.stop(100));
    // Registered while listen has not resolved yet.
    await vi.waitFor(() => expect(client.nodeId).toBeDefined(), WAIT);
    lookupGate.open();
    await listening;

    // Its certificate's CA is removed (before, it may have found the port not bound yet).
    const endedBefore = ended.length;
    replaceFile(pki.caFile, caFile);
    await vi.waitFor(
      () =>
        expect(ended[endedBefore]).toMatchObject({
          code: status.UNAUTHENTICATED,
          details: UNTRUSTED_AFTER_CA_CHANGE,
        }),
      WAIT,
    );
    expect(distributor.registry.snapshot().nodes).toEqual([]);
  });
});
