import { format } from 'node:util';
import { setLogger } from '@grpc/grpc-js';
import type { Logger } from './logger.js';
import { isSecretName, REDACTED } from './redact.js';

/**
 * What grpc-js logs as it throws a listen failure, which listen-failure.ts turns into a message
 * naming the address and the setting: said first, it only made the real message harder to find.
 */
const SAID_BY_LISTEN_FAILURE = /^No address added out of total \d+ resolved$/;

/** A JSON string, its escapes (`\"`) included. */
const JSON_STRING = String.raw`"(?:[^"\\]|\\.)*"`;
/** A binary (`-bin`) value as JSON.stringify writes a Buffer. */
const JSON_BUFFER = String.raw`\{"type":"Buffer","data":\[[\d,]*\]\}`;
const METADATA_VALUE = `(?:${JSON_STRING}|${JSON_BUFFER})`;

/**
 * A metadata entry as grpc-js's traces print it (`server_call`: `received headers
 * {"authorization":["Bearer ..."],...}`, from `Metadata.toJSON()`): a key as grpc-js allows them,
 * then its values, each a string or a Buffer. Strict, so that text a client controls (a method
 * path, printed raw in `Received call to method ...`) costs a scan in proportion to its length:
 * looser (any key, anything between the brackets), each `"k":[` of a hostile path was scanned to
 * the end of the line, quadratic, about 300 ms of blocked event loop a line for a 40 KB path.
 */
const METADATA_ENTRY = new RegExp(
  String.raw`"([\w.-]+)":\[(?:${METADATA_VALUE}(?:,${METADATA_VALUE})*)?\]`,
  'g',
);

/**
 * A header as grpc-js's client traces print the headers and trailers a server answered with
 * (`subchannel_call`: `Received server headers:` then a line `\t\tname: value` each, the
 * distributor's `x-shop-distributor-proof` among them). Anchored at a line's start, so that a scan
 * costs the length of the text.
 */
const HEADER_LINE = /^(\t\t)([^\s:]+): [^\n]*$/gm;

/**
 * The text of a grpc-js line with the values of secret metadata (the registration token's
 * `authorization`, say) replaced, as the logger's redaction does for fields: grpc-js writes a call's
 * metadata whole into the text of its trace lines, where no field redaction reaches.
 */
export function redactGrpcText(text: string): string {
  return text
    .replace(METADATA_ENTRY, (entry, key: string) => (isSecretName(key) ? `"${key}":["${REDACTED}"]` : entry))
    .replace(HEADER_LINE, (line, indent: string, key: string) =>
      isSecretName(key) ? `${indent}${key}: ${REDACTED}` : line,
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
