import { connect } from 'node:http2';
import { describe, expect, it, vi } from 'vitest';
import { channelCredentials, secureNamingChannelOptions, serverCredentials } from '../../src/common/tls.js';
import { NodeState } from '../../src/gen/distributor.js';
import { RegistrationClient } from '../../src/registry-client/registration-client.js';
import { freePort } from '../e2e/support/processes.js';
import { useTestPki } from '../helpers/certs.js';
import { captureLog, type LogLine } from '../helpers/log-capture.js';
import { useDistributorHarness } from './support/distributor-harness.js';

// One side with TLS files and the other without: the client's warning names the likely cause, and a
// TLS distributor says who spoke plaintext to it. Before, the client said "Failed to connect" or
// "wrong version number" and the distributor nothing at all.

const { cleanups, startDistributor } = useDistributorHarness();

const testPki = useTestPki('tls-mismatch-', { names: ['distributor', 'goods'] });

const TOKEN = 'tls-mismatch-test-token';
/** A node with nothing to route: what is under test is the connection, not the registration. */
const GOODS_NODE = {
  name: 'goods',
  host: '127.0.0.1',
  port: 9010,
  routes: [],
  descriptorSet: Buffer.alloc(0),
  state: NodeState.NODE_STATE_SERVING,
};

/** A goods node's registration client, with TLS files or without, started; its log lines. */
function register(distributor: string, tls: boolean): LogLine[] {
  const { log, lines } = captureLog('goods');
  const files = tls ? testPki.pki.files('goods') : undefined;
  const client = new RegistrationClient({
    distributor,
    node: GOODS_NODE,
    log,
    token: TOKEN,
    credentials: channelCredentials(files, { expectedName: 'distributor' }),
    channelOptions: secureNamingChannelOptions(files, 'distributor'),
    backoff: { initialMs: 50, maxMs: 200 },
  });
  client.start();
  cleanups.push(() => client.stop(100));
  return lines;
}

/** The first "not registered" warning of a registration client. */
async function firstWarning(lines: LogLine[]): Promise<string> {
  return vi.waitFor(
    () => {
      const warning = lines.find((line) => line.event === 'disconnected' && line.level === 40);
      expect(warning).toBeDefined();
      return warning!.msg!;
    },
    { timeout: 5_000, interval: 20 },
  );
}

describe('a registration client and a distributor that disagree on TLS', () => {
  it('without TLS files, against a distributor that requires mTLS: says the distributor may require TLS', async () => {
    const { address } = await startDistributor({
      credentials: serverCredentials(testPki.pki.files('distributor')),
      requireCertificateIdentity: true,
    });
    const message = await firstWarning(register(address, false));
    expect(message).toMatch(
      /^not registered with the distributor \(UNAVAILABLE: .*Failed to connect.*\); retrying with backoff — the distributor may require TLS: this component has no TLS files \(set TLS_DIR \(--tls-dir\), or TLS_CA, TLS_CERT and TLS_KEY\)$/,
    );
  });

  it('with TLS files, against a plaintext distributor: says the distributor may not speak TLS', async () => {
    const { address } = await startDistributor({ registryToken: TOKEN });
    const message = await firstWarning(register(address, true));
    expect(message).toMatch(
      /^not registered with the distributor \(UNAVAILABLE: .*wrong version number.*\); retrying with backoff — the distributor may not speak TLS: this component has TLS files/s,
    );
  });

  it('gives no TLS hint for a refused connection, with TLS files or without', async () => {
    const closed = `127.0.0.1:${await freePort()}`;
    for (const tls of [false, true]) {
      const message = await firstWarning(register(closed, tls));
      expect(message).toContain('ECONNREFUSED');
      expect(message).toMatch(/\); retrying with backoff$/);
    }
  });
});

describe('a TLS distributor reached in plaintext', () => {
  /** Opens a plaintext HTTP/2 session to the port, as a component without TLS files does; resolves when it closes. */
  function plaintextClient(port: number): Promise<void> {
    return new Promise((resolve) => {
      const session = connect(`http://127.0.0.1:${port}`);
      session.on('error', () => {});
      session.once('close', () => resolve());
    });
  }

  it('warns once per address that a client spoke plaintext to its TLS port', async () => {
    const { log, lines } = captureLog('distributor', 'info');
    const { port } = await startDistributor({
      credentials: serverCredentials(testPki.pki.files('distributor')),
      requireCertificateIdentity: true,
      log,
    });
    await plaintextClient(port);
    await plaintextClient(port);
    const told = lines.filter((line) => line.event === 'plaintext-client');
    expect(told.map((line) => [line.level, line.msg])).toEqual([
      [
        40,
        'a client at 127.0.0.1 spoke plaintext to this TLS port; give it TLS files (TLS_DIR (--tls-dir), or TLS_CA, TLS_CERT and TLS_KEY)',
      ],
    ]);
  });

  it('says nothing of a TLS client it refuses for want of a certificate', async () => {
    const { log, lines } = captureLog('distributor', 'info');
    const { address } = await startDistributor({
      credentials: serverCredentials(testPki.pki.files('distributor')),
      requireCertificateIdentity: true,
      log,
    });
    const { caFile } = testPki.pki.files('goods');
    const withoutCertificate = channelCredentials({ caFile }, { expectedName: 'distributor' });
    const { log: clientLog, lines: clientLines } = captureLog('goods');
    const client = new RegistrationClient({
      distributor: address,
      node: GOODS_NODE,
      log: clientLog,
      credentials: withoutCertificate,
      channelOptions: { 'grpc.ssl_target_name_override': 'distributor' },
      backoff: { initialMs: 50, maxMs: 200 },
    });
    client.start();
    cleanups.push(() => client.stop(100));
    await firstWarning(clientLines);
    expect(lines.filter((line) => line.event === 'plaintext-client')).toEqual([]);
  });
});
