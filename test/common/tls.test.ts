import { execFileSync, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import {
  createServer as createHttpsServer,
  type Server as HttpsServer,
  request as httpsRequest,
} from 'node:https';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import {
  type ChannelCredentials,
  type ChannelOptions,
  makeGenericClientConstructor,
  Server,
  type ServerCredentials,
  type ServiceDefinition,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { COMMON_SETTINGS, tlsSettings } from '../../src/common/common-settings.js';
import { ConfigError } from '../../src/common/config.js';
import { httpsServerOptions, watchHttpsCertificates } from '../../src/common/https-options.js';
import { loadSettings } from '../../src/common/settings.js';
import {
  channelCredentials,
  channelCredentialsByName,
  peerIdentities,
  serverCredentials,
  type TlsFilePaths,
} from '../../src/common/tls.js';
import { MAX_TLS_FILE_BYTES } from '../../src/common/tls-file-reading.js';
import {
  checkOwnIdentity,
  EXPIRY_WARNING_MS,
  readTlsFiles,
  watchTlsFiles,
} from '../../src/common/tls-files.js';
import { tlsProblemLog } from '../../src/common/tls-problem-log.js';
import { GATEWAY_SETTINGS } from '../../src/gateway/config.js';
import { installCertificate, makeTestPki, replaceFile, type TestPki } from '../helpers/certs.js';
import { captureLog } from '../helpers/log-capture.js';
import { opensslCaSign } from '../helpers/openssl-ca.js';

/** One method that answers with the identities of the caller's client certificate. */
const PEER_SERVICE = {
  whoAmI: {
    path: '/test.Peer/WhoAmI',
    requestStream: false,
    responseStream: false,
    requestSerialize: (value: Buffer) => value,
    requestDeserialize: (bytes: Buffer) => bytes,
    responseSerialize: (value: string[]) => Buffer.from(JSON.stringify(value)),
    responseDeserialize: (bytes: Buffer) => JSON.parse(bytes.toString()) as string[],
  },
} satisfies ServiceDefinition;
const PeerClient = makeGenericClientConstructor(PEER_SERVICE, 'Peer');

/** Rotation tests poll fast. */
const REFRESH = { refreshIntervalMs: 20 };
const WAIT = { timeout: 5_000, interval: 20 };

let dir: string;
let pki: TestPki;
const servers: Server[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tls-test-'));
  pki = makeTestPki(dir, { names: ['gateway', 'goods', 'members'] });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

afterEach(() => {
  for (const server of servers.splice(0)) server.forceShutdown();
});

async function startServer(credentials: ServerCredentials): Promise<number> {
  const server = new Server();
  server.addService(PEER_SERVICE, {
    whoAmI: (call: Parameters<typeof peerIdentities>[0], callback: (error: null, value: string[]) => void) =>
      callback(null, peerIdentities(call)),
  });
  servers.push(server);
  return new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (error, port) => (error ? reject(error) : resolve(port))),
  );
}

/**
 * One call on a fresh channel: the identities the server saw, or the call's error. Dialled by IP
 * address and introduced as localhost (a name its certificate carries): a TLS client may not send
 * an IP address as the server name (RFC 6066; Node warns, DEP0123), and the components never do.
 */
function whoAmI(
  port: number,
  credentials: ChannelCredentials,
  options: ChannelOptions = {},
): Promise<string[]> {
  const client = new PeerClient(`127.0.0.1:${port}`, credentials, {
    'grpc.ssl_target_name_override': 'localhost',
    ...options,
  });
  return new Promise<string[]>((resolve, reject) => {
    client.whoAmI(
      Buffer.alloc(0),
      { deadline: Date.now() + 5_000 },
      (error: ServiceError | null, value?: string[]) => (error ? reject(error) : resolve(value ?? [])),
    );
  }).finally(() => client.close());
}

const UNAVAILABLE = { code: status.UNAVAILABLE };

/** A private copy of a component's files in a folder of their own, to rotate in place. */
function rotatable(name: string, from: Required<TlsFilePaths>): Required<TlsFilePaths> & { folder: string } {
  const folder = mkdtempSync(join(dir, `${name}-`));
  const caFile = join(folder, 'ca.crt');
  replaceFile(from.caFile, caFile);
  return { folder, caFile, ...installCertificate(from, folder, name) };
}

describe('the TLS handshake', () => {
  it('a socket that never finishes its handshake is closed after handshakeTimeoutMs (10 s by default), and a real client is served', async () => {
    const { certFile, keyFile } = pki.files('goods');
    expect(serverCredentials({ certFile, keyFile })._getConstructorOptions()?.handshakeTimeout).toBe(10_000);
    const port = await startServer(serverCredentials({ certFile, keyFile }, { handshakeTimeoutMs: 300 }));
    const silent = connect(port, '127.0.0.1');
    silent.on('error', () => {});
    const openedAt = performance.now();
    await new Promise<void>((resolve) => silent.once('close', () => resolve()));
    expect(performance.now() - openedAt).toBeLessThan(5_000);
    await expect(whoAmI(port, channelCredentials({ caFile: pki.caFile }))).resolves.toEqual([]);
  });
});

describe('plaintext and TLS', () => {
  it('is plaintext without TLS files', async () => {
    const port = await startServer(serverCredentials(undefined));
    await expect(whoAmI(port, channelCredentials(undefined))).resolves.toEqual([]);
  });

  it('serves TLS from the first connection after bindAsync, checking the host name', async () => {
    const { certFile, keyFile } = pki.files('goods');
    const port = await startServer(serverCredentials({ certFile, keyFile }));
    await expect(whoAmI(port, channelCredentials({ caFile: pki.caFile }))).resolves.toEqual([]);
    await expect(whoAmI(port, channelCredentials({ caFile: pki.otherCaFile }))).rejects.toMatchObject(
      UNAVAILABLE,
    );
    // Dialled under a name the certificate does not carry: refused without secure naming.
    await expect(
      whoAmI(port, channelCredentials({ caFile: pki.caFile }), {
        'grpc.ssl_target_name_override': 'elsewhere.example',
      }),
    ).rejects.toMatchObject(UNAVAILABLE);
  });
});

describe('mutual TLS', () => {
  let port: number;
  beforeEach(async () => {
    port = await startServer(serverCredentials(pki.files('goods')));
  });

  it('refuses a client without a certificate', async () => {
    await expect(whoAmI(port, channelCredentials({ caFile: pki.caFile }))).rejects.toMatchObject(UNAVAILABLE);
  });

  it('refuses a client whose certificate is from another CA', async () => {
    await expect(whoAmI(port, channelCredentials(pki.foreignFiles('gateway')))).rejects.toMatchObject(
      UNAVAILABLE,
    );
  });

  it("accepts a client with the CA's certificate and tells the handler who it is", async () => {
    await expect(whoAmI(port, channelCredentials(pki.files('gateway')))).resolves.toEqual([
      'spiffe://shop/gateway',
    ]);
  });
});

describe('secure naming', () => {
  let port: number;
  beforeEach(async () => {
    port = await startServer(serverCredentials(pki.files('goods')));
  });

  it('refuses a server whose certificate names another component', async () => {
    const client = channelCredentials(pki.files('gateway'), { expectedName: 'members' });
    await expect(whoAmI(port, client)).rejects.toMatchObject(UNAVAILABLE);
  });

  it('credentials by name read the files once: a name first dialled while they are caught mid-rotation still gets them', async () => {
    // The gateway learns the names it dials from the node list; made then from the files as they
    // were (a ca.crt replaced before the certificates), they threw past its start and it exited.
    const client = rotatable('gateway', pki.files('gateway'));
    const byName = channelCredentialsByName(client, REFRESH)!;
    expect(channelCredentialsByName(undefined)).toBeUndefined();
    replaceFile(pki.otherCaFile, client.caFile);
    writeFileSync(client.keyFile, 'not a key\n');
    const goods = byName('goods');
    expect(byName('goods')).toBe(goods);
    await expect(whoAmI(port, goods)).resolves.toEqual(['spiffe://shop/gateway']);
    await expect(whoAmI(port, byName('members'))).rejects.toMatchObject(UNAVAILABLE);
  });

  it('accepts the named component, whatever host name was dialled', async () => {
    const client = channelCredentials(pki.files('gateway'), { expectedName: 'goods' });
    await expect(whoAmI(port, client)).resolves.toEqual(['spiffe://shop/gateway']);
    await expect(
      whoAmI(port, channelCredentials(pki.files('gateway'), { expectedName: 'goods' }), {
        'grpc.ssl_target_name_override': 'elsewhere.example',
      }),
    ).resolves.toEqual(['spiffe://shop/gateway']);
  });
});

describe('rotation without restart', () => {
  it('serves a replaced server certificate to new connections', async () => {
    const server = rotatable('goods', pki.files('goods'));
    // The server trusts both CAs, as in a CA rotation: a certificate its CA file does not issue
    // would not be taken (see "keeps a certificate its CA file issued").
    replaceFile(pki.bothCasFile, server.caFile);
    const port = await startServer(serverCredentials(server, REFRESH));
    // This client trusts only the other CA: the current certificate is not good enough for it.
    const trustsOtherCa = () =>
      channelCredentials({ ...pki.foreignFiles('gateway'), caFile: pki.otherCaFile });
    await expect(whoAmI(port, trustsOtherCa())).rejects.toMatchObject(UNAVAILABLE);

    installCertificate(pki.foreignFiles('goods'), server.folder, 'goods');

    await vi.waitFor(() => whoAmI(port, trustsOtherCa()), WAIT);
    // The client that trusts the first CA only is now the one refused.
    await expect(whoAmI(port, channelCredentials(pki.files('gateway')))).rejects.toMatchObject(UNAVAILABLE);
  });

  it('accepts clients of a replaced CA file', async () => {
    const server = rotatable('goods', pki.files('goods'));
    const port = await startServer(serverCredentials(server, REFRESH));
    const foreigner = channelCredentials(pki.foreignFiles('gateway'));
    await expect(whoAmI(port, foreigner)).rejects.toMatchObject(UNAVAILABLE);

    replaceFile(pki.otherCaFile, server.caFile);

    await vi.waitFor(() => whoAmI(port, channelCredentials(pki.foreignFiles('gateway'))), WAIT);
  });

  it('presents a replaced client certificate, on the same credentials', async () => {
    const port = await startServer(serverCredentials(pki.files('goods')));
    const client = rotatable('gateway', pki.foreignFiles('gateway'));
    const credentials = channelCredentials(client, REFRESH);
    // A subchannel of its own per call, so that a refused one in backoff does not get reused.
    const ownSubchannel = { 'grpc.use_local_subchannel_pool': 1 };
    await expect(whoAmI(port, credentials, ownSubchannel)).rejects.toMatchObject(UNAVAILABLE);

    installCertificate(pki.files('gateway'), client.folder, 'gateway');

    await vi.waitFor(() => whoAmI(port, credentials, ownSubchannel), WAIT);
  });

  it('keeps its own identity: a replaced certificate of another component is reported and not served', async () => {
    const server = rotatable('goods', pki.files('goods'));
    const onReloadError = vi.fn();
    const port = await startServer(serverCredentials(server, { ...REFRESH, onReloadError }));
    // The gateway dials goods as the distributor listed it: secure naming wants goods' identity.
    const asGoods = () => channelCredentials(pki.files('gateway'), { expectedName: 'goods' });
    await expect(whoAmI(port, asGoods())).resolves.toEqual(['spiffe://shop/gateway']);

    installCertificate(pki.files('members'), server.folder, 'goods');

    await vi.waitFor(() => expect(onReloadError).toHaveBeenCalledOnce(), WAIT);
    expect(String(onReloadError.mock.calls[0]![0].message)).toContain(
      `TLS certificate file "${server.certFile}" names spiffe://shop/members, not spiffe://shop/goods as the certificate in use does`,
    );
    await expect(whoAmI(port, asGoods())).resolves.toEqual(['spiffe://shop/gateway']);
  });

  it('keeps its own identity on a channel dialled again after none was open: a certificate of another component is not presented', async () => {
    // Read again unchecked as a channel was dialled after an idle spell (no connection, no watcher),
    // the members certificate the watcher refused was presented, and then watched as the one in use.
    const port = await startServer(serverCredentials(pki.files('goods')));
    const client = rotatable('gateway', pki.files('gateway'));
    const credentials = channelCredentials(client, REFRESH);
    const ownSubchannel = { 'grpc.use_local_subchannel_pool': 1 };
    await expect(whoAmI(port, credentials, ownSubchannel)).resolves.toEqual(['spiffe://shop/gateway']);

    installCertificate(pki.files('members'), client.folder, 'gateway');

    // whoAmI closed its channel: the next one starts the files' watch again.
    await expect(whoAmI(port, credentials, ownSubchannel)).resolves.toEqual(['spiffe://shop/gateway']);
  });

  it('keeps a certificate its CA file issued: a renewed one of another CA is reported and not served', async () => {
    // Found rotating an mTLS shop across hosts: a goods certificate of another `npm run certs`
    // run, copied over the watched files, was taken without a word, and every new handshake failed.
    const server = rotatable('goods', pki.files('goods'));
    const onReloadError = vi.fn();
    const port = await startServer(serverCredentials(server, { ...REFRESH, onReloadError }));
    const asGateway = () => channelCredentials(pki.files('gateway'), { expectedName: 'goods' });
    await expect(whoAmI(port, asGateway())).resolves.toEqual(['spiffe://shop/gateway']);

    installCertificate(pki.foreignFiles('goods'), server.folder, 'goods');

    await vi.waitFor(() => expect(onReloadError).toHaveBeenCalledOnce(), WAIT);
    expect(String(onReloadError.mock.calls[0]![0].message)).toContain(
      `TLS certificate file "${server.certFile}" is not issued by a CA of TLS CA file "${server.caFile}", as the certificate in use is`,
    );
    await expect(whoAmI(port, asGateway())).resolves.toEqual(['spiffe://shop/gateway']);

    // A CA file that trusts both CAs (the first step of a CA rotation) lets the new one in.
    replaceFile(pki.bothCasFile, server.caFile);
    const onChange = vi.fn();
    const stop = watchTlsFiles(
      server,
      readTlsFiles({ ...server, certFile: pki.files('goods').certFile, keyFile: pki.files('goods').keyFile }),
      onChange,
      REFRESH,
    );
    try {
      await vi.waitFor(() => expect(onChange).toHaveBeenCalledOnce(), WAIT);
      expect(onChange.mock.calls[0]![0].cert).toEqual(readFileSync(pki.foreignFiles('goods').certFile));
    } finally {
      stop();
    }
  });

  it('says what it took: the certificate file with its new end, the CA file with its CAs; a new certificate alone as one taken', async () => {
    const files = rotatable('goods', pki.files('goods'));
    const onReload = vi.fn();
    const onCertificateTaken = vi.fn();
    const stop = watchTlsFiles(files, readTlsFiles(files), () => {}, {
      ...REFRESH,
      onReload,
      onCertificateTaken,
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(onReload).not.toHaveBeenCalled();
      expect(onCertificateTaken).not.toHaveBeenCalled();
      const renewed = pki.issue('goods-reloaded', { identity: 'goods' });
      installCertificate(renewed, files.folder, 'goods');
      await vi.waitFor(() => expect(onReload).toHaveBeenCalledOnce(), WAIT);
      const certificate = new X509Certificate(readFileSync(renewed.certFile));
      expect(onReload).toHaveBeenLastCalledWith({
        role: 'certFile',
        file: files.certFile,
        validTo: new Date(certificate.validTo),
        fingerprint: certificate.fingerprint256,
        certificates: 1,
      });
      expect(onCertificateTaken).toHaveBeenCalledOnce();
      replaceFile(pki.bothCasFile, files.caFile);
      await vi.waitFor(() => expect(onReload).toHaveBeenCalledTimes(2), WAIT);
      expect(onReload).toHaveBeenLastCalledWith(
        expect.objectContaining({ role: 'caFile', file: files.caFile, certificates: 2 }),
      );
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(onReload).toHaveBeenCalledTimes(2);
      // The CA file's change is no new certificate.
      expect(onCertificateTaken).toHaveBeenCalledOnce();
    } finally {
      stop();
    }
  });

  it('tells a renewed certificate before a CA file taken in the same read', async () => {
    // A renewal and a CA removed at once (a CA rotation's last step met by a renewal): the
    // registration's move for the renewal must be under way when the CA check looks, or the check
    // starts a move of its own and the renewal queues a second one (two rejoins where one would do).
    const files = rotatable('goods', { ...pki.files('goods'), caFile: pki.caFile });
    // In use: a certificate of the other CA, with a CA file of both; on disk, both changed.
    const before = readTlsFiles({ ...pki.foreignFiles('goods'), caFile: pki.bothCasFile });
    const told: string[] = [];
    const stop = watchTlsFiles(files, before, () => {}, {
      ...REFRESH,
      onCertificateTaken: () => told.push('certificate'),
      onCaTaken: () => told.push('ca'),
    });
    try {
      await vi.waitFor(() => expect(told).toHaveLength(2), WAIT);
      expect(told).toEqual(['certificate', 'ca']);
    } finally {
      stop();
    }
  });

  it("is logged once for all of a component's credentials, at info", () => {
    const { log, lines } = captureLog('goods');
    const problems = tlsProblemLog(log);
    const validTo = new Date('2030-01-01T00:00:00.000Z');
    for (let copy = 0; copy < 3; copy++) {
      problems.onReload({
        role: 'certFile',
        file: 'goods.crt',
        setting: '--tls-cert (TLS_CERT)',
        validTo,
        fingerprint: 'AA:BB',
        certificates: 1,
      });
      problems.onReload({ role: 'caFile', file: 'ca.crt', validTo, certificates: 2 });
    }
    expect(lines.map((line) => [line.level, line.event, line.msg])).toEqual([
      [
        30,
        'tls-reloaded',
        'TLS certificate file "goods.crt" from --tls-cert (TLS_CERT) changed: new connections present its new certificate (valid until 2030-01-01T00:00:00.000Z)',
      ],
      [
        30,
        'tls-reloaded',
        'TLS CA file "ca.crt" changed: new connections check peers against its 2 CA certificates (the first to end: 2030-01-01T00:00:00.000Z)',
      ],
    ]);
  });

  it('keeps the last good files and reports a key that does not belong to the certificate', async () => {
    const server = rotatable('goods', pki.files('goods'));
    const onReloadError = vi.fn();
    const port = await startServer(serverCredentials(server, { ...REFRESH, onReloadError }));

    replaceFile(pki.files('members').keyFile, server.keyFile);

    await vi.waitFor(() => expect(onReloadError).toHaveBeenCalledOnce(), WAIT);
    expect(onReloadError.mock.calls[0]![0]).toBeInstanceOf(ConfigError);
    expect(String(onReloadError.mock.calls[0]![0].message)).toContain('is not the key of');
    await expect(whoAmI(port, channelCredentials(pki.files('gateway')))).resolves.toEqual([
      'spiffe://shop/gateway',
    ]);
  });
});

/**
 * The certificate of `name` (its key and identity) issued again by the test CA, valid only from
 * `notBefore` (UTC, "YYYYMMDDHHMMSSZ"): `openssl x509 -req` of OpenSSL 3.0 cannot set a start date.
 */
function issueValidFrom(name: string, notBefore: string): string {
  const scratch = mkdtempSync(join(dir, 'future-'));
  const csr = join(scratch, 'leaf.csr');
  const certFile = join(scratch, `${name}.crt`);
  execFileSync(
    'openssl',
    ['req', '-new', '-key', pki.files(name).keyFile, '-subj', `/CN=${name}`, '-out', csr],
    {
      stdio: 'ignore',
    },
  );
  opensslCaSign({
    dir: scratch,
    csr,
    out: certFile,
    issuer: { certFile: pki.caFile, keyFile: pki.caFile.replace(/\.crt$/, '.key') },
    extensions: [
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature',
      'extendedKeyUsage = serverAuth, clientAuth',
      `subjectAltName = URI:spiffe://shop/${name}, DNS:localhost, IP:127.0.0.1`,
    ],
    startDate: notBefore,
    endDate: '20991231000000Z',
  });
  return certFile;
}

describe('a renewer that rewrites the same files in place', () => {
  afterEach(() => vi.useRealTimers());

  it('is not reported when two reads far apart each catch a file empty: only two reads in a row are', async () => {
    const files = rotatable('goods', pki.files('goods'));
    const cert = readFileSync(files.certFile);
    const onReloadError = vi.fn();
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const stop = watchTlsFiles(files, readTlsFiles(files), () => {}, {
      refreshIntervalMs: 1_000,
      onReloadError,
    });
    /** One more read of the files, the state they are in now. */
    const read = async (): Promise<void> => {
      vi.advanceTimersByTime(1_000);
      await new Promise((resolve) => setTimeout(resolve, 150));
    };
    try {
      await new Promise((resolve) => setTimeout(resolve, 150));
      // Caught empty, between the renewer's truncation and its write; then the same files again.
      writeFileSync(files.certFile, '');
      await read();
      writeFileSync(files.certFile, cert);
      await read();
      await read();
      // Caught so again, later: news of its own, not the second of two reads in a row.
      writeFileSync(files.certFile, '');
      await read();
      expect(onReloadError).not.toHaveBeenCalled();
      // Found so by the next read too: reported.
      await read();
      expect(onReloadError).toHaveBeenCalledOnce();
      expect(String(onReloadError.mock.calls[0]![0].message)).toContain('expected a PEM certificate');
    } finally {
      stop();
    }
  });
});

describe('a certificate that is not valid yet', () => {
  it('is refused at start, naming the file and the date', () => {
    const certFile = issueValidFrom('goods', '20980101000000Z');
    expect(() => serverCredentials({ ...pki.files('goods'), certFile })).toThrow(
      `TLS certificate file "${certFile}" is not valid before 2098-01-01T00:00:00.000Z`,
    );
  });

  it("on a host whose clock is a day behind, names this host's clock as the likely cause, and by how much", () => {
    const certFile = issueValidFrom('goods', utcTime(new Date(Date.now() - 3_600_000)));
    const hostNow = new Date(Date.now() - 86_400_000);
    vi.useFakeTimers({ toFake: ['Date'], now: hostNow });
    try {
      expect(() => serverCredentials({ ...pki.files('goods'), certFile })).toThrow(
        ", 23 h after this host's clock: if it was issued since then, this host's clock is behind",
      );
    } finally {
      vi.useRealTimers();
    }
  });

  it('is taken when it starts within the clock skew between machines (5 minutes): issued just now on a machine a little ahead', () => {
    const inTwoMinutes = new Date(Date.now() + 2 * 60_000).toISOString().replace(/[-:T]/g, '').slice(0, 14);
    const certFile = issueValidFrom('goods', `${inTwoMinutes}Z`);
    expect(() => serverCredentials({ ...pki.files('goods'), certFile })).not.toThrow();
  });

  it('is not taken on a re-read: peers would refuse every new handshake ("certificate is not yet valid")', async () => {
    const server = rotatable('goods', pki.files('goods'));
    const onReloadError = vi.fn();
    const port = await startServer(serverCredentials(server, { ...REFRESH, onReloadError }));
    const gateway = () => channelCredentials(pki.files('gateway'));
    await expect(whoAmI(port, gateway())).resolves.toEqual(['spiffe://shop/gateway']);

    replaceFile(issueValidFrom('goods', '20980101000000Z'), server.certFile);

    await vi.waitFor(() => expect(onReloadError).toHaveBeenCalledOnce(), WAIT);
    expect(String(onReloadError.mock.calls[0]![0].message)).toContain('is not valid before 2098-01-01');
    await expect(whoAmI(port, gateway())).resolves.toEqual(['spiffe://shop/gateway']);
  });

  it('is not taken on a re-read either when it starts within the clock skew: the one in use still works', async () => {
    const server = rotatable('goods', pki.files('goods'));
    const onReloadError = vi.fn();
    const port = await startServer(serverCredentials(server, { ...REFRESH, onReloadError }));
    const gateway = () => channelCredentials(pki.files('gateway'));

    const notBefore = new Date(Date.now() + 2 * 60_000);
    replaceFile(issueValidFrom('goods', utcTime(notBefore)), server.certFile);

    await vi.waitFor(() => expect(onReloadError).toHaveBeenCalledOnce(), WAIT);
    expect(String(onReloadError.mock.calls[0]![0].message)).toContain(
      `is not valid before ${new Date(Math.floor(notBefore.getTime() / 1000) * 1000).toISOString()}`,
    );
    await expect(whoAmI(port, gateway())).resolves.toEqual(['spiffe://shop/gateway']);
  });

  it('is taken at the first re-read after its start', async () => {
    const server = rotatable('goods', pki.files('goods'));
    const initial = readTlsFiles(server);
    const future = issueValidFrom('goods', utcTime(new Date(Date.now() + 2 * 60_000)));
    const onChange = vi.fn();
    vi.useFakeTimers({ toFake: ['Date'] });
    const stop = watchTlsFiles(server, initial, onChange, REFRESH);
    try {
      replaceFile(future, server.certFile);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(onChange).not.toHaveBeenCalled();
      vi.setSystemTime(Date.now() + 3 * 60_000);
      await vi.waitFor(() => expect(onChange).toHaveBeenCalledOnce(), WAIT);
      expect(onChange.mock.calls[0]![0].cert).toEqual(readFileSync(future));
    } finally {
      stop();
      vi.useRealTimers();
    }
  });
});

/** `date` as openssl's UTC time, "YYYYMMDDHHMMSSZ". */
function utcTime(date: Date): string {
  return `${date.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

describe('a certificate in use that nears its end', () => {
  afterEach(() => vi.useRealTimers());

  it('is told once when it expires within a week and once when it has expired, though its files never change', async () => {
    const files = pki.files('goods');
    const validTo = new Date(new X509Certificate(readFileSync(files.certFile)).validTo);
    const onExpiry = vi.fn();
    const stop = watchTlsFiles(files, readTlsFiles(files), () => {}, { ...REFRESH, onExpiry });
    try {
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(validTo.getTime() - EXPIRY_WARNING_MS - 60_000);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(onExpiry).not.toHaveBeenCalled();
      vi.setSystemTime(validTo.getTime() - 24 * 60 * 60 * 1000);
      await vi.waitFor(() => expect(onExpiry).toHaveBeenCalledOnce(), WAIT);
      expect(onExpiry).toHaveBeenLastCalledWith({ file: files.certFile, validTo, expired: false });
      vi.setSystemTime(validTo.getTime() + 1_000);
      await vi.waitFor(() => expect(onExpiry).toHaveBeenCalledTimes(2), WAIT);
      expect(onExpiry).toHaveBeenLastCalledWith({ file: files.certFile, validTo, expired: true });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(onExpiry).toHaveBeenCalledTimes(2);
      // The CA's end is checked too: it fails every handshake just the same.
      const caValidTo = new Date(new X509Certificate(readFileSync(files.caFile!)).validTo);
      vi.setSystemTime(caValidTo.getTime() - 24 * 60 * 60 * 1000);
      await vi.waitFor(
        () =>
          expect(onExpiry).toHaveBeenCalledWith({
            file: files.caFile,
            validTo: caValidTo,
            expired: false,
            ca: 'CN=test CA',
          }),
        WAIT,
      );
    } finally {
      stop();
    }
  });

  it('is told of a short-lived certificate in the last twentieth of its life only, not as soon as it is taken', async () => {
    // A day's certificate (and the hour `npm run certs` backdates it by), as a rotation tool issues
    // short-lived ones: within a week of its end from the start, which is no news.
    const issued = pki.issue('goods-daily', { identity: 'goods', days: 1 });
    const files = { caFile: pki.caFile, ...issued };
    const certificate = new X509Certificate(readFileSync(files.certFile));
    const validTo = new Date(certificate.validTo);
    const life = validTo.getTime() - Date.parse(certificate.validFrom);
    const onExpiry = vi.fn();
    vi.useFakeTimers({ toFake: ['Date'] });
    const stop = watchTlsFiles(files, readTlsFiles(files), () => {}, { ...REFRESH, onExpiry });
    try {
      // Two thirds into its life, when step-ca and cert-manager renew it; then a tenth before its end.
      for (const left of [life / 3, life / 10]) {
        vi.setSystemTime(validTo.getTime() - left);
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(onExpiry).not.toHaveBeenCalled();
      }
      vi.setSystemTime(validTo.getTime() - life / 25);
      await vi.waitFor(() => expect(onExpiry).toHaveBeenCalledOnce(), WAIT);
      expect(onExpiry).toHaveBeenLastCalledWith({ file: files.certFile, validTo, expired: false });
    } finally {
      stop();
    }
  });

  it("is told of a 90-day certificate (Let's Encrypt's, cert-manager's default) a week before its end, as of a long-lived one", async () => {
    // Its renewers replace it 30 (certbot, cert-manager) to 9 days (at a tenth of its life) before
    // its end: a week leaves them time, and a twentieth of its life (4.5 days) left a failed
    // renewal of the gateway's public certificate 2.5 days less to be seen to.
    const files = { caFile: pki.caFile, ...pki.issue('goods-90', { identity: 'goods', days: 90 }) };
    const validTo = new Date(new X509Certificate(readFileSync(files.certFile)).validTo);
    const day = 24 * 60 * 60 * 1000;
    const onExpiry = vi.fn();
    vi.useFakeTimers({ toFake: ['Date'] });
    const stop = watchTlsFiles(files, readTlsFiles(files), () => {}, { ...REFRESH, onExpiry });
    try {
      vi.setSystemTime(validTo.getTime() - 9 * day);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(onExpiry).not.toHaveBeenCalled();
      vi.setSystemTime(validTo.getTime() - 6.5 * day);
      await vi.waitFor(() => expect(onExpiry).toHaveBeenCalledOnce(), WAIT);
      expect(onExpiry).toHaveBeenLastCalledWith({ file: files.certFile, validTo, expired: false });
    } finally {
      stop();
    }
  });

  it('is judged after the files are read: a certificate renewal replaced is not told of', async () => {
    const folder = mkdtempSync(join(dir, 'late-renewal-'));
    const old = installCertificate(pki.issue('goods-old', { identity: 'goods', days: 1 }), folder, 'goods');
    const files = { caFile: pki.caFile, ...old };
    const initial = readTlsFiles(files);
    const oldValidTo = Date.parse(new X509Certificate(initial.cert!).validTo);
    // Renewed late, in the last hour of the old one, but before anything read the files again.
    installCertificate(pki.issue('goods-new', { identity: 'goods', days: 2 }), folder, 'goods');
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(oldValidTo - 30 * 60_000);
    const onChange = vi.fn();
    const onExpiry = vi.fn();
    const stop = watchTlsFiles(files, initial, onChange, { ...REFRESH, onExpiry });
    try {
      await vi.waitFor(() => expect(onChange).toHaveBeenCalledOnce(), WAIT);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(onExpiry).not.toHaveBeenCalled();
    } finally {
      stop();
    }
  });

  it("is logged once for all of a component's credentials, as a failed reload is", () => {
    const { log, lines } = captureLog('goods');
    const problems = tlsProblemLog(log);
    const validTo = new Date('2030-01-01T00:00:00.000Z');
    for (let copy = 0; copy < 3; copy++) {
      problems.onExpiry({ file: 'goods.crt', validTo, expired: false });
      problems.onExpiry({ file: 'goods.crt', validTo, expired: true });
      problems.onReloadError(
        new ConfigError('TLS key file "goods.key" is not the key of TLS certificate file "goods.crt"'),
      );
    }
    expect(lines.map((line) => [line.level, line.event, line.msg])).toEqual([
      [
        40,
        'tls-certificate-expiring',
        'TLS certificate file "goods.crt" expires on 2030-01-01T00:00:00.000Z: renew it before then',
      ],
      [
        50,
        'tls-certificate-expired',
        'TLS certificate file "goods.crt" expired on 2030-01-01T00:00:00.000Z: peers refuse it; renew it',
      ],
      [
        50,
        'tls-reload-failed',
        'TLS key file "goods.key" is not the key of TLS certificate file "goods.crt": the TLS files in use before stay in use',
      ],
    ]);
  });

  it('names the setting that gave the file, when it is known', () => {
    const { log, lines } = captureLog('goods');
    const validTo = new Date('2030-01-01T00:00:00.000Z');
    tlsProblemLog(log).onExpiry({
      file: 'goods.crt',
      setting: '--tls-cert (TLS_CERT)',
      validTo,
      expired: false,
    });
    expect(lines.map((line) => [line.setting, line.msg])).toEqual([
      [
        '--tls-cert (TLS_CERT)',
        'TLS certificate file "goods.crt" from --tls-cert (TLS_CERT) expires on 2030-01-01T00:00:00.000Z: renew it before then',
      ],
    ]);
  });
});

describe('configuration errors', () => {
  // Found walking the short-lived certificates guide: `cat ca.key ca.crt > ca.pem` was taken without
  // a word, and the file that goes to every host carried the key that issues what they all trust.
  it('refuses a CA file that holds a private key, at start and on a re-read, without quoting the key', async () => {
    const caKey = pki.caFile.replace(/\.crt$/, '.key');
    const withCaKey = join(dir, 'ca-with-its-key.pem');
    writeFileSync(withCaKey, Buffer.concat([readFileSync(caKey), readFileSync(pki.caFile)]));
    const ofTheCa = `TLS CA file "${withCaKey}" holds the private key of its CA (CN=test CA): whoever is given the file can issue certificates its peers trust; take the key out (it belongs on the machine that issues certificates alone) and, if the file was handed out, make a new CA`;
    const goods = pki.files('goods');
    expect(() => serverCredentials({ ...goods, caFile: withCaKey })).toThrow(ofTheCa);
    expect(() => channelCredentials({ caFile: withCaKey })).toThrow(ofTheCa);
    const withOtherKey = join(dir, 'ca-with-a-key.pem');
    writeFileSync(withOtherKey, Buffer.concat([readFileSync(pki.caFile), readFileSync(goods.keyFile)]));
    expect(() => channelCredentials({ caFile: withOtherKey })).toThrow(
      `TLS CA file "${withOtherKey}" holds a private key: a CA file is handed to every host, and the key with it; give the CA certificates alone`,
    );
    // A component's own certificate and key (a combined PEM) given as the CA: not its CA's key.
    const ownPair = join(dir, 'goods-with-its-key.pem');
    writeFileSync(ownPair, Buffer.concat([readFileSync(goods.certFile), readFileSync(goods.keyFile)]));
    expect(() => channelCredentials({ caFile: ownPair })).toThrow(
      `TLS CA file "${ownPair}" holds a private key: a CA file is handed to every host, and the key with it; give the CA certificates alone`,
    );
    // A re-read keeps the files in use, and says why.
    const files = rotatable('goods-ca-key', goods);
    const errors: ConfigError[] = [];
    const stop = watchTlsFiles(files, readTlsFiles(files), () => {}, {
      ...REFRESH,
      onReloadError: (error) => errors.push(error),
    });
    try {
      replaceFile(withCaKey, files.caFile);
      await vi.waitFor(
        () =>
          expect(errors.map((error) => error.message)).toContain(ofTheCa.replace(withCaKey, files.caFile)),
        WAIT,
      );
    } finally {
      stop();
    }
    for (const error of errors) expect(error.message).not.toMatch(/PRIVATE KEY|MII/);
  });

  // Searched up to any END line, each BEGIN of a key without its own END read on to the end of the
  // file: a 1 MiB CA file of such lines, past the cut-short check, took over 10 s to check.
  it('finds a file of BEGIN lines without their END cut short in a moment, not after reading to its end for each', () => {
    // Each took seconds to tell at 1 MiB (cutShort, certificateBlocks, privateKeyBlocks), at every read.
    for (const line of [
      '-----BEGIN X-----\n',
      '-----BEGIN -----BEGIN CERTIFICATE-----\n-----END -----\n',
      '-----BEGIN -----BEGIN PRIVATE KEY-----\n-----END -----\n',
    ]) {
      const lines = join(dir, 'ca-with-begin-lines.pem');
      writeFileSync(
        lines,
        Buffer.concat([
          readFileSync(pki.caFile),
          Buffer.from(line.repeat(Math.floor(1_000_000 / line.length))),
        ]),
      );
      const started = performance.now();
      expect(() => readTlsFiles({ caFile: lines }, { settleMs: 0 })).toThrow(
        `TLS CA file "${lines}" is cut short: it has a PEM block without its END line`,
      );
      expect(performance.now() - started).toBeLessThan(2_000);
    }
  });

  it('names a missing file', () => {
    const missing = join(dir, 'missing.crt');
    const { keyFile } = pki.files('goods');
    expect(() => serverCredentials({ certFile: missing, keyFile })).toThrow(ConfigError);
    expect(() => serverCredentials({ certFile: missing, keyFile })).toThrow(
      `TLS certificate file "${missing}" cannot be read: no such file`,
    );
    expect(() => channelCredentials({ caFile: missing })).toThrow(`TLS CA file "${missing}"`);
  });

  it('names the setting that gave the file: its own, or TLS_DIR', () => {
    const load = (env: NodeJS.ProcessEnv) => tlsSettings(loadSettings(COMMON_SETTINGS, [], env), 'goods');
    const missing = join(dir, 'missing.crt');
    const { keyFile } = pki.files('goods');
    expect(() => serverCredentials(load({ TLS_CERT: missing, TLS_KEY: keyFile }))).toThrow(
      `TLS certificate file "${missing}" from --tls-cert (TLS_CERT) cannot be read: no such file`,
    );
    const empty = mkdtempSync(join(dir, 'empty-'));
    expect(() => serverCredentials(load({ TLS_DIR: empty }))).toThrow(
      `TLS CA file "${join(empty, 'ca.crt')}" from --tls-dir (TLS_DIR) cannot be read: no such file`,
    );
    // The certificate from TLS_DIR, the key of another one given by TLS_KEY.
    const mismatched = load({ TLS_DIR: pki.dir, TLS_KEY: pki.files('members').keyFile });
    expect(() => serverCredentials(mismatched)).toThrow(
      `TLS key file "${pki.files('members').keyFile}" from --tls-key (TLS_KEY) is not the key of TLS certificate file "${join(pki.dir, 'goods.crt')}" from --tls-dir (TLS_DIR)`,
    );
  });

  it("refuses a component's certificate that names another component, naming the file and its setting", () => {
    const load = (env: NodeJS.ProcessEnv) =>
      tlsSettings(loadSettings(COMMON_SETTINGS, [], env), 'distributor');
    // The distributor started with goods' files: every service and gateway would refuse its handshake.
    const goods = load({
      TLS_CA: pki.caFile,
      TLS_CERT: pki.files('goods').certFile,
      TLS_KEY: pki.files('goods').keyFile,
    })!;
    expect(() => checkOwnIdentity(goods, 'distributor')).toThrow(
      new ConfigError(
        `TLS certificate file "${pki.files('goods').certFile}" from --tls-cert (TLS_CERT) names spiffe://shop/goods, not spiffe://shop/distributor: the distributor needs its own certificate (distributor.crt of \`npm run certs\`), as its peers accept no other`,
        { showUsage: false },
      ),
    );
    expect(() => checkOwnIdentity(pki.files('goods'), 'goods')).not.toThrow();
  });

  it('refuses a certificate of another CA named as one of its CA file, on either side, naming the files and their settings', () => {
    // Found on hosts given the ca.crt of one `npm run certs` run and the certificates of another:
    // the component listened and dialled, and every peer refused its handshake.
    const load = (env: NodeJS.ProcessEnv) => tlsSettings(loadSettings(COMMON_SETTINGS, [], env), 'goods');
    const { certFile, keyFile } = pki.twinFiles('goods');
    const mixed = load({ TLS_CA: pki.caFile, TLS_CERT: certFile, TLS_KEY: keyFile });
    const refusal = new ConfigError(
      `TLS certificate file "${certFile}" from --tls-cert (TLS_CERT) names as its issuer "CN=test CA", a CA of TLS CA file "${pki.caFile}" from --tls-ca (TLS_CA), but was not signed by it: peers given the same CA would refuse it; use a certificate and a CA file of the same \`npm run certs\` run`,
      { showUsage: false },
    );
    expect(() => serverCredentials(mixed)).toThrow(refusal);
    expect(() => channelCredentials(mixed)).toThrow(refusal);
    // Without a CA file (the system's roots), or without a certificate, there is nothing to compare.
    expect(() => serverCredentials({ certFile, keyFile })).not.toThrow();
    expect(() => channelCredentials({ caFile: pki.caFile })).not.toThrow();
  });

  it('takes a certificate whose issuer its CA file does not name: one CA for some components, another for their peers', () => {
    // The gateway's certificate from one CA, the services' from another: the gateway checks the
    // services with theirs, and they check it with its own.
    const { certFile, keyFile } = pki.foreignFiles('goods');
    expect(() => serverCredentials({ caFile: pki.caFile, certFile, keyFile })).not.toThrow();
    expect(() => channelCredentials({ caFile: pki.caFile, certFile, keyFile })).not.toThrow();
    // A CA file that trusts its issuer too, as in a CA rotation, is enough.
    expect(() => serverCredentials({ caFile: pki.bothCasFile, certFile, keyFile })).not.toThrow();
  });

  it('refuses a certificate without its key, and a key of another certificate', () => {
    const { certFile } = pki.files('goods');
    expect(() => channelCredentials({ certFile })).toThrow(
      `TLS certificate file "${certFile}" needs a TLS key file to go with it`,
    );
    expect(() => serverCredentials({ caFile: pki.caFile })).toThrow(ConfigError);
    const keyFile = pki.files('members').keyFile;
    expect(() => serverCredentials({ certFile, keyFile })).toThrow('is not the key of');
  });

  it("refuses a key, certificate or CA given as the file's contents instead of its path (PEM text, its base64, a key's base64 body), without showing them", () => {
    const { certFile, keyFile } = pki.files('goods');
    const keyPem = readFileSync(keyFile, 'utf8');
    const body = keyPem.split('\n').filter((line) => line !== '' && !line.startsWith('-----'));
    const contents = [keyPem, Buffer.from(keyPem).toString('base64'), body.join(''), `${body.join('\n')}\n`];
    /** What a refusal said: its message, which must name the setting and hold none of the key. */
    const refusal = (load: () => unknown): string => {
      try {
        load();
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        const message = String(error);
        expect(message).not.toContain('PRIVATE KEY');
        for (const line of body) expect(message).not.toContain(line);
        return message;
      }
      throw new Error('not refused');
    };
    for (const value of contents) {
      for (const [table, env] of [
        [COMMON_SETTINGS, { TLS_KEY: value, TLS_CERT: certFile }],
        [COMMON_SETTINGS, { TLS_CERT: value, TLS_KEY: keyFile }],
        [COMMON_SETTINGS, { TLS_CA: value }],
        [GATEWAY_SETTINGS, { GATEWAY_HTTPS_KEY: value, GATEWAY_HTTPS_CERT: certFile }],
        [GATEWAY_SETTINGS, { GATEWAY_HTTPS_CLIENT_CA: value }],
      ] as const) {
        const [name] = Object.keys(env);
        expect(refusal(() => loadSettings(table, [], env))).toContain(
          `${name}: expected the path of a PEM file, got what looks like the contents of one (PEM text or its base64, not shown: it may be a private key): put them in a file and give its path`,
        );
      }
      // Read as a path all the same (by a caller that did not parse it): named without it.
      expect(refusal(() => readTlsFiles({ certFile, keyFile: value }))).toContain(
        'TLS key file (not a path but what looks like the contents of a PEM file: not shown) cannot be read',
      );
    }
    // A path stays a path, long or not, and is named.
    const long = join(dir, `${'a'.repeat(300)}.key`);
    expect(refusal(() => readTlsFiles({ certFile, keyFile: long }))).toBe(
      `ConfigError: TLS key file "${long}" cannot be read: ENAMETOOLONG: name too long, stat '…'`,
    );
    expect(loadSettings(COMMON_SETTINGS, [], { TLS_KEY: keyFile }).tlsKey).toBe(keyFile);
    // A path with a stray line break, as a value read from a file may end: named, not hidden.
    expect(refusal(() => readTlsFiles({ certFile, keyFile: `${keyFile}\n` }))).toContain(
      `TLS key file "${keyFile}\n" cannot be read: no such file`,
    );
  });

  it("refuses a certificate and key that node:tls refuses (a key too small for OpenSSL's security level), at start and on a re-read", async () => {
    const scratch = mkdtempSync(join(dir, 'weak-'));
    const weak = { certFile: join(scratch, 'weak.crt'), keyFile: join(scratch, 'weak.key') };
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:512', '-nodes', '-keyout', weak.keyFile, '-out', weak.certFile].concat(
        ['-days', '2', '-subj', '/CN=weak'],
      ),
      { stdio: 'ignore' },
    );
    expect(() => readTlsFiles(weak)).toThrow(
      `TLS certificate file "${weak.certFile}" and TLS key file "${weak.keyFile}" cannot be used for TLS (ee key too small): its key is too small for OpenSSL's security level`,
    );
    // A re-read keeps the pair in use: taken, the weak one failed every new handshake.
    const files = { certFile: join(scratch, 'in-use.crt'), keyFile: join(scratch, 'in-use.key') };
    replaceFile(pki.files('goods').certFile, files.certFile);
    replaceFile(pki.files('goods').keyFile, files.keyFile);
    const onChange = vi.fn();
    const onReloadError = vi.fn();
    const stop = watchTlsFiles(
      files,
      readTlsFiles(files),
      onChange,
      { ...REFRESH, onReloadError },
      { sameIdentity: false },
    );
    try {
      replaceFile(weak.certFile, files.certFile);
      replaceFile(weak.keyFile, files.keyFile);
      await vi.waitFor(() => expect(onReloadError).toHaveBeenCalledOnce(), WAIT);
      expect(String(onReloadError.mock.calls[0]![0].message)).toContain(
        'cannot be used for TLS (ee key too small)',
      );
      expect(onChange).not.toHaveBeenCalled();
    } finally {
      stop();
    }
  });

  it('refuses a CA file that holds no certificate', () => {
    const garbage = join(dir, 'garbage.crt');
    writeFileSync(garbage, 'not a certificate\n');
    expect(() => channelCredentials({ caFile: garbage })).toThrow(
      `TLS CA file "${garbage}": expected PEM certificates`,
    );
  });
});

/**
 * Makes a FIFO at `path`, with a writer that, after a second, keeps opening and closing it: were
 * the FIFO opened for reading (which waits for a writer, even in a synchronous call that vitest
 * cannot interrupt), the read would end and the test fail instead of hanging the run. Returns the
 * function that stops the writer.
 */
function fifoThatCannotHang(path: string): () => void {
  execFileSync('mkfifo', [path]);
  const writer = spawn('sh', ['-c', 'sleep 1; while :; do : > "$0"; sleep 0.1; done', path], {
    stdio: 'ignore',
  });
  return () => writer.kill('SIGKILL');
}

describe('files caught midway through a rotation at start', () => {
  /** A pair as a renewer leaves it between writing the new key and the new certificate. */
  function halfRenewed(): Required<TlsFilePaths> & { renewed: { certFile: string; keyFile: string } } {
    const files = rotatable('goods', pki.files('goods'));
    const renewed = pki.issue('goods-half', { identity: 'goods' });
    replaceFile(renewed.keyFile, files.keyFile);
    return { ...files, renewed };
  }

  it('are read again until the pair matches: a component started then starts, where it stopped with exit 2', () => {
    const files = halfRenewed();
    // Another process writes the certificate a moment later, as the renewer does; this one waits
    // without an event loop, as a component being started does.
    const writer = spawn('sh', [
      '-c',
      `sleep 0.3; cp "${files.renewed.certFile}" "${files.certFile}.new"; mv "${files.certFile}.new" "${files.certFile}"`,
    ]);
    try {
      const startedAt = performance.now();
      const material = readTlsFiles(files);
      expect(performance.now() - startedAt).toBeGreaterThan(200);
      expect(material.cert).toEqual(readFileSync(files.renewed.certFile));
      expect(material.key).toEqual(readFileSync(files.renewed.keyFile));
    } finally {
      writer.kill();
    }
  });

  it('wait for a file a renewer deleted before writing it again, and name it missing once settleMs has passed', () => {
    const files = rotatable('goods', pki.files('goods'));
    const renewed = pki.issue('goods-deleted', { identity: 'goods' });
    rmSync(files.certFile);
    replaceFile(renewed.keyFile, files.keyFile);
    const writer = spawn('sh', ['-c', `sleep 0.3; cp "${renewed.certFile}" "${files.certFile}"`]);
    try {
      const startedAt = performance.now();
      const material = readTlsFiles(files);
      expect(performance.now() - startedAt).toBeGreaterThan(200);
      expect(material.cert).toEqual(readFileSync(renewed.certFile));
    } finally {
      writer.kill();
    }
    rmSync(files.certFile);
    const startedAt = performance.now();
    expect(() => readTlsFiles(files, { settleMs: 300 })).toThrow(
      `TLS certificate file "${files.certFile}" cannot be read: no such file`,
    );
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(300);
  });

  it('stop it once they have not settled within settleMs, and a problem no rotation causes stops it at once', () => {
    const files = halfRenewed();
    let startedAt = performance.now();
    expect(() => readTlsFiles(files, { settleMs: 300 })).toThrow(/is not the key of/);
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(300);
    const notCa = { ...pki.files('goods'), caFile: pki.files('members').certFile };
    startedAt = performance.now();
    expect(() => readTlsFiles(notCa)).toThrow(/is not a CA/);
    expect(performance.now() - startedAt).toBeLessThan(100);
  });

  it('read a CA file or a certificate chain cut short after a whole block again, as one cut anywhere else', () => {
    const folder = mkdtempSync(join(dir, 'cut-short-'));
    const goods = pki.files('goods');
    // A CA rotation's first step written in place: the old CA whole, the new one half-written.
    const both = readFileSync(pki.bothCasFile);
    const caFile = join(folder, 'ca.crt');
    writeFileSync(caFile, both.subarray(0, both.length - 40));
    const writer = spawn('sh', ['-c', `sleep 0.3; cp "${pki.bothCasFile}" "${caFile}"`]);
    try {
      // Taken once whole, not without the new CA (node:tls would have dropped its broken block).
      expect(readTlsFiles({ ...goods, caFile }).ca).toEqual(both);
    } finally {
      writer.kill();
    }
    writeFileSync(caFile, both.subarray(0, both.length - 40));
    let startedAt = performance.now();
    expect(() => readTlsFiles({ ...goods, caFile }, { settleMs: 300 })).toThrow(
      /TLS CA file ".*" is cut short: it has a PEM block without its END line/,
    );
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(300);
    // A certificate followed by its chain (cert-manager's tls.crt), cut in the chain: read again,
    // where node:tls refused it at once ("bad end line").
    const chain = Buffer.concat([readFileSync(goods.certFile), readFileSync(goods.caFile)]);
    const certFile = join(folder, 'goods.crt');
    writeFileSync(certFile, chain.subarray(0, chain.length - 40));
    startedAt = performance.now();
    expect(() => readTlsFiles({ ...goods, certFile }, { settleMs: 300 })).toThrow(
      /TLS certificate file ".*" is cut short/,
    );
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(300);
  });
});

describe('TLS files that are not regular files, or too large', () => {
  it('refuses a device such as /dev/zero, which never ends, naming what it is', () => {
    const { keyFile } = pki.files('goods');
    expect(() => serverCredentials({ certFile: '/dev/zero', keyFile })).toThrow(ConfigError);
    expect(() => serverCredentials({ certFile: '/dev/zero', keyFile })).toThrow(
      'TLS certificate file "/dev/zero" is not a regular file: it is a character device',
    );
    expect(() => channelCredentials({ caFile: '/dev/zero' })).toThrow('is not a regular file');
  });

  it('refuses a FIFO at once, without waiting for a writer', () => {
    const fifo = join(dir, 'fifo.crt');
    const stopWriter = fifoThatCannotHang(fifo);
    try {
      const startedAt = performance.now();
      expect(() => channelCredentials({ caFile: fifo })).toThrow(
        `TLS CA file "${fifo}" is not a regular file: it is a FIFO`,
      );
      expect(performance.now() - startedAt).toBeLessThan(500);
    } finally {
      stopWriter();
    }
  });

  it('refuses a file over 1 MiB', () => {
    const large = join(dir, 'large.crt');
    writeFileSync(large, Buffer.alloc(MAX_TLS_FILE_BYTES + 1, 'A'));
    expect(() => channelCredentials({ caFile: large })).toThrow(
      `TLS CA file "${large}" is larger than 1 MiB (${MAX_TLS_FILE_BYTES + 1} bytes): not a PEM file`,
    );
  });

  it('reads a symlink to a regular file, as rotation tools make them, but not one to a device', () => {
    const links = mkdtempSync(join(dir, 'links-'));
    const files = pki.files('goods');
    const linked = {
      caFile: join(links, 'ca.crt'),
      certFile: join(links, 'goods.crt'),
      keyFile: join(links, 'goods.key'),
    };
    symlinkSync(files.caFile, linked.caFile);
    symlinkSync(files.certFile, linked.certFile);
    symlinkSync(files.keyFile, linked.keyFile);
    expect(readTlsFiles(linked)).toEqual(readTlsFiles(files));
    const toDevice = join(links, 'zero.crt');
    symlinkSync('/dev/zero', toDevice);
    expect(() => readTlsFiles({ ...linked, certFile: toDevice })).toThrow(
      `TLS certificate file "${toDevice}" is not a regular file: it is a character device`,
    );
  });

  it('follows a Kubernetes secret volume: tls.crt -> ..data/tls.crt, and ..data swapped to a new folder in one rename', async () => {
    const volume = mkdtempSync(join(dir, 'secret-volume-'));
    const publish = (folder: string, from: Required<TlsFilePaths>): void => {
      mkdirSync(join(volume, folder));
      replaceFile(from.caFile, join(volume, folder, 'ca.crt'));
      replaceFile(from.certFile, join(volume, folder, 'tls.crt'));
      replaceFile(from.keyFile, join(volume, folder, 'tls.key'));
      symlinkSync(folder, join(volume, '..data_tmp'));
      renameSync(join(volume, '..data_tmp'), join(volume, '..data'));
    };
    publish('..2026_01_01_00_00_00.1', pki.files('goods'));
    for (const file of ['ca.crt', 'tls.crt', 'tls.key']) symlinkSync(`..data/${file}`, join(volume, file));
    const files = {
      caFile: join(volume, 'ca.crt'),
      certFile: join(volume, 'tls.crt'),
      keyFile: join(volume, 'tls.key'),
    };
    const onChange = vi.fn();
    const stop = watchTlsFiles(files, readTlsFiles(files), onChange, REFRESH);
    try {
      const renewed = { caFile: pki.caFile, ...pki.issue('goods-k8s', { identity: 'goods' }) };
      // The kubelet writes the new folder, swaps ..data, then removes the old folder: the files
      // themselves (symlinks) never change, nor do their own mtimes.
      publish('..2026_01_01_00_02_00.2', renewed);
      rmSync(join(volume, '..2026_01_01_00_00_00.1'), { recursive: true });
      await vi.waitFor(() => expect(onChange).toHaveBeenCalledOnce(), WAIT);
      expect(onChange.mock.calls[0]![0].cert).toEqual(readFileSync(renewed.certFile));
      expect(onChange.mock.calls[0]![0].key).toEqual(readFileSync(renewed.keyFile));
    } finally {
      stop();
    }
  });

  it('on a re-read, keeps the last good files when one became a FIFO, and takes a symlink to new ones', async () => {
    const files = rotatable('goods', pki.files('goods'));
    const onChange = vi.fn();
    const onReloadError = vi.fn();
    const stop = watchTlsFiles(files, readTlsFiles(files), onChange, { ...REFRESH, onReloadError });
    const staged = join(files.folder, 'staged-fifo');
    const stopWriter = fifoThatCannotHang(staged);
    try {
      renameSync(staged, files.certFile);
      await vi.waitFor(() => expect(onReloadError).toHaveBeenCalledOnce(), WAIT);
      expect(onReloadError.mock.calls[0]![0]).toBeInstanceOf(ConfigError);
      expect(onReloadError.mock.calls[0]![0].message).toBe(
        `TLS certificate file "${files.certFile}" is not a regular file: it is a FIFO`,
      );
      expect(onChange).not.toHaveBeenCalled();

      // A renewed certificate of goods (a component keeps its identity through a rotation).
      const renewed = pki.issue('goods-renewed', { identity: 'goods' });
      for (const [target, link] of [
        [renewed.keyFile, files.keyFile],
        [renewed.certFile, files.certFile],
      ] as const) {
        symlinkSync(target, `${link}.link`);
        renameSync(`${link}.link`, link);
      }
      await vi.waitFor(() => expect(onChange).toHaveBeenCalled(), WAIT);
      expect(onChange.mock.lastCall![0].cert).toEqual(readFileSync(renewed.certFile));
    } finally {
      stop();
      stopWriter();
    }
  });
});

describe('a CA file that holds a certificate that is not a CA', () => {
  it("is refused at start, naming it, while the shop's own CA (made as npm run certs makes it) is taken", () => {
    const { certFile, keyFile, caFile } = pki.files('goods');
    expect(new X509Certificate(readFileSync(caFile)).ca).toBe(true);
    expect(() => serverCredentials({ caFile, certFile, keyFile })).not.toThrow();
    const leaf = pki.files('members').certFile;
    expect(() => serverCredentials({ caFile: leaf, certFile, keyFile })).toThrow(ConfigError);
    expect(() => channelCredentials({ caFile: leaf })).toThrow(
      `TLS CA file "${leaf}" holds a certificate that is not a CA (CN=members): give the certificate of the CA that issued the peers' certificates`,
    );
    // A bundle with one leaf among its CAs, as well.
    const bundle = join(dir, 'bundle-with-leaf.crt');
    writeFileSync(bundle, Buffer.concat([readFileSync(caFile), readFileSync(leaf)]));
    expect(() => channelCredentials({ caFile: bundle })).toThrow('holds a certificate that is not a CA');
  });

  it('is told from an X.509 version 1 root, which has no basicConstraints and which node:tls accepts as a CA', () => {
    const folder = mkdtempSync(join(dir, 'v1-'));
    const path = (file: string) => join(folder, file);
    const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path('v1.key'));
    for (const name of ['root', 'leaf']) {
      openssl('req', '-new', '-key', path('v1.key'), '-subj', `/CN=v1 ${name}`, '-out', path(`${name}.csr`));
    }
    // openssl x509 -req without extensions makes version 1 certificates: a root, and one it issued.
    openssl(
      'x509',
      '-req',
      '-in',
      path('root.csr'),
      '-signkey',
      path('v1.key'),
      '-days',
      '2',
      '-out',
      path('root.crt'),
    );
    openssl(
      'x509',
      '-req',
      '-in',
      path('leaf.csr'),
      '-CA',
      path('root.crt'),
      '-CAkey',
      path('v1.key'),
      '-set_serial',
      '2',
      '-days',
      '2',
      '-out',
      path('leaf.crt'),
    );
    const root = new X509Certificate(readFileSync(path('root.crt')));
    expect(root.ca).toBe(false);
    expect(() => channelCredentials({ caFile: path('root.crt') })).not.toThrow();
    expect(new X509Certificate(readFileSync(path('leaf.crt'))).checkIssued(root)).toBe(true);
    expect(() => channelCredentials({ caFile: path('leaf.crt') })).toThrow(
      'holds a certificate that is not a CA (CN=v1 leaf)',
    );
  });

  it('is reported on a re-read, and the last good CA stays in use', async () => {
    const files = rotatable('goods', pki.files('goods'));
    const onChange = vi.fn();
    const onReloadError = vi.fn();
    const stop = watchTlsFiles(files, readTlsFiles(files), onChange, { ...REFRESH, onReloadError });
    try {
      replaceFile(pki.files('members').certFile, files.caFile);
      await vi.waitFor(() => expect(onReloadError).toHaveBeenCalledOnce(), WAIT);
      expect(onReloadError.mock.calls[0]![0]).toBeInstanceOf(ConfigError);
      expect(onReloadError.mock.calls[0]![0].message).toMatch(/ holds a certificate that is not a CA /);
      expect(onChange).not.toHaveBeenCalled();
    } finally {
      stop();
    }
  });
});

describe('HTTPS options', () => {
  let https: HttpsServer | undefined;
  afterEach(() => {
    https?.closeAllConnections();
    https?.close();
  });

  /** A GET as `client` (no certificate without one): its status, and the certificate it was shown. */
  function get(
    port: number,
    client?: Required<TlsFilePaths>,
  ): Promise<{ status?: number; fingerprint: string }> {
    return new Promise((resolve, reject) => {
      const request = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          servername: 'localhost',
          ca: readFileSync(pki.caFile),
          ...(client ? { cert: readFileSync(client.certFile), key: readFileSync(client.keyFile) } : {}),
          agent: false,
        },
        (response) => {
          const fingerprint = (response.socket as TLSSocket).getPeerCertificate().fingerprint256;
          response.resume();
          response.on('end', () => resolve({ status: response.statusCode, fingerprint }));
        },
      );
      request.on('error', reject);
      request.end();
    });
  }

  it('requires client certificates with a CA file and follows a replaced certificate', async () => {
    const files = rotatable('goods', pki.files('goods'));
    const options = httpsServerOptions(files);
    expect(options).toMatchObject({ requestCert: true, rejectUnauthorized: true });
    expect(httpsServerOptions({ certFile: files.certFile, keyFile: files.keyFile })).toMatchObject({
      requestCert: false,
      rejectUnauthorized: false,
    });
    https = createHttpsServer(options, (_request, response) => response.end());
    https.on('close', watchHttpsCertificates(https, files, REFRESH));
    await new Promise<void>((resolve) => https!.listen(0, '127.0.0.1', resolve));
    const port = (https.address() as AddressInfo).port;
    const fingerprint = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;
    await expect(get(port)).rejects.toThrow(/certificate required/);
    await expect(get(port, pki.files('gateway'))).resolves.toEqual({
      status: 200,
      fingerprint: fingerprint(pki.files('goods').certFile),
    });

    installCertificate(pki.files('members'), files.folder, 'goods');

    await vi.waitFor(
      async () =>
        expect((await get(port, pki.files('gateway'))).fingerprint).toBe(
          fingerprint(pki.files('members').certFile),
        ),
      WAIT,
    );
  });

  it('gives the server files renewed after it was made from them, before the watch began', async () => {
    const files = rotatable('goods', pki.files('goods'));
    const options = httpsServerOptions(files);
    https = createHttpsServer(options, (_request, response) => response.end());
    // A renewer replaces the files between the server's making and the start of the watch.
    installCertificate(pki.files('members'), files.folder, 'goods');
    https.on('close', watchHttpsCertificates(https, files, REFRESH, options));
    await new Promise<void>((resolve) => https!.listen(0, '127.0.0.1', resolve));
    const port = (https.address() as AddressInfo).port;
    const members = new X509Certificate(readFileSync(pki.files('members').certFile)).fingerprint256;
    await vi.waitFor(
      async () => expect((await get(port, pki.files('gateway'))).fingerprint).toBe(members),
      WAIT,
    );
  });
});
