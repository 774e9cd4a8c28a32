import { readFileSync } from 'node:fs';
import { Agent, type IncomingHttpHeaders, request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, type Socket } from 'node:net';

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface HttpOptions {
  body?: string | Buffer | undefined;
  /** A header given as a list is sent once per value. */
  headers?: Record<string, string | number | string[]>;
  agent?: Agent | false;
}

/**
 * Sends one HTTP/1.1 request with node:http and resolves with the status, the headers and the body
 * as the exact text the server sent. Without an `agent`, node's global agent is used.
 */
export function send(url: string, options: HttpOptions & { method?: string } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const outgoing = request(
      url,
      {
        method: options.method ?? 'GET',
        headers: options.headers,
        ...(options.agent === undefined ? {} : { agent: options.agent }),
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        response.on('error', reject);
      },
    );
    outgoing.on('error', reject);
    outgoing.end(options.body);
  });
}

/** One request to 127.0.0.1:port on a connection of its own unless an agent is given. */
export function http(
  port: number,
  method: string,
  path: string,
  options: HttpOptions = {},
): Promise<HttpResult> {
  return send(`http://127.0.0.1:${port}${path}`, { ...options, method, agent: options.agent ?? false });
}

/** A JSON request as the book's test client makes it. */
export function httpJson(port: number, method: string, path: string, body?: unknown, agent?: Agent) {
  return http(port, method, path, {
    headers: { 'Content-Type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    ...(agent ? { agent } : {}),
  });
}

/** A keep-alive agent with one socket: consecutive requests share one connection. */
export function oneConnection(): Agent {
  return new Agent({ keepAlive: true, maxSockets: 1 });
}

/** Writes raw bytes on a new connection and resolves with everything read until the server closes it. */
export function raw(port: number, bytes: string | Buffer, { endAfterWrite = false } = {}): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  const answer = everythingRead(socket);
  socket.write(bytes);
  if (endAfterWrite) socket.end();
  return answer;
}

/** Everything `socket` reads until it closes; a reset after some answer still counts as one. */
function everythingRead(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (chunks.length > 0) resolve(Buffer.concat(chunks).toString('utf8'));
      else reject(error);
    });
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/**
 * Like {@link raw}, writing each piece 50 ms after the one before, so that the server reads them
 * apart (Node's HTTP parser then sees each as a packet of its own).
 */
export function rawInPieces(port: number, pieces: readonly string[]): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  const answer = everythingRead(socket);
  pieces.forEach((piece, index) => {
    setTimeout(() => {
      if (!socket.destroyed) socket.write(piece);
    }, index * 50);
  });
  return answer;
}

/** The body of a raw HTTP response. */
export function rawBody(response: string): string {
  return response.slice(response.indexOf('\r\n\r\n') + 4);
}

/** One HTTPS GET that trusts `ca`, optionally with a client certificate. */
export function httpsGet(
  url: string,
  ca: string,
  client?: { certFile: string; keyFile: string },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = httpsRequest(
      url,
      {
        ca: readFileSync(ca),
        ...(client ? { cert: readFileSync(client.certFile), key: readFileSync(client.keyFile) } : {}),
        agent: false,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    outgoing.on('error', reject);
    outgoing.end();
  });
}
