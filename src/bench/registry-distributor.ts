import { createLogger } from '../common/logger.js';
import { createDistributorServer } from '../distributor/distributor-server.js';
import { StallProbe, type StallReading } from './stall-probe.js';

// The distributor alone, as the registry benchmark runs it: a process of its own (forked, with an
// IPC channel), the default limits, the token from SHOP_REGISTRY_TOKEN, logs at warn only (a log
// line is a write too, and the benchmark counts the bytes the process writes). It measures its own
// event-loop stalls (StallProbe) and reports them when asked, so that they are seen from inside.

/** Messages the benchmark sends. */
export type DistributorProbeRequest = { type: 'loop' } | { type: 'stop' };
/** Messages this process sends back. */
export type DistributorProbeMessage =
  | { type: 'listening'; port: number }
  | ({ type: 'loop' } & StallReading)
  | { type: 'stopped' };

const send = (message: DistributorProbeMessage): void => {
  process.send?.(message);
};

const stalls = new StallProbe();
const distributor = createDistributorServer({
  log: createLogger({ component: 'distributor', level: 'warn' }),
  ...(process.env.SHOP_REGISTRY_TOKEN ? { registryToken: process.env.SHOP_REGISTRY_TOKEN } : {}),
});
const port = await distributor.listen('127.0.0.1', 0);
send({ type: 'listening', port });

// The benchmark gone (crashed, killed), nothing would stop this server: go with it.
let stopping = false;
process.once('disconnect', () => {
  if (!stopping) process.exit(1);
});

process.on('message', (message: DistributorProbeRequest) => {
  if (message.type === 'loop') {
    send({ type: 'loop', ...stalls.take() });
  } else if (message.type === 'stop') {
    stopping = true;
    stalls.stop();
    void distributor.stop(1_000).then(() => {
      send({ type: 'stopped' });
      process.disconnect();
    });
  }
});
