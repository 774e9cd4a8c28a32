import { type DestinationStream, type Logger, pino } from 'pino';
import { LossyStdout } from './lossy-stdout.js';
import { REDACT_PATHS, REDACTED, redactErrorFields, redactUrl } from './redact.js';

export type { Logger };

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** The component the lines belong to, e.g. "distributor" or "goods". */
  component: string;
  /** pino level; "silent" in tests. */
  level?: string;
  /** Where the lines go; stdout by default. */
  destination?: DestinationStream;
}

/**
 * The root logger of one process: JSON lines on stdout, one child per component. Secrets are
 * redacted at every level: fields named as secrets (see REDACT_PATHS), secret query parameters of
 * any `url` field (a request's URL carries the book's `password` on GET /members), and the values
 * database errors quote in the `err` field (see redactDatabaseValues).
 *
 * Lines are written synchronously by default: with pino's default asynchronous stdout, a process
 * that exits right after logging why (a refusal, a fatal error) could lose that line or print it
 * after later ones, since the exit flush writes the queued lines while an earlier write is still in
 * flight. A stdout that cannot take them (an unread pipe, a full disk) drops lines rather than block
 * or crash the component (see LossyStdout).
 */
export function createLogger({ component, level = 'info', destination }: LoggerOptions): Logger {
  return pino(
    {
      level,
      base: { component },
      redact: { paths: [...REDACT_PATHS], censor: REDACTED },
      // A driver's error can quote a row's value (a duplicate username): the log keeps its code
      // and key, not the value.
      serializers: { err: serializeError },
      formatters: {
        log: (fields) =>
          typeof fields.url === 'string' ? { ...fields, url: redactUrl(fields.url) } : fields,
      },
    },
    destination ?? new LossyStdout(component),
  );
}

/** A logger that writes nothing: the default of every factory, so tests stay quiet. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * pino's own `err` serializer, then the values database messages quote redacted (see
 * redactErrorFields); the original error stays reachable as `raw`, not written, as pino keeps it.
 */
function serializeError(error: unknown): unknown {
  const serialized: unknown = briefPeerCertificate(pino.stdSerializers.err(error as Error));
  const redacted = redactErrorFields(serialized);
  if (redacted !== serialized && redacted !== null && typeof redacted === 'object')
    Object.defineProperty(redacted, 'raw', { value: error, enumerable: false });
  return redacted;
}

/**
 * node:tls's error for a certificate that does not name the host (ERR_TLS_CERT_ALTNAME_INVALID)
 * carries the peer's whole chain as `cert`: about 7 KB of a line (moduli, raw DER), before the
 * message. Written as what says which certificate it was.
 */
function briefPeerCertificate(serialized: unknown): unknown {
  const cert = (serialized as { cert?: unknown } | null)?.cert;
  if (cert === null || typeof cert !== 'object' || !('fingerprint256' in cert)) return serialized;
  const { subject, subjectaltname, issuer, valid_to, fingerprint256 } = cert as Record<string, unknown>;
  return { ...(serialized as object), cert: { subject, subjectaltname, issuer, valid_to, fingerprint256 } };
}
