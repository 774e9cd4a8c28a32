import { execFileSync } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of a real server, for fault injection: forward normally, `refuse()` (stop
 * listening and reset every connection, as a stopped server does), `blackhole()` (accept and hold
 * connections but pass nothing either way, as a dropped network does), then `restore()`.
 */
export class TcpProxy {
  readonly #target: { host: string; port: number; localAddress?: string };
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #port = 0;
  #mode: 'forward' | 'blackhole' | 'refuse' | 'delay' = 'forward';
  #held = 0;
  /** Connections a delay accepted, forwarded once restored. */
  readonly #delayed: Socket[] = [];
  #cutAfter: ((chunk: Buffer) => boolean) | undefined;

  private constructor(target: { host: string; port: number; localAddress?: string }) {
    this.#target = target;
  }

  /**
   * Starts a proxy on 127.0.0.1 with a port the OS chose. With `localAddress` (e.g. 127.0.0.2) it
   * connects to the target from that address: a second host, as the target sees it.
   */
  static async start(target: { host: string; port: number; localAddress?: string }): Promise<TcpProxy> {
    const proxy = new TcpProxy(target);
    await proxy.#listen(0);
    return proxy;
  }

  get port(): number {
    return this.#port;
  }

  /**
   * How many connections to the proxy are established on the clients' side, as the kernel lists them
   * (`ss`): a held connection's client end stays open until the client closes it, which the proxy,
   * paused, never reads. For tests that a client ends the attempts it gave up.
   */
  clientConnectionsOpen(): number {
    return execFileSync('ss', ['-Htn', 'state', 'established', `dport = :${this.#port}`], {
      encoding: 'utf8',
    })
      .split('\n')
      .filter(Boolean).length;
  }

  /** How many connections a blackhole accepted and held (not counting open ones it stopped). */
  get connectionsHeld(): number {
    return this.#held;
  }

  /** Stops listening (new connections are refused) and resets every open connection. */
  async refuse(): Promise<void> {
    this.#mode = 'refuse';
    const server = this.#server;
    this.#server = undefined;
    this.#dropAll();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Keeps accepting, but from now on nothing passes, on new connections or on open ones. */
  blackhole(): void {
    this.#mode = 'blackhole';
    for (const socket of this.#sockets) {
      socket.unpipe();
      socket.pause();
    }
  }

  /**
   * Accepts new connections and leaves them unanswered until restore() forwards them, what they
   * sent included: a slow host that answers late, where a blackhole's connections are reset or held
   * for ever. Open connections go on as they were.
   */
  delay(): void {
    this.#mode = 'delay';
  }

  /**
   * Passes the next chunk a client sends that `matches` on to the server, then passes nothing back
   * and, 200 ms later, closes both ends: the server got the request and its answer is lost, as when
   * a connection breaks while a statement runs.
   */
  cutAfter(matches: (chunk: Buffer) => boolean): void {
    this.#cutAfter = matches;
  }

  /**
   * Forwards again, on the same port, a delay's connections included. Connections held by a
   * blackhole are reset, or with `keepHeld` go on being held: as a TCP connect to a host that dropped
   * packets waits on, the kernel retrying its SYN ever more slowly, after the host can be reached again.
   */
  async restore({ keepHeld = false }: { keepHeld?: boolean } = {}): Promise<void> {
    if (this.#mode === 'blackhole' && !keepHeld) this.#dropAll();
    this.#mode = 'forward';
    if (!this.#server) await this.#listen(this.#port);
    for (const client of this.#delayed.splice(0)) if (!client.destroyed) this.#forward(client);
  }

  async close(): Promise<void> {
    await this.refuse();
  }

  #dropAll(): void {
    for (const socket of this.#sockets) socket.resetAndDestroy();
    this.#sockets.clear();
  }

  #listen(port: number): Promise<void> {
    const server = createServer((client) => this.#accept(client));
    this.#server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        const address = server.address();
        this.#port = typeof address === 'object' && address ? address.port : port;
        resolve();
      });
    });
  }

  #accept(client: Socket): void {
    this.#track(client);
    if (this.#mode === 'delay') {
      client.pause();
      this.#delayed.push(client);
      return;
    }
    if (this.#mode !== 'forward') {
      this.#held++;
      client.pause();
      return;
    }
    this.#forward(client);
  }

  #forward(client: Socket): void {
    const { host, port, localAddress } = this.#target;
    const upstream = connect({ host, port, ...(localAddress ? { localAddress } : {}) });
    this.#track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const closeBoth = (): void => {
      client.destroy();
      upstream.destroy();
    };
    // Runs after the pipe's own listener, which has written the chunk to the server already.
    client.on('data', (chunk: Buffer) => {
      if (!this.#cutAfter?.(chunk)) return;
      this.#cutAfter = undefined;
      upstream.unpipe(client);
      setTimeout(closeBoth, 200);
    });
    client.on('close', closeBoth);
    upstream.on('close', closeBoth);
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => this.#sockets.delete(socket));
  }
}
