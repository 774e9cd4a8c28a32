/**
 * A growable byte buffer that JSON text is written into, for the response renderer.
 *
 * Strings are copied byte for byte from the protobuf message when they need no escaping (printable
 * ASCII without `"` or `\`, the common case), so most response strings never become JS strings;
 * anything else goes through JSON.stringify, whose output this fast path matches exactly.
 */
export class JsonWriter {
  #buf: Buffer;
  /** The write position; a renderer may rewind to a position it saved (see {@link rewind}). */
  #pos = 0;

  constructor(initialBytes = 512) {
    this.#buf = Buffer.allocUnsafe(initialBytes);
  }

  /** The current length, to {@link rewind} to later. */
  get position(): number {
    return this.#pos;
  }

  /** Drops everything written after `position`. */
  rewind(position: number): void {
    this.#pos = position;
  }

  /** Leaves `count` bytes unwritten (for a header filled in later). */
  skip(count: number): void {
    if (this.#pos + count > this.#buf.length) this.#grow(count);
    this.#pos += count;
  }

  /** Appends one byte, e.g. `,` or `{`. */
  byte(value: number): void {
    if (this.#pos >= this.#buf.length) this.#grow(1);
    this.#buf[this.#pos++] = value;
  }

  /** Appends bytes that are already JSON (keys and constants the renderer encoded in advance). */
  raw(bytes: Uint8Array): void {
    const length = bytes.length;
    if (this.#pos + length > this.#buf.length) this.#grow(length);
    const buf = this.#buf;
    let pos = this.#pos;
    // A loop beats a native copy for the few bytes of a key.
    for (let i = 0; i < length; i++) buf[pos++] = bytes[i]!;
    this.#pos = pos;
  }

  /** Overwrites one byte already written, at `position`. */
  put(position: number, value: number): void {
    this.#buf[position] = value;
  }

  /** Appends a string known to be ASCII (numbers, names, punctuation). */
  ascii(text: string): void {
    const length = text.length;
    if (this.#pos + length > this.#buf.length) this.#grow(length);
    const buf = this.#buf;
    let pos = this.#pos;
    for (let i = 0; i < length; i++) buf[pos++] = text.charCodeAt(i);
    this.#pos = pos;
  }

  /** Appends an integer (|value| < 2^53) as JSON, without making a string for the common small ones. */
  integer(value: number): void {
    if (value < 0 || value > 0x7fffffff) {
      this.ascii(String(value));
      return;
    }
    let digits = 1;
    for (let rest = value; rest >= 10; rest = (rest / 10) | 0) digits++;
    if (this.#pos + digits > this.#buf.length) this.#grow(digits);
    const buf = this.#buf;
    let pos = this.#pos + digits;
    this.#pos = pos;
    let rest = value;
    do {
      const next = (rest / 10) | 0;
      buf[--pos] = 0x30 + rest - next * 10;
      rest = next;
    } while (rest > 0);
  }

  /** Appends a JS string as a JSON string literal. */
  string(text: string): void {
    this.utf8(JSON.stringify(text));
  }

  /** Appends any JS string as UTF-8. */
  utf8(text: string): void {
    const length = Buffer.byteLength(text);
    if (this.#pos + length > this.#buf.length) this.#grow(length);
    this.#pos += this.#buf.write(text, this.#pos, 'utf8');
  }

  /**
   * Appends the UTF-8 bytes `source[start, end)` as a JSON string literal. Invalid UTF-8 becomes
   * U+FFFD (as Buffer#toString does), so the output is always valid JSON.
   */
  stringFromUtf8(source: Buffer, start: number, end: number): void {
    if (this.#pos + end - start + 2 > this.#buf.length) this.#grow(end - start + 2);
    const buf = this.#buf;
    let pos = this.#pos;
    buf[pos++] = 0x22;
    for (let i = start; i < end; i++) {
      const byte = source[i]!;
      if (byte < 0x20 || byte > 0x7f || byte === 0x22 || byte === 0x5c) {
        // Needs escaping or UTF-8 decoding: JSON.stringify does both, from the start of the string.
        this.string(source.toString('utf8', start, end));
        return;
      }
      buf[pos++] = byte;
    }
    buf[pos++] = 0x22;
    this.#pos = pos;
  }

  /** The bytes written so far (a view, valid until the next write). */
  finish(): Buffer {
    return this.#buf.subarray(0, this.#pos);
  }

  #grow(extra: number): void {
    const grown = Buffer.allocUnsafe(Math.max(this.#pos + extra, this.#buf.length * 2));
    this.#buf.copy(grown, 0, 0, this.#pos);
    this.#buf = grown;
  }
}
