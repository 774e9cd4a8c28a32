import type { Socket } from 'node:net';

/**
 * Connections an HTTPS server holds until their first bytes come, before anything at the HTTP
 * level knows them (see divertPlainHttp, gateClientCertificates): each is closed if it sends
 * nothing within `timeoutMs`, and all of them by destroyWaiting() at a stop, whose close would
 * otherwise wait for each that stays silent.
 */
export class FirstBytesWait {
  readonly #timeoutMs: number;
  readonly #waiting = new Set<Socket>();

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  /** Calls `then` with the socket paused and its first chunk read, or closes it when none comes in time. */
  watch(socket: Socket, then: (chunk: Buffer) => void): void {
    const timer = setTimeout(() => socket.destroy(), this.#timeoutMs);
    timer.unref();
    this.#waiting.add(socket);
    socket.once('close', () => {
      clearTimeout(timer);
      this.#waiting.delete(socket);
    });
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      this.#waiting.delete(socket);
      socket.pause();
      then(chunk);
    });
  }

  /** Closes every connection that has sent nothing yet. */
  destroyWaiting(): void {
    for (const socket of this.#waiting) socket.destroy();
    this.#waiting.clear();
  }
}
