import type { X509Certificate } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { httpsServerOptions, watchHttpsCertificates } from '../common/https-options.js';
import { limiterOf } from '../common/log-limiter.js';
import type { Logger } from '../common/logger.js';
import type { TlsFiles } from '../common/tls.js';
import type { TlsRefreshOptions } from '../common/tls-files.js';
import { type ClientCertificateGate, gateClientCertificates } from './client-certificate-gate.js';
import { ConnectionTracker } from './connection-tracker.js';
import { type GatewayError, gatewayErrors } from './gateway-error.js';
import type { GatewayTelemetry } from './gateway-telemetry.js';
import { divertPlainHttp, type PlainHttpDivert } from './plain-http-on-tls.js';
import { SocketAnswers } from './socket-answers.js';
import { closeUntrustedClients, type UntrustedClients } from './untrusted-clients.js';

/**
 * Options of {@link HttpFront}: the listening side's part of GatewayOptions (see there), with the
 * gateway's defaults applied to the three it uses too (connection limit, unread answers, stop grace).
 */
export interface HttpFrontOptions {
  /** HTTPS for REST clients: certificate and key, and a CA file to require client certificates. Plain HTTP without. */
  https?: TlsFiles | undefined;
  /** How often the files of `https` are read again; default DEFAULT_TLS_REFRESH_MS. */
  httpsRefreshIntervalMs?: number | undefined;
  /** How long an idle keep-alive connection stays open. Default 5000. */
  keepAliveTimeoutMs?: number | undefined;
  /** How long a client may take to send a request's headers (and, over HTTPS, its handshake). Default 10000. */
  headersTimeoutMs?: number | undefined;
  /** How long a client may take to send a whole request. Default 30000. */
  requestTimeoutMs?: number | undefined;
  /** Most connections open at once (see ConnectionTracker). */
  maxConnections: number;
  /** How long a connection may hold answers its client does not take (see ConnectionTracker). */
  unreadAnswerTimeoutMs: number;
  /** How long the answers under way get at a stop, and on a connection whose client's CA was removed. */
  stopGraceMs: number;
  log: Logger;
  telemetry: Pick<GatewayTelemetry, 'onUnseenRequest' | 'requestIdOf' | 'closingAllConnections'>;
  /** Logs what goes wrong with the TLS files, shared with the gateway's other credentials. */
  tlsProblems: TlsRefreshOptions;
  /**
   * Each request Node hands over; `expectsContinue` when it sent Expect: 100-continue, which is
   * answered 100 only once its body is wanted.
   */
  onRequest: (request: IncomingMessage, response: ServerResponse, expectsContinue: boolean) => void;
  /** A request handed over but not to be routed (an Expect the gateway cannot meet): answered as a request still. */
  refuse: (request: IncomingMessage, response: ServerResponse, error: GatewayError) => void;
}

/**
 * The gateway's listening side: the HTTP or HTTPS server with its timeouts, and what stands between
 * it and the requests: over HTTPS the certificate watching, the divert of plain HTTP sent to the
 * port, the client-certificate gate and the closing of clients whose CA was removed; always the
 * connection tracker (limit, silent and unread connections) and the answers written straight on a
 * socket. Requests go to `onRequest`; what happens to them is the gateway's. Built at once, not
 * listening until `server.listen`; {@link close} is the stop's part here.
 */
export class HttpFront {
  readonly server: Server | HttpsServer;
  readonly connections: ConnectionTracker;
  readonly #log: Logger;
  readonly #telemetry: Pick<GatewayTelemetry, 'closingAllConnections'>;
  readonly #stopGraceMs: number;
  /** What the gateway answers on a socket outside any route (bad bytes, plain HTTP on HTTPS, CONNECT). */
  readonly #socketAnswers: SocketAnswers;
  readonly #stopWatchingCertificates: (() => void) | undefined;
  readonly #plainHttpDivert: PlainHttpDivert | undefined;
  readonly #clientCertificateGate: ClientCertificateGate | undefined;
  /** Closes the HTTPS connections whose client CA left the client-CA file (see untrusted-clients.ts). */
  readonly #untrustedClients: UntrustedClients | undefined;

  constructor(options: HttpFrontOptions) {
    const { log, maxConnections, unreadAnswerTimeoutMs } = options;
    this.#log = log;
    this.#telemetry = options.telemetry;
    this.#stopGraceMs = options.stopGraceMs;
    const headersTimeout = options.headersTimeoutMs ?? 10_000;
    const httpOptions = {
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 5_000,
      headersTimeout,
      requestTimeout: Math.max(options.requestTimeoutMs ?? 30_000, headersTimeout),
      // How often the two timeouts above are enforced.
      connectionsCheckingInterval: Math.min(1_000, headersTimeout),
      // Node would answer a missing Host with an empty 400; the gateway answers it (see framingRefusal).
      requireHostHeader: false,
    };
    const onRequest = (request: IncomingMessage, response: ServerResponse): void =>
      options.onRequest(request, response, false);
    // The HTTPS server whose clients must present a certificate of the client CA, gated below.
    let gated: HttpsServer | undefined;
    if (options.https) {
      const tls = httpsServerOptions(options.https);
      const server = createHttpsServer(
        // A client that never finishes its handshake is closed as one that never sends its headers.
        // A client certificate is checked by the gate below, which answers a refused one in HTTP.
        { ...httpOptions, handshakeTimeout: headersTimeout, ...tls, rejectUnauthorized: false },
        onRequest,
      );
      if (tls.requestCert) gated = server;
      const refresh = {
        ...options.tlsProblems,
        ...(options.httpsRefreshIntervalMs === undefined
          ? {}
          : { refreshIntervalMs: options.httpsRefreshIntervalMs }),
        // Polled after the constructor has set it: the first read is asynchronous.
        onCaTaken: (authorities: readonly X509Certificate[]) => this.#untrustedClients?.caTaken(authorities),
      };
      this.#stopWatchingCertificates = watchHttpsCertificates(server, options.https, refresh, tls);
      this.#plainHttpDivert = divertPlainHttp(server, {
        firstByteTimeoutMs: headersTimeout,
        onPlainHttp: (socket) => this.#socketAnswers.plainHttp(socket),
      });
      this.server = server;
    } else {
      this.server = createServer(httpOptions, onRequest);
    }
    this.connections = new ConnectionTracker(this.server, {
      // Later than Node's own check of headersTimeout (every connectionsCheckingInterval), so that a
      // client sending its headers too slowly is answered 408, and counted, before it is closed.
      firstRequestTimeoutMs: headersTimeout + httpOptions.connectionsCheckingInterval + 500,
      maxConnections,
      onLimit: (action) =>
        limiterOf(log).warn(
          `connection-limit ${action}`,
          { event: 'connection-limit', action, maxConnections },
          action === 'evicted'
            ? 'connection limit reached: closed the connection idle the longest to make room'
            : 'connection limit reached with every connection busy: new connections are answered 503',
        ),
      unreadAnswerTimeoutMs,
      onUnreadAnswer: () =>
        limiterOf(log).warn(
          'unread-answer',
          { event: 'unread-answer', waitedMs: unreadAnswerTimeoutMs },
          'a client took nothing of its answers for too long: connection closed',
        ),
    });
    this.#socketAnswers = new SocketAnswers({
      log,
      telemetry: options.telemetry,
      connections: this.connections,
    });
    // After the tracker, so that its listener is one the gate calls only for a certificate that
    // checked out: counting a refused client as a served connection, idle, it closed the connection
    // idle the longest (an authorized keep-alive one) to make room for it.
    if (gated) {
      this.#clientCertificateGate = gateClientCertificates(gated, {
        firstByteTimeoutMs: headersTimeout,
        onRefused: (socket) => this.#socketAnswers.clientCertificateRefused(socket),
      });
      // After the gate, so that it sees each connection the tracker serves.
      this.#untrustedClients = closeUntrustedClients(gated, {
        connections: this.connections,
        log,
        // The answers under way get as long as at a stop.
        graceMs: options.stopGraceMs,
        ...(options.https?.caFile === undefined ? {} : { caFile: options.https.caFile }),
        ...(options.https?.sources?.caFile === undefined ? {} : { setting: options.https.sources.caFile }),
      });
    }
    // A client sending Expect: 100-continue is told to go on only once the body is wanted.
    this.server.on('checkContinue', (request, response) => options.onRequest(request, response, true));
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) =>
      this.#socketAnswers.clientError(error, socket),
    );
    // Node's own answers to these are an empty 417 and a closed socket: the gateway's carry its envelope.
    this.server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
      options.refuse(request, response, gatewayErrors.expectationFailed(String(request.headers.expect)));
    });
    this.server.on('connect', (request: IncomingMessage, socket: Socket) =>
      this.#socketAnswers.connect(request, socket),
    );
  }

  /**
   * The stop's part of the listening side: takes no more connections, closes the idle ones now and
   * the busy ones when their answer is sent (it says close), and after `stopGraceMs` every one still
   * open; resolves once the server has closed, and stops watching the certificate files.
   */
  async close(): Promise<void> {
    if (this.server.listening) {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      // Idle connections go now; busy ones when their answer is sent (it says close).
      this.connections.closeIdle();
      this.#plainHttpDivert?.destroyWaiting();
      this.#clientCertificateGate?.destroyWaiting();
      const grace = setTimeout(() => {
        this.#log.warn('requests still running after the grace period: closing their connections');
        // Their requests end unanswered by the gateway's doing, not their clients' (see GatewayTelemetry).
        this.#telemetry.closingAllConnections();
        this.server.closeAllConnections();
        this.#plainHttpDivert?.destroyAll();
      }, this.#stopGraceMs);
      await closed;
      clearTimeout(grace);
    }
    this.#stopWatchingCertificates?.();
  }
}
