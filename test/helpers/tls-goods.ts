import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../src/common/logger.js';
import type { TlsFilePaths } from '../../src/common/tls.js';
import { type RunningService, startService } from '../../src/services/common/start-service.js';
import { goodsService } from '../../src/services/goods/goods-service.js';

/**
 * Goods over the TLS files `tls`, on SQLite in a folder of its own under `dir`, registered with the
 * distributor at `distributor`, stopped by `cleanups` (a test file's, run after each test). Its
 * files are read again every `tlsRefreshIntervalMs` (default: a component's 5 s).
 */
export async function startTlsGoods({
  distributor,
  tls,
  dir,
  log,
  cleanups,
  tlsRefreshIntervalMs,
}: {
  distributor: string;
  tls: Required<TlsFilePaths>;
  dir: string;
  log: Logger;
  cleanups: Array<() => unknown>;
  tlsRefreshIntervalMs?: number;
}): Promise<RunningService> {
  const goods = await startService(
    goodsService,
    {
      host: '127.0.0.1',
      port: 0,
      distributor,
      advertiseHost: '127.0.0.1',
      storage: { kind: 'sqlite', dataDir: mkdtempSync(join(dir, 'goods-')) },
      tls,
      logLevel: 'silent',
    },
    {
      log,
      graceMs: 100,
      drainNoticeMs: 50,
      ...(tlsRefreshIntervalMs === undefined ? {} : { tlsRefreshIntervalMs }),
    },
  );
  cleanups.push(() => goods.stop());
  return goods;
}
