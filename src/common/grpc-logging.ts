import { format } from 'node:util';
import { setLogger } from '@grpc/grpc-js';
import type { Logger } from './logger.js';
import { isSecretName, REDACTED } from './redact.js';

/**
 * What grpc-js logs as it throws a listen failure, which listen-failure.ts turns into a message
 * naming the address and the setting: said first, it only made the real message harder to find.
 */
const SAID_BY_LISTEN_FAILURE = /^No address added out of total \d+ resolved$/;

/**
 * A metadata entry as grpc-js's traces print it (`server_call`: `received headers
 * {"authorization":["Bearer ..."],...}`, from `Metadata.toJSON()`): a quoted key, then its values.
 */
const METADATA_ENTRY = /"((?:[^"\\]|\\.)*)":\[((?:[^\]"]|"(?:[^"\\]|\\.)*")*)\]/g;

/**
 * The text of a grpc-js line with the values of secret metadata (the registration token's
 * `authorization`, say) replaced, as the logger's redaction does for fields: grpc-js writes a call's
 * metadata whole into the text of its trace lines, where no field redaction reaches.
 */
export function redactGrpcText(text: string): string {
  return text.replace(METADATA_ENTRY, (entry, key: string) =>
    isSecretName(key) ? `"${key}":["${REDACTED}"]` : entry,
  );
}

/**
 * Sends what grpc-js logs (its errors, and with GRPC_VERBOSITY/GRPC_TRACE its information and
 * traces) through the component's logger, as lines like every other one: JSON with the component's
 * name, instead of grpc-js's own "E ..." text on stderr, which log collectors could not parse. Its
 * information and traces are written at level info: grpc-js writes them only when GRPC_VERBOSITY
 * asked for them, and a second switch (LOG_LEVEL=debug) to see them would be one too many. grpc-js
 * keeps one logger for the whole process, so only a process's `main` calls this.
 */
export function logGrpcThrough(log: Logger): void {
  const grpcLog = log.child({ source: 'grpc-js' });
  setLogger({
    error: (message?: unknown, ...rest: unknown[]) => {
      const text = format(message, ...rest);
      if (!SAID_BY_LISTEN_FAILURE.test(text)) grpcLog.error(redactGrpcText(text));
    },
    info: (message?: unknown, ...rest: unknown[]) => grpcLog.info(redactGrpcText(format(message, ...rest))),
    debug: (message?: unknown, ...rest: unknown[]) => grpcLog.info(redactGrpcText(format(message, ...rest))),
  });
}
