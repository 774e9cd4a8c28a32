import {
  type Context,
  createTraceState,
  DiagConsoleLogger,
  DiagLogLevel,
  diag,
  type Tracer as OtelTracer,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import {
  defaultResource,
  detectResources,
  envDetector,
  hostDetector,
  osDetector,
  processDetector,
  type ResourceDetector,
  resourceFromAttributes,
  serviceInstanceIdDetector,
} from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  type Sampler,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { keepLocalCollectorOffProxy } from './collector-proxy.js';
import { ConfigError } from './config.js';
import type { Logger } from './logger.js';
import type { SpanAttributes, SpanRole, TraceCarrier, Tracer, TraceSpan } from './trace-span.js';

// Loaded only when tracing is asked for (see tracing.ts): nothing of OpenTelemetry is imported otherwise.

const KINDS: Record<SpanRole, SpanKind> = {
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  internal: SpanKind.INTERNAL,
};

/** A span behind the project's small interface. */
class OtelSpan implements TraceSpan {
  #carrier: TraceCarrier | undefined;
  #asParent: Context | undefined;
  #unrecordedChild: UnrecordedSpan | undefined;

  constructor(readonly span: Span) {}

  setName(name: string): void {
    this.span.updateName(name);
  }

  setAttribute(key: string, value: string | number | boolean): void {
    this.span.setAttribute(key, value);
  }

  fail(message: string): void {
    this.span.setStatus({ code: SpanStatusCode.ERROR, message });
  }

  end(): void {
    this.span.end();
  }

  isSampled(): boolean {
    // Not the SDK's isRecording(), which turns false once the span ends: a call cancelled by its
    // client ends its server span while the handler still runs, and its database spans belong in
    // the trace.
    return (this.span.spanContext().traceFlags & TraceFlags.SAMPLED) !== 0;
  }

  carrier(): TraceCarrier {
    this.#carrier ??= carrierOf(this.span.spanContext());
    return this.#carrier;
  }

  /** The context that makes this span the parent of a new one. */
  asParent(): Context {
    this.#asParent ??= trace.setSpan(ROOT_CONTEXT, this.span);
    return this.#asParent;
  }

  /** What a child of this span is when this one is not recorded (see ProjectTracer). */
  unrecordedChild(): UnrecordedSpan {
    this.#unrecordedChild ??= new UnrecordedSpan(this.carrier());
    return this.#unrecordedChild;
  }
}

/**
 * A span of a trace this process does not record: it passes its parent's trace context on and
 * records nothing, like the SDK's non-recording span, without the SDK's work to make one (new ids,
 * sampling, contexts: about 1.5 KB of garbage each, per request and per hop).
 */
class UnrecordedSpan implements TraceSpan {
  constructor(readonly carried: TraceCarrier) {}
  setName(): void {}
  setAttribute(): void {}
  fail(): void {}
  end(): void {}
  isSampled(): boolean {
    return false;
  }
  carrier(): TraceCarrier {
    return this.carried;
  }
}

/** Which spans the configured sampler is known to leave unrecorded, so the SDK need not be asked. */
export interface UnrecordedShortcuts {
  /** A child of an unrecorded span of this process is unrecorded. */
  readonly localParent: boolean;
  /** A child of a caller's span that came marked "not sampled" is unrecorded. */
  readonly remoteUnsampledParent: boolean;
}

/** The samplers OTEL_TRACES_SAMPLER may name, as the Node.js SDK reads it (parentbased_always_on by default). */
const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;
type SamplerName = (typeof SAMPLERS)[number];

/**
 * The sampler OTEL_TRACES_SAMPLER names (trimmed, any case; parentbased_always_on when unset). The
 * SDK would log an unknown one and sample everything; it is a ConfigError here, as an unknown
 * exporter is: a sampler that is not the one asked for changes what a trace shows, and its cost.
 */
export function samplerNamed(env: NodeJS.ProcessEnv): SamplerName {
  const name = setting(env, 'OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on';
  const known = SAMPLERS.find((sampler) => sampler === name);
  if (known === undefined) {
    throw new ConfigError(`OTEL_TRACES_SAMPLER: unknown sampler "${name}" (${SAMPLERS.join(', ')})`);
  }
  return known;
}

/**
 * The sampler the environment asks for, built from the SDK's own samplers. The ratio of the
 * trace-id ratio samplers is OTEL_TRACES_SAMPLER_ARG, 1 when unset, as the specification has it; a
 * value that is not a number from 0 to 1 is a ConfigError (the SDK would log it and use 1).
 */
export function samplerFromEnv(env: NodeJS.ProcessEnv): Sampler {
  const name = samplerNamed(env);
  const root = (rootName: string): Sampler => {
    if (rootName === 'always_on') return new AlwaysOnSampler();
    if (rootName === 'always_off') return new AlwaysOffSampler();
    return new TraceIdRatioBasedSampler(samplerRatio(env));
  };
  return name.startsWith('parentbased_')
    ? new ParentBasedSampler({ root: root(name.slice('parentbased_'.length)) })
    : root(name);
}

function samplerRatio(env: NodeJS.ProcessEnv): number {
  const raw = setting(env, 'OTEL_TRACES_SAMPLER_ARG');
  if (raw === undefined) return 1;
  const ratio = Number(raw);
  if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) {
    throw new ConfigError(`OTEL_TRACES_SAMPLER_ARG: "${raw}" is not a ratio from 0 to 1`);
  }
  return ratio;
}

/**
 * The shortcuts the sampler OTEL_TRACES_SAMPLER names allows (see samplerNamed). Parent-based
 * samplers follow the parent by definition, local or remote (the SDK's environment gives no way to
 * change their choice for an unsampled remote parent); the trace-id ratio follows a local parent
 * because the decision is the trace id's, which the child shares; always_off records nothing.
 * always_on records every span, whatever its parent.
 */
export function unrecordedShortcuts(env: NodeJS.ProcessEnv): UnrecordedShortcuts {
  const sampler = samplerNamed(env);
  const parentBased = sampler.startsWith('parentbased_');
  return {
    localParent: parentBased || sampler === 'traceidratio' || sampler === 'always_off',
    remoteUnsampledParent: parentBased || sampler === 'always_off',
  };
}

const NO_SHORTCUTS: UnrecordedShortcuts = { localParent: false, remoteUnsampledParent: false };

/** The project's tracer over an OpenTelemetry one (see startOpenTelemetry); exported for tests. */
export class ProjectTracer implements Tracer {
  constructor(
    readonly tracer: OtelTracer,
    readonly shortcuts: UnrecordedShortcuts = NO_SHORTCUTS,
  ) {}

  startSpan(
    name: string,
    role: SpanRole,
    parent: TraceSpan | TraceCarrier | undefined,
    attributes?: SpanAttributes,
    linked?: TraceCarrier,
  ): TraceSpan {
    // Most requests are not sampled: below their first span in a process, skip the SDK altogether.
    if (parent instanceof UnrecordedSpan) return parent;
    if (parent instanceof OtelSpan) {
      if (!parent.isSampled() && this.shortcuts.localParent) return parent.unrecordedChild();
    } else if (parent !== undefined && !('carrier' in parent) && this.shortcuts.remoteUnsampledParent) {
      if (parent.traceparent !== undefined && !sampledFlag(parent.traceparent))
        return new UnrecordedSpan(parent);
    }
    const link = linked === undefined ? undefined : remoteSpanContext(linked);
    const span = this.tracer.startSpan(
      name,
      {
        kind: KINDS[role],
        ...(attributes ? { attributes } : {}),
        ...(link ? { links: [{ context: link }] } : {}),
      },
      parentContext(parent),
    );
    return new OtelSpan(span);
  }
}

/**
 * The W3C `traceparent` (and `tracestate`) of a span: the one format the project carries between
 * hops (see request-context.ts), written here rather than by a propagator, which needs a context
 * made for each call.
 */
function carrierOf(context: SpanContext): TraceCarrier {
  const flags = (context.traceFlags & 0xff).toString(16).padStart(2, '0');
  const traceparent = `00-${context.traceId}-${context.spanId}-${flags}`;
  const tracestate = context.traceState?.serialize();
  return tracestate ? { traceparent, tracestate } : { traceparent };
}

/** Whether a (well-formed) traceparent says its trace is sampled: bit 0 of its flags. */
function sampledFlag(traceparent: string): boolean {
  return (Number.parseInt(traceparent.slice(53, 55), 16) & 1) === 1;
}

function parentContext(parent: TraceSpan | TraceCarrier | undefined): Context {
  if (parent === undefined) return ROOT_CONTEXT;
  if (parent instanceof OtelSpan) return parent.asParent();
  if (!('traceparent' in parent)) return ROOT_CONTEXT;
  const remote = remoteSpanContext(parent);
  return remote ? trace.setSpanContext(ROOT_CONTEXT, remote) : ROOT_CONTEXT;
}

/** The span context a carrier from another process names; undefined when it has no traceparent. */
function remoteSpanContext(carrier: TraceCarrier): SpanContext | undefined {
  if (carrier.traceparent === undefined) return undefined;
  // A carrier's traceparent was checked where it came in (isValidTraceparent): version, trace id,
  // parent id and flags are its first four fields.
  const [, traceId = '', spanId = '', flags = '00'] = carrier.traceparent.split('-', 4);
  return {
    traceId,
    spanId,
    traceFlags: Number.parseInt(flags, 16),
    isRemote: true,
    ...(carrier.tracestate ? { traceState: createTraceState(carrier.tracestate) } : {}),
  };
}

/**
 * Starts OpenTelemetry's tracing SDK for Node.js, configured by the standard variables: the
 * sampler (OTEL_TRACES_SAMPLER, _ARG, read here so that an unknown one stops the component: see
 * samplerFromEnv), batching (OTEL_BSP_*), and each exporter its endpoint, headers, timeout and
 * compression (OTEL_EXPORTER_OTLP_(TRACES_)*); the exporters are the
 * ones OTEL_TRACES_EXPORTER names (otlp by default, console, zipkin), OTLP over the protocol of
 * OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL (http/protobuf by default, http/json, grpc); the resource
 * is detected as the Node.js SDK does (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME, host, OS,
 * process). Trace context travels as W3C `traceparent` and `tracestate`, written and read here (see
 * carrierOf). Traces only: metrics are Prometheus's (see metrics.ts).
 *
 * The tracer provider is built from its parts rather than by @opentelemetry/sdk-node, which loads
 * every exporter, metric reader, log processor and propagator it could use (6.7 MiB of heap against
 * 4.1 here): every major garbage collection of a busy process marks that heap again, and callgrind
 * counted 12 % more instructions per GET /goods in the gateway with it loaded. Only the
 * exporters asked for are loaded. No context manager is registered: the project never asks for
 * "the active span", every span is given its parent (see ProjectTracer), and the SDK's default one
 * keeps an AsyncLocalStorage, which on Node 20 puts a hook on every promise of the process.
 *
 * With OTLP/gRPC, a collector on this machine is kept off the environment's proxy by naming it in
 * `env`'s no_grpc_proxy (see keepLocalCollectorOffProxy), which `log` is told of, once.
 */
export async function startOpenTelemetry(
  serviceName: string,
  env: NodeJS.ProcessEnv,
  log?: Pick<Logger, 'info' | 'warn'>,
): Promise<{ tracer: Tracer; stop: () => Promise<void> }> {
  // Export failures and the SDK's own warnings, when asked for (the SDK is silent otherwise).
  const logLevel = LOG_LEVELS.find((level) => level === setting(env, 'OTEL_LOG_LEVEL')?.toUpperCase());
  if (logLevel !== undefined) diag.setLogger(new DiagConsoleLogger(), { logLevel: DiagLogLevel[logLevel] });
  // Checked before any exporter is built, so that a refusal leaves nothing open.
  const sampler = samplerFromEnv(env);
  checkEndpoints(env);
  checkExporterSettings(env);
  if (exportersAskedFor(env).includes('otlp grpc')) {
    const note = keepLocalCollectorOffProxy(env);
    if (note?.event === 'otlp-collector-no-proxy')
      log?.info({ event: note.event, entry: note.entry }, note.message);
    else if (note) log?.warn({ event: note.event }, note.message);
  }
  const processors: SpanProcessor[] = [];
  for (const exporter of await traceExporters(env)) {
    // A console exporter writes each span as it ends, as the Node.js SDK has it.
    processors.push(
      exporter instanceof ConsoleSpanExporter
        ? new SimpleSpanProcessor(exporter)
        : new BatchSpanProcessor(exporter),
    );
  }
  const named =
    Boolean(env.OTEL_SERVICE_NAME) || /(^|,)\s*service\.name=/.test(env.OTEL_RESOURCE_ATTRIBUTES ?? '');
  const detected = defaultResource().merge(detectResources({ detectors: resourceDetectors(env) }));
  const provider = new BasicTracerProvider({
    resource: named ? detected : detected.merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName })),
    spanProcessors: processors,
    sampler,
  });
  return {
    tracer: new ProjectTracer(provider.getTracer('grpc-shop'), unrecordedShortcuts(env)),
    stop: () => provider.shutdown(),
  };
}

const LOG_LEVELS = ['NONE', 'ERROR', 'WARN', 'INFO', 'DEBUG', 'VERBOSE', 'ALL'] as const;

/** A span exporter the environment can ask for; OTLP with its protocol. */
export type ExporterChoice = 'console' | 'zipkin' | 'otlp http/protobuf' | 'otlp http/json' | 'otlp grpc';

const OTLP_PROTOCOLS = ['http/protobuf', 'http/json', 'grpc'];

/** A variable's value as the SDK reads it: trimmed, lower case, undefined when empty. */
function setting(env: NodeJS.ProcessEnv, name: string): string | undefined {
  return env[name]?.trim().toLowerCase() || undefined;
}

/**
 * The span exporters OTEL_TRACES_EXPORTER names (otlp when it names none; "none" and "null" are
 * not exporters), OTLP over the protocol of OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else
 * OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf. An unknown name is a ConfigError, not a silent
 * fallback: traces that go nowhere look like a system with nothing to trace.
 */
export function exportersAskedFor(env: NodeJS.ProcessEnv): ExporterChoice[] {
  const named = (setting(env, 'OTEL_TRACES_EXPORTER') ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '' && name !== 'none' && name !== 'null');
  const unknown = named.filter((name) => !['otlp', 'console', 'zipkin'].includes(name));
  if (unknown.length > 0) {
    throw new ConfigError(
      `OTEL_TRACES_EXPORTER: unknown exporter ${unknown.map((name) => `"${name}"`).join(', ')} (otlp, console, zipkin or none)`,
    );
  }
  const choices = new Set<ExporterChoice>();
  for (const name of named.length === 0 ? ['otlp'] : named) {
    if (name === 'console' || name === 'zipkin') {
      choices.add(name);
      continue;
    }
    const variable = setting(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL')
      ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'
      : 'OTEL_EXPORTER_OTLP_PROTOCOL';
    const protocol = setting(env, variable) ?? 'http/protobuf';
    if (!OTLP_PROTOCOLS.includes(protocol)) {
      throw new ConfigError(`${variable}: unknown protocol "${protocol}" (http/protobuf, http/json or grpc)`);
    }
    choices.add(`otlp ${protocol}` as ExporterChoice);
  }
  return [...choices];
}

/**
 * Refuses an exporter endpoint that cannot be what was meant, read as each exporter reads it: one
 * the OTLP/HTTP exporter cannot make a URL of falls back to localhost:4318 without a word, and the
 * OTLP/gRPC one throws a bare "Invalid URL" or dials a host named after a mistyped scheme. The
 * endpoint of OTLP is OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT (to which
 * OTLP/HTTP appends v1/traces); Zipkin's is OTEL_EXPORTER_ZIPKIN_ENDPOINT. Unset or blank, each
 * exporter takes its default.
 */
export function checkEndpoints(env: NodeJS.ProcessEnv): void {
  for (const choice of exportersAskedFor(env)) {
    if (choice === 'console') continue;
    const specific =
      choice === 'zipkin' ? 'OTEL_EXPORTER_ZIPKIN_ENDPOINT' : 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT';
    const variable = choice === 'zipkin' || env[specific]?.trim() ? specific : 'OTEL_EXPORTER_OTLP_ENDPOINT';
    const value = env[variable];
    if (!value?.trim()) continue;
    const problem =
      choice === 'otlp grpc'
        ? grpcEndpointProblem(value.trim())
        : httpEndpointProblem(value, variable === 'OTEL_EXPORTER_OTLP_ENDPOINT');
    if (problem) throw new ConfigError(`${variable}: "${value}" ${problem}`);
  }
}

/**
 * The longest time in ms a Node.js timer holds: the SDK hands these settings to setTimeout, which
 * takes a longer one as 1 ms (with a TimeoutOverflowWarning): a schedule delay of 3000000000
 * exported every millisecond, and an export timeout of that failed every export at once.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Numbers the SDK and the exporters read, whether 0 is one they take, and whether they are times in ms. */
const NUMBER_SETTINGS: ReadonlyArray<[name: string, zeroTaken: boolean, timer: boolean]> = [
  ['OTEL_BSP_SCHEDULE_DELAY', true, true],
  ['OTEL_BSP_EXPORT_TIMEOUT', false, true],
  ['OTEL_BSP_MAX_QUEUE_SIZE', false, false],
  ['OTEL_BSP_MAX_EXPORT_BATCH_SIZE', false, false],
  ['OTEL_EXPORTER_OTLP_TIMEOUT', false, true],
  ['OTEL_EXPORTER_OTLP_TRACES_TIMEOUT', false, true],
];

/**
 * Refuses the batching, timeout, compression and header settings that the SDK and the exporters
 * would pass over with a warning in their own diagnostics (off by default) and replace by their
 * defaults: a queue size that is not a number, a compression they do not know, a header they
 * cannot decode (sent without it, so a collector that needs it refuses every export).
 */
export function checkExporterSettings(env: NodeJS.ProcessEnv): void {
  for (const [name, zeroTaken, timer] of NUMBER_SETTINGS) {
    const value = env[name]?.trim();
    if (!value) continue;
    const number = Number(value);
    if (!Number.isFinite(number) || number < 0 || (number === 0 && !zeroTaken)) {
      throw new ConfigError(
        `${name}: expected a number ${zeroTaken ? 'of 0 or more' : 'above 0'}, got "${value}"`,
      );
    }
    if (timer && number > MAX_TIMER_MS) {
      throw new ConfigError(`${name}: expected at most ${MAX_TIMER_MS} ms (about 24 days), got "${value}"`);
    }
  }
  for (const name of ['OTEL_EXPORTER_OTLP_COMPRESSION', 'OTEL_EXPORTER_OTLP_TRACES_COMPRESSION']) {
    const value = env[name]?.trim();
    if (value && value !== 'gzip' && value !== 'none') {
      throw new ConfigError(`${name}: expected gzip or none, got "${value}"`);
    }
  }
  for (const name of ['OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_TRACES_HEADERS']) {
    const value = env[name];
    if (value && !value.split(',').every(isHeaderEntry)) {
      // The value is not repeated: a header often holds a secret (an API key, say).
      throw new ConfigError(
        `${name}: expected name=value pairs separated by commas, each name and value with well-formed %-escapes`,
      );
    }
  }
  const attributes = env.OTEL_RESOURCE_ATTRIBUTES;
  const wrong = attributes?.split(',').find((entry) => !isResourceAttribute(entry));
  if (wrong !== undefined) {
    // The SDK drops the whole variable over one wrong entry, as the specification says, and says so
    // only at debug level: the traces would go out without the attributes the operator set.
    throw new ConfigError(
      `OTEL_RESOURCE_ATTRIBUTES: expected key=value pairs separated by commas, with ',' and '=' in a key or value %-encoded and each at most ${RESOURCE_ATTRIBUTE_MAX_LENGTH} characters; got "${wrong.trim()}"`,
    );
  }
}

/** The longest key or value OTEL_RESOURCE_ATTRIBUTES may hold, as the SDK's environment detector reads it. */
const RESOURCE_ATTRIBUTE_MAX_LENGTH = 255;

/** One entry of OTEL_RESOURCE_ATTRIBUTES as the SDK's environment detector takes it. */
function isResourceAttribute(entry: string): boolean {
  if (!entry.trim()) return true;
  const parts = entry.split('=');
  if (parts.length !== 2 || !parts[0]!.trim()) return false;
  try {
    return parts.every((part) => decodeURIComponent(part.trim()).length <= RESOURCE_ATTRIBUTE_MAX_LENGTH);
  } catch {
    return false;
  }
}

/** One entry of an OTLP headers variable as the exporters read it: name=value, both %-decodable. */
function isHeaderEntry(entry: string): boolean {
  if (!entry.trim()) return true;
  const pair = entry.split(';', 1)[0]!;
  const separator = pair.indexOf('=');
  if (separator <= 0) return false;
  const name = pair.slice(0, separator).trim();
  const value = pair.slice(separator + 1).trim();
  if (!name || !value) return false;
  try {
    decodeURIComponent(name);
    decodeURIComponent(value);
    return true;
  } catch {
    return false;
  }
}

/** What is wrong with an HTTP exporter's endpoint; `general`: the one v1/traces is appended to. */
function httpEndpointProblem(value: string, general: boolean): string | undefined {
  const url = parsedUrl(value);
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) {
    return 'is not an http:// or https:// URL';
  }
  if (!general) return undefined;
  // The exporter appends the path to the text as it is, spaces, query and all.
  if (url.search || url.hash || !parsedUrl(`${value}${value.endsWith('/') ? '' : '/'}v1/traces`)) {
    return 'cannot take the path v1/traces after it: give the base URL alone, with no query, fragment or spaces';
  }
  return undefined;
}

/**
 * What is wrong with the OTLP/gRPC exporter's endpoint (trimmed, as it reads it): a lowercase
 * http:// (plaintext) or https:// URL, a unix:// socket, or a bare host and port (TLS, unless
 * OTEL_EXPORTER_OTLP_INSECURE says otherwise). It takes any other scheme, in any case, for one it
 * warns about and then chooses TLS or not by a case-sensitive "http://", and without "//" it dials
 * the scheme as a host name.
 */
function grpcEndpointProblem(value: string): string | undefined {
  const expected = 'is not an http://, https:// or unix:// URL, or a host:port';
  if (value.startsWith('unix://')) return undefined;
  if (value.startsWith('http://') || value.startsWith('https://')) {
    return parsedUrl(value)?.hostname ? undefined : expected;
  }
  // Another scheme, or one with a single slash ("unix:/run/otel.sock", "http:/collector").
  if (/^\w{1,8}:\/\//.test(value) || /^[a-z][\w+.-]*:\/(?!\/)/i.test(value)) return expected;
  // A host and port, and a path the exporter ignores (it warns).
  return parsedUrl(`https://${value}`)?.hostname ? undefined : expected;
}

/** `text` as a URL, or undefined (URL.parse is Node 20.18's, later than the oldest Node this runs on). */
function parsedUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

/** The span exporters the environment asks for, each loaded only when asked for; exported for tests. */
export async function traceExporters(env: NodeJS.ProcessEnv): Promise<SpanExporter[]> {
  const exporters: SpanExporter[] = [];
  // Each reads its own endpoint, headers, timeout and compression from the environment.
  for (const choice of exportersAskedFor(env)) {
    if (choice === 'console') exporters.push(new ConsoleSpanExporter());
    else if (choice === 'zipkin')
      exporters.push(new (await import('@opentelemetry/exporter-zipkin')).ZipkinExporter());
    else if (choice === 'otlp http/json')
      exporters.push(new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter());
    else if (choice === 'otlp grpc')
      exporters.push(new (await import('@opentelemetry/exporter-trace-otlp-grpc')).OTLPTraceExporter());
    else exporters.push(new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter());
  }
  return exporters;
}

const RESOURCE_DETECTORS: Record<string, ResourceDetector> = {
  host: hostDetector,
  os: osDetector,
  serviceinstance: serviceInstanceIdDetector,
  process: processDetector,
  env: envDetector,
};

/**
 * The resource detectors OTEL_NODE_RESOURCE_DETECTORS names, as the Node.js SDK reads it: all of
 * them by default or with "all", none with "none"; an unknown name is a ConfigError.
 */
function resourceDetectors(env: NodeJS.ProcessEnv): ResourceDetector[] {
  const names = (setting(env, 'OTEL_NODE_RESOURCE_DETECTORS') ?? 'all').split(',').map((name) => name.trim());
  if (names.includes('all')) return Object.values(RESOURCE_DETECTORS);
  if (names.includes('none')) return [];
  return names.map((name) => {
    const detector = RESOURCE_DETECTORS[name];
    if (!detector) {
      throw new ConfigError(
        `OTEL_NODE_RESOURCE_DETECTORS: unknown detector "${name}" (${Object.keys(RESOURCE_DETECTORS).join(', ')}, all or none)`,
      );
    }
    return detector;
  });
}
