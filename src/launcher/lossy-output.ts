/**
 * Lines written to the launcher's output, which may stop being read (a terminal paused with Ctrl-S
 * or in a pager's copy mode, `npm start | less` left unread): while the stream holds more than its
 * buffer, further lines are dropped and counted, and the count is written once it drains again. A
 * terminal is made non-blocking for this, as Node writes to one synchronously: before, the launcher
 * blocked in the write, so it stopped reading the components' output, they blocked writing their log
 * lines, requests went unanswered, and SIGTERM was not handled until the terminal was read again.
 * Through a pipe, the launcher kept every line instead, and its memory grew without bound.
 */
export class LossyOutput {
  readonly #stream: NodeJS.WriteStream;
  #blocked = false;
  #dropped = 0;
  readonly #droppedLine: (dropped: number) => string;

  /** `droppedLine` words the line that says how many were dropped. */
  constructor(stream: NodeJS.WriteStream, droppedLine: (dropped: number) => string) {
    this.#stream = stream;
    this.#droppedLine = droppedLine;
    const handle = (stream as { _handle?: { setBlocking?: (blocking: boolean) => void } })._handle;
    if (stream.isTTY) handle?.setBlocking?.(false);
    // A reader that went away is not the launcher's failure: the components run on.
    stream.on('error', () => {});
    stream.on('drain', () => {
      this.#blocked = false;
      if (this.#dropped === 0) return;
      const dropped = this.#dropped;
      this.#dropped = 0;
      this.write(this.#droppedLine(dropped));
    });
  }

  write(line: string): void {
    if (this.#blocked) {
      this.#dropped++;
      return;
    }
    if (!this.#stream.write(`${line}\n`)) this.#blocked = true;
  }

  /** Resolves once what was written has gone out, or after `timeoutMs`, before the process exits. */
  flush(timeoutMs: number): Promise<void> {
    if (this.#stream.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      // Its callback comes once all written before it has gone out, or failed (a reader gone):
      // 'drain' comes only after a write that found the stream full, so a few lines still on their
      // way, or a stream failed, held the exit for the whole `timeoutMs`.
      this.#stream.write('', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
