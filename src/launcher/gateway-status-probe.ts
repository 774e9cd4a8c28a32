import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { type HttpEndpoint, httpRequestOptions } from '../common/http-endpoint.js';
import { GATEWAY_SETTINGS } from '../gateway/config.js';

/** What the launcher reads of the gateway's `GET /status.json` (see the README, "Status page"). */
export interface GatewayStatusView {
  /** Whether the gateway itself is registered with the distributor. */
  readonly registered: boolean;
  readonly nodes: readonly {
    readonly id: string;
    readonly name: string;
    readonly state: string;
    /** Where it registered, "host:port": where the gateway connects to it. */
    readonly address?: string;
    readonly registeredAt: string | null;
    /** Kept from before a distributor restart, not registered again yet. */
    readonly kept?: boolean;
    /** The gateway holds a connection to it now: it serves it (absent: not, or not yet). */
    readonly connected?: boolean;
    /** How long the gateway has failed to connect to it, in seconds, if it has. */
    readonly unreachableSeconds?: number;
    /** The gateway gives it no call (see outOfReach in gateway/upstream.ts). */
    readonly outOfReach?: boolean;
  }[];
  readonly routes: readonly { readonly listed: boolean; readonly serving: readonly string[] }[];
}

/** The largest answer read: a status of a shop with thousands of routes is far below it. */
const MAX_BYTES = 8 * 1024 * 1024;

/**
 * One `GET /status.json` of the gateway at `endpoint` (http or https), within `timeoutMs`: its status,
 * or a rejection saying why there is none. Over https the gateway's certificate is not checked:
 * the launcher asks the gateway it started itself, on the address it said it listens on, and sends
 * nothing but the request, so a process in its place could at most make it say the shop is ready.
 */
export function fetchGatewayStatus(endpoint: HttpEndpoint, timeoutMs: number): Promise<GatewayStatusView> {
  return new Promise((resolve, reject) => {
    const get = endpoint.protocol === 'https' ? httpsGet : httpGet;
    const request = get(
      {
        ...httpRequestOptions(endpoint, '/status.json'),
        timeout: timeoutMs,
        rejectUnauthorized: false,
        agent: false,
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BYTES) request.destroy(new Error('its /status.json is too large'));
          else chunks.push(chunk);
        });
        response.on('error', reject);
        response.on('end', () => {
          if (response.statusCode !== 200) {
            reject(new Error(`its /status.json answered HTTP ${response.statusCode}`));
            return;
          }
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as GatewayStatusView);
          } catch {
            reject(new Error('its /status.json is not JSON'));
          }
        });
      },
    );
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}

/**
 * Whether the gateway `npm start` runs with `env` requires client certificates of its REST clients
 * (GATEWAY_HTTPS_CLIENT_CA, read as the gateway reads it: set empty is unset): its
 * `GET /status.json` then refuses the launcher, which has none (403), and the launcher asks the
 * gateway over their pipe instead (Supervisor.askStatus).
 */
export function gatewayRequiresClientCertificates(env: NodeJS.ProcessEnv): boolean {
  const value = env[GATEWAY_SETTINGS.httpsClientCa.env!];
  return value !== undefined && value !== '';
}
