import type { X509Certificate } from 'node:crypto';
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { type AdminServer, startConfiguredAdminServer } from '../../common/admin-server.js';
import type { BackoffOptions } from '../../common/backoff.js';
import { ConfigError, formatHostPort } from '../../common/config.js';
import { loadShopDescriptorSet, registrationDescriptorSet } from '../../common/descriptors.js';
import type { KeepaliveOptions } from '../../common/grpc-server.js';
import { listenFailure } from '../../common/listen-failure.js';
import { type Logger, silentLogger } from '../../common/logger.js';
import { stopStepBudget } from '../../common/process-lifecycle.js';
import { channelCredentials, secureNamingChannelOptions, serverCredentials } from '../../common/tls.js';
import { tlsProblemLog } from '../../common/tls-problem-log.js';
import { NodeState } from '../../gen/distributor.js';
import { LEAVE_TIMEOUT_MS, RegistrationClient } from '../../registry-client/registration-client.js';
import type { ShopService } from './define-service.js';
import { registeredHostOf } from './listed-host.js';
import { POOL_CLOSE_TIMEOUT_MS } from './mysql-database.js';
import { describeMysqlTls, usesMysqlTls } from './mysql-tls.js';
import { describeMysql } from './mysql-url.js';
import { type ServiceConfig, serviceSettings } from './service-config.js';
import { CALLS_GRACE_AT_STOP_MS, createServiceServer } from './service-server.js';
import type { ServiceStore } from './service-store.js';
import { ServiceTelemetry } from './service-telemetry.js';

/** Options of {@link startService} besides the configuration. */
export interface StartServiceOptions<Options = never> {
  log?: Logger;
  /** How long calls in flight may run on after a stop begins (default CALLS_GRACE_AT_STOP_MS, 6 s). */
  graceMs?: number;
  /**
   * How long a stop waits for the distributor to confirm the draining state (default 1 s), so that
   * gateways hear of it before the server refuses new calls.
   */
  drainNoticeMs?: number;
  databaseProbeIntervalMs?: number;
  registrationBackoff?: BackoffOptions;
  keepalive?: KeepaliveOptions;
  /** The service's own handler options (see ShopService); default: the handlers' defaults. */
  handlerOptions?: Options;
  /** How often the TLS files are read again (default DEFAULT_TLS_REFRESH_MS, 5 s); tests shorten it. */
  tlsRefreshIntervalMs?: number;
}

/** A service that is serving and registered (or registering). */
export interface RunningService {
  /** The port really bound. */
  readonly port: number;
  /** The port of its admin server (GET /metrics), when one runs. */
  readonly metricsPort: number | undefined;
  readonly registration: RegistrationClient;
  /**
   * Stops in order, within the launcher's limit counted from `stopBegunAt` (performance.now(), by
   * default now); calling it again returns the same promise.
   */
  stop(stopBegunAt?: number): Promise<void>;
}

/**
 * Runs one service: opens its store, builds its server, binds it, and registers the port it really
 * got with the distributor (retrying in the background, so start order does not matter).
 *
 * `stop()` goes: say draining on the registration stream and turn health NOT_SERVING → wait briefly
 * for the distributor to confirm → stop the server (new calls refused, calls in flight get the grace
 * period) → leave the distributor → close the store. Each step waits at most its own time and what
 * is left of the launcher's limit (stopStepBudget), so that a distributor and a database that are
 * both slow to answer cannot push the stop into a SIGKILL.
 */
export async function startService<Store extends ServiceStore, Options>(
  service: ShopService<Store, Options>,
  config: ServiceConfig,
  options: StartServiceOptions<Options> = {},
): Promise<RunningService> {
  const log = options.log ?? silentLogger();
  // Named in the messages of a port that cannot be bound.
  const settings = serviceSettings(service);
  // Unreadable certificate files stop the start here, before anything is opened.
  const tlsFileOptions = {
    ...tlsProblemLog(log),
    ...(options.tlsRefreshIntervalMs === undefined
      ? {}
      : { refreshIntervalMs: options.tlsRefreshIntervalMs }),
  };
  // A CA file taken before the server exists has no connection to close.
  let onCaTaken: ((authorities: readonly X509Certificate[]) => void) | undefined;
  const credentials = serverCredentials(config.tls, {
    ...tlsFileOptions,
    onCaTaken: (authorities) => onCaTaken?.(authorities),
  });
  let registration: RegistrationClient | undefined;
  const distributorCredentials = channelCredentials(config.tls, {
    expectedName: 'distributor',
    ...tlsFileOptions,
    // A renewed certificate: the registration moves to a connection made with it, before a CA
    // rotation's last step cuts the one made with the certificate before.
    onCertificateTaken: () => registration?.renewConnection(),
    // A CA removed (it leaked): a registration whose distributor chains to it no longer stays.
    onCaTaken: (authorities) => registration?.stopUsingUntrusted(authorities),
  });
  // Metrics and request ids (issue 11); the process's own metrics only where /metrics is served.
  const observability = config.observability;
  const telemetry = new ServiceTelemetry({
    metrics: observability?.metrics ?? true,
    requestIds: observability?.requestIds ?? true,
    processMetrics: observability?.metricsPort !== undefined,
  });
  const store = openStore(service, config, log, telemetry);
  // Whether the gateway should send this instance requests, as the distributor lists it.
  const listedState = (serving: boolean) =>
    serving ? NodeState.NODE_STATE_SERVING : NodeState.NODE_STATE_DRAINING;
  const server = createServiceServer(service, {
    store,
    log,
    telemetry,
    // An instance whose database is unreachable answers UNAVAILABLE: listed as draining meanwhile,
    // it gets no requests while another instance can take them (an unkeyed POST is not retried).
    onServingChange: (serving) => registration?.setState(listedState(serving)),
    ...(options.databaseProbeIntervalMs === undefined
      ? {}
      : { databaseProbeIntervalMs: options.databaseProbeIntervalMs }),
    ...(options.keepalive === undefined ? {} : { keepalive: options.keepalive }),
    ...(options.handlerOptions === undefined ? {} : { handlerOptions: options.handlerOptions }),
    ...(config.maxCallsInFlight === undefined ? {} : { maxCallsInFlight: config.maxCallsInFlight }),
    ...(config.maxConnections === undefined ? {} : { maxConnections: config.maxConnections }),
    ...(config.unreadAnswerTimeoutMs === undefined
      ? {}
      : { unreadAnswerTimeoutMs: config.unreadAnswerTimeoutMs }),
    credentials,
  });
  onCaTaken = (authorities) => server.closeUntrustedConnections(authorities);
  let port: number;
  try {
    port = await server.listen(config.host, config.port);
  } catch (error) {
    await server.stop(0);
    await store.close();
    throw listenFailure(error, config.host, config.port, settings);
  }
  log.info(
    { event: 'listening', host: config.host, port },
    `listening on ${formatHostPort({ host: config.host, port })}`,
  );
  const registeredHost = await registeredHostOf({
    host: config.host,
    advertiseHost: config.advertiseHost,
    distributor: config.distributor,
    boundAddresses: server.boundAddresses(),
    log,
  });
  let admin: AdminServer | undefined;
  try {
    admin = await startConfiguredAdminServer(observability, telemetry.registry, {
      host: config.host,
      addresses: server.boundAddresses(),
      log,
      settings,
    });
  } catch (error) {
    await server.stop(0);
    await store.close();
    throw error;
  }

  registration = new RegistrationClient({
    distributor: config.distributor,
    node: {
      name: service.name,
      host: registeredHost,
      port,
      // The REST routes are the google.api.http options in the descriptor set.
      routes: [],
      descriptorSet: registrationDescriptorSet(
        [service.grpc.name],
        service.grpc.descriptors ?? loadShopDescriptorSet(),
      ),
      state: listedState(server.serving),
    },
    log,
    credentials: distributorCredentials,
    channelOptions: secureNamingChannelOptions(config.tls, 'distributor'),
    ...(config.registryToken ? { token: config.registryToken } : {}),
    ...(options.registrationBackoff === undefined ? {} : { backoff: options.registrationBackoff }),
    ...(options.keepalive === undefined ? {} : { keepalive: options.keepalive }),
  });
  registration.start();
  log.info(
    { event: 'registering', distributor: config.distributor },
    `registering with ${config.distributor}`,
  );

  let stopping: Promise<void> | undefined;
  const stopInOrder = async (stopBegunAt: number): Promise<void> => {
    const budget = (capMs: number): number => stopStepBudget(stopBegunAt, capMs);
    const confirmed = drainingConfirmed(registration, budget(options.drainNoticeMs ?? 1_000));
    registration.setState(NodeState.NODE_STATE_DRAINING);
    server.drain();
    log.info({ event: 'draining' }, 'draining');
    await confirmed;
    await server.stop(budget(options.graceMs ?? CALLS_GRACE_AT_STOP_MS));
    await registration.stop(budget(LEAVE_TIMEOUT_MS));
    await store.close(budget(POOL_CLOSE_TIMEOUT_MS));
    await admin?.stop();
  };
  return {
    port,
    metricsPort: admin?.port,
    registration,
    stop: (stopBegunAt = performance.now()) => {
      stopping ??= stopInOrder(stopBegunAt);
      return stopping;
    },
  };
}

function openStore<Store extends ServiceStore, Options>(
  service: ShopService<Store, Options>,
  config: ServiceConfig,
  log: Logger,
  telemetry: ServiceTelemetry,
): Store {
  const { storage } = config;
  if (storage.kind === 'mysql') {
    const { connection } = storage;
    log.info(
      {
        event: 'storage',
        kind: 'mysql',
        tls: usesMysqlTls(connection),
      },
      `storage: ${describeMysql(connection)} ${describeMysqlTls(connection)}`,
    );
    return service.stores.mysql({ connection: storage.connection, log, observer: telemetry });
  }
  const file = join(storage.dataDir, `${service.name}.sqlite`);
  log.info({ event: 'storage', kind: 'sqlite', file }, `storage: SQLite ${file}`);
  try {
    const store = service.stores.sqlite(file, { observer: telemetry });
    warnIfShared(file, log);
    return store;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    const message = `cannot open the SQLite file ${file} (set DATA_DIR or MYSQL_URL): ${reason}`;
    // A path that cannot hold the file will not heal by a restart: bad configuration (exit 2).
    if (isPathFault(error, storage.dataDir, file))
      throw new ConfigError(message, { cause: error, showUsage: false });
    throw new Error(message, { cause: error });
  }
}

/**
 * Warns when a SQLite file made before files were created private (or by hand) can be read by other
 * users: members' holds password hashes. It is left as it is: its owner may share it on purpose.
 */
function warnIfShared(file: string, log: Logger): void {
  // A service's store may keep no file there at all.
  const mode = statSync(file, { throwIfNoEntry: false })?.mode;
  if (mode === undefined || (mode & 0o077) === 0) return;
  log.warn(
    { event: 'shared-data-file', file, mode: (mode & 0o777).toString(8) },
    `${file} can be read by other users (mode ${(mode & 0o777).toString(8)}): chmod 600 it, with its -wal and -shm files`,
  );
}

/**
 * Why a folder cannot be made there: DATA_DIR is a file, read-only, not this user's, or in a file
 * system that takes no folders although the one above exists (ENOENT: under /proc).
 */
const PATH_ERRORS: ReadonlySet<string> = new Set([
  'EEXIST',
  'ENOTDIR',
  'EACCES',
  'EPERM',
  'EROFS',
  'EISDIR',
  'ENOENT',
]);

/** SQLite's codes for a file that is there but is no database it can use. */
const UNUSABLE_FILE_ERRORS = new Set(['SQLITE_NOTADB', 'SQLITE_CORRUPT']);

/**
 * Whether opening the store failed because of where DATA_DIR points, which a restart will not
 * change: a folder that cannot be made, a file this user cannot write (EACCES or EROFS, checked
 * before SQLite, which would open it read-only; SQLITE_READONLY), a file that is no database or a
 * damaged one (SQLITE_NOTADB, SQLITE_CORRUPT), a file SQLite cannot open in a folder this user
 * cannot write to, or a folder where the file should be. SQLite says SQLITE_CANTOPEN for a full file table too, which passes: then the folder
 * is writable and the file, if there, is a file.
 */
function isPathFault(error: unknown, dataDir: string, file: string): boolean {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  // A file that is not a database, or a damaged one, is the same file at every restart.
  if (PATH_ERRORS.has(code) || code.startsWith('SQLITE_READONLY') || UNUSABLE_FILE_ERRORS.has(code))
    return true;
  if (!code.startsWith('SQLITE_CANTOPEN')) return false;
  try {
    if (statSync(file, { throwIfNoEntry: false })?.isDirectory()) return true;
    accessSync(dataDir, constants.W_OK);
    return !statSync(dataDir).isDirectory();
  } catch {
    return true;
  }
}

/**
 * Resolves once the distributor acknowledges the draining state, or after `timeoutMs`; at once if
 * unregistered or already acknowledged as draining.
 */
function drainingConfirmed(registration: RegistrationClient, timeoutMs: number): Promise<void> {
  // Listed draining already (its database down): setState writes nothing, so no answer would come.
  // Only if draining is what it last said, too: a SERVING on its way would otherwise be taken back.
  const draining = NodeState.NODE_STATE_DRAINING;
  if (
    !registration.nodeId ||
    (registration.state === draining && registration.acknowledgedState === draining)
  )
    return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      registration.off('state', onState);
      registration.off('disconnected', done);
      resolve();
    };
    const onState = (state: NodeState): void => {
      if (state === NodeState.NODE_STATE_DRAINING) done();
    };
    const timer = setTimeout(done, timeoutMs);
    registration.on('state', onState);
    registration.on('disconnected', done);
  });
}
