import { ConfigError, formatHostPort } from './config.js';
import { type Setting, settingName } from './settings.js';

/** The settings a person changes when a component cannot listen: its port's and its host's. */
export interface ListenSettings {
  readonly port: Setting<unknown>;
  readonly host: Setting<string>;
}

/**
 * Why a component could not listen on host:port, said as what to change. Node's own words
 * ("listen EADDRINUSE: address already in use") and grpc-js's ("No address added out of total 1
 * resolved", the cause inside) name a system call, not the setting. A port below 1024 without the
 * privilege is bad configuration (exit 2: starting again fails the same way); a port in use or an
 * address not up yet may heal, so those stay failures the launcher retries.
 */
export function listenFailure(error: unknown, host: string, port: number, settings: ListenSettings): Error {
  const message = error instanceof Error ? error.message : String(error);
  const code = /\b(EADDRINUSE|EACCES|EADDRNOTAVAIL)\b/.exec(message)?.[1];
  const where = `cannot listen on ${formatHostPort({ host, port })}`;
  if (code === 'EADDRINUSE') {
    return new Error(
      `${where}: the port is in use by another process (another copy of the shop still running?); stop it, or choose another port with ${settingName(settings.port)}`,
      { cause: error },
    );
  }
  if (code === 'EACCES') {
    return new ConfigError(
      `${where}: not allowed (a port below 1024 needs privileges); choose another port with ${settingName(settings.port)}`,
      { cause: error },
    );
  }
  if (code === 'EADDRNOTAVAIL') {
    return new Error(
      `${where}: ${host} is not an address of this machine; choose one it has with ${settingName(settings.host)} (0.0.0.0: all)`,
      { cause: error },
    );
  }
  // Node's getaddrinfo failures, and grpc-js's words for them. A name may resolve later (a DNS
  // server back up): a failure, not bad configuration.
  if (/\b(?:ENOTFOUND|EAI_AGAIN)\b|Name resolution failed/.test(message)) {
    return new Error(
      `${where}: the host name ${host} does not resolve to an address of this machine; choose an address it has with ${settingName(settings.host)} (0.0.0.0: all)`,
      { cause: error },
    );
  }
  return new Error(`${where}: ${message}`, { cause: error });
}
