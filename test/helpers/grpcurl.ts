import { fromBinary, fromJson, type JsonValue, toBinary, toJson } from '@bufbuild/protobuf';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { reflect } from './grpc-clients.js';
import { hostCheckedTls } from './host-checked-tls.js';

/** What a grpcurl command printed, in substance. */
export interface GrpcurlOutcome {
  /** "OK" or the gRPC status name, e.g. "NOT_FOUND". */
  status: string;
  /** `list`: the services; `describe`: the symbol's kind and name; a call: the response as JSON. */
  output: unknown;
}

/**
 * Runs a README grpcurl command line the way stock grpcurl does, knowing nothing but what the
 * server's reflection tells: `list`, `describe SYMBOL`, and `[-d JSON] SERVICE/METHOD` calls with
 * the request parsed as protobuf JSON (unknown fields refused, as grpcurl does).
 */
export async function grpcurl(commandLine: string): Promise<GrpcurlOutcome> {
  const words = shellWords(commandLine);
  if (words.shift() !== 'grpcurl') throw new Error(`not a grpcurl command: ${commandLine}`);
  let data: string | undefined;
  let plaintext = false;
  const tls: { caFile?: string; certFile?: string; keyFile?: string } = {};
  const metadata = new Metadata();
  const positional: string[] = [];
  while (words.length > 0) {
    const word = words.shift()!;
    if (word === '-plaintext') plaintext = true;
    else if (word === '-d') data = words.shift();
    else if (word === '-H') {
      const header = words.shift() ?? '';
      const colon = header.indexOf(':');
      metadata.add(header.slice(0, colon).trim().toLowerCase(), header.slice(colon + 1).trim());
    } else if (word === '-cacert') tls.caFile = words.shift()!;
    else if (word === '-cert') tls.certFile = words.shift()!;
    else if (word === '-key') tls.keyFile = words.shift()!;
    else if (word.startsWith('-')) throw new Error(`unsupported grpcurl flag ${word}`);
    else positional.push(word);
  }
  const [address, verb, symbol] = positional;
  if (!address || !verb) throw new Error(`incomplete grpcurl command: ${commandLine}`);
  // As grpcurl: TLS unless -plaintext, checking the server's certificate against the address's host.
  const { credentials: channel, options } = plaintext
    ? { credentials: credentials.createInsecure(), options: {} }
    : hostCheckedTls(address, tls);
  const schema = await reflect(address, 'v1', channel, options);
  if (verb === 'list') return { status: 'OK', output: schema.services };
  if (verb === 'describe') {
    const found = symbol ? schema.registry.get(symbol) : undefined;
    if (!found) throw new Error(`Symbol not found: ${symbol}`);
    return { status: 'OK', output: `${found.kind} ${'typeName' in found ? found.typeName : symbol}` };
  }
  const [serviceName, methodName] = verb.split('/');
  const method = schema.registry.getService(serviceName ?? '')?.methods.find((m) => m.name === methodName);
  if (!method) throw new Error(`no method ${verb} on ${address}`);
  const request = fromJson(method.input, JSON.parse(data ?? '{}') as JsonValue);
  const client = new Client(address, channel, options);
  try {
    const response = await new Promise<Uint8Array>((resolve, reject) => {
      client.makeUnaryRequest(
        `/${serviceName}/${methodName}`,
        (message: Uint8Array) => Buffer.from(message),
        (bytes: Buffer) => bytes,
        toBinary(method.input, request),
        metadata,
        { deadline: Date.now() + 10_000 },
        (error: ServiceError | null, value?: Uint8Array) =>
          error || !value ? reject(error) : resolve(value),
      );
    });
    return { status: 'OK', output: toJson(method.output, fromBinary(method.output, response)) };
  } catch (error) {
    const code = (error as ServiceError).code;
    return { status: STATUS_NAMES[code] ?? String(code), output: (error as ServiceError).details };
  } finally {
    client.close();
  }
}

const STATUS_NAMES: Record<number, string> = {
  1: 'CANCELLED',
  2: 'UNKNOWN',
  3: 'INVALID_ARGUMENT',
  4: 'DEADLINE_EXCEEDED',
  5: 'NOT_FOUND',
  6: 'ALREADY_EXISTS',
  7: 'PERMISSION_DENIED',
  8: 'RESOURCE_EXHAUSTED',
  9: 'FAILED_PRECONDITION',
  12: 'UNIMPLEMENTED',
  13: 'INTERNAL',
  14: 'UNAVAILABLE',
  16: 'UNAUTHENTICATED',
};

/** Splits a command line as a POSIX shell would for the simple quoting README examples use. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  const pattern = /'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let match = pattern.exec(line); match; match = pattern.exec(line)) {
    words.push(match[1] ?? match[2]?.replace(/\\(.)/g, '$1') ?? match[3]!);
  }
  return words;
}

/** The grpcurl command lines of a Markdown text's sh code blocks. */
export function grpcurlLines(markdown: string): string[] {
  return markdown
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('grpcurl '));
}
