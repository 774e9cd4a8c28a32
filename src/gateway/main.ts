import { createLogger } from '../common/logger.js';
import { runMain, stopOnSignals } from '../common/process-lifecycle.js';
import { GATEWAY_USAGE, loadGatewayConfig } from './config.js';
import { createGateway } from './gateway-server.js';

runMain(async () => {
  const config = loadGatewayConfig(process.argv.slice(2), process.env);
  const log = createLogger({ component: 'gateway', level: config.logLevel });
  const gateway = createGateway({
    distributor: config.distributor,
    log,
    deadlineMs: config.deadlineMs,
    bodyLimitBytes: config.bodyLimitBytes,
    maxConnections: config.maxConnections,
    restartGraceMs: config.restartGraceMs,
    ...(config.tls ? { tls: config.tls } : {}),
    ...(config.registryToken ? { registryToken: config.registryToken } : {}),
    ...(config.https
      ? {
          https: {
            certFile: config.https.certFile,
            keyFile: config.https.keyFile,
            ...(config.https.clientCaFile ? { caFile: config.https.clientCaFile } : {}),
          },
        }
      : {}),
  });
  const port = await gateway.listen(config.host, config.port);
  log.info(
    { host: config.host, port, distributor: config.distributor },
    `listening on ${config.https ? 'https' : 'http'}://${config.host}:${port}, routing from the distributor at ${config.distributor}`,
  );
  stopOnSignals(log, () => gateway.stop());
}, GATEWAY_USAGE);
