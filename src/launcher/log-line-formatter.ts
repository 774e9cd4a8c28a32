const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
const OMITTED = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'component']);

/**
 * Characters a terminal acts on rather than shows: C0 controls (a line feed or carriage return
 * would start a forged line, ESC an escape sequence that recolours, moves the cursor or retitles
 * the window), DEL, C1 controls (U+009B is CSI to some terminals), the Unicode line and paragraph
 * separators, and the bidirectional overrides and isolates, which reorder what is shown.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters it finds.
const UNSHOWABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED_ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * A field's text shown as it is (`code=OK`); any other is quoted as JSON (`reason="a b"`), so that
 * text with a space or an `=` in it, an upstream's error details say, cannot pass for fields of its own.
 */
const BARE = /^[^\s"=\\]+$/;

/**
 * `text` with every character a terminal would act on written as an escape (`\n`, `\u001b`): a
 * decoded JSON string holds whatever its writer chose (a registered node's descriptor text, an
 * upstream's error details), and printed raw it could forge a line or drive the terminal.
 */
function escapeUnshowable(text: string): string {
  return text.replace(UNSHOWABLE, (char) => NAMED_ESCAPES[char] ?? unicodeEscape(char));
}

/** `\u001b` for ESC: the escape JSON and JavaScript both read back as the character. */
function unicodeEscape(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/**
 * Turns one pino JSON line into "HH:MM:SS.mmm LEVEL message key=value ..." for a person at a
 * terminal; any other line is returned as it is but for the characters a terminal acts on, which
 * are escaped there too (see escapeUnshowable).
 */
export function formatLogLine(line: string): string {
  if (!line.startsWith('{')) return escapeUnshowable(line);
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return escapeUnshowable(line);
  }
  if (typeof record.level !== 'number' || typeof record.time !== 'number') return escapeUnshowable(line);
  // A time no Date holds (1e400 reads as Infinity) made toISOString throw in the launcher's line
  // handler: the launcher crashed, and its exit killed every component.
  const date = new Date(record.time);
  if (Number.isNaN(date.getTime())) return escapeUnshowable(line);
  const time = date.toISOString().slice(11, 23);
  const level = (LEVELS[record.level] ?? String(record.level)).padEnd(5);
  const extras = Object.entries(record)
    .filter(([key]) => !OMITTED.has(key))
    .map(
      ([key, value]) =>
        `${key}=${typeof value === 'string' && BARE.test(value) ? value : JSON.stringify(value)}`,
    );
  // A msg other than text is shown as JSON: String() of an object whose toString is no function
  // ({"toString":1}) threw, in the launcher's line handler, as a bad time did.
  const msg = typeof record.msg === 'string' ? record.msg : (JSON.stringify(record.msg) ?? '');
  return escapeUnshowable([time, level, msg, ...extras].join(' ').trimEnd());
}

/** pino's numbers for the levels of the lines the launcher writes itself. */
const LEVEL_NUMBERS = { info: 30, warn: 40, error: 50 } as const;
export type LauncherLineLevel = keyof typeof LEVEL_NUMBERS;

/**
 * A line the launcher writes itself, shaped as a component's pino line (level, time, component,
 * msg), so that with LOG_FORMAT=json every line after its `[name]` prefix is one JSON object that
 * log collectors can read. `source` tells apart what the launcher says about a component, or what a
 * component wrote outside its logger, from the component's own log lines.
 */
export function jsonLogLine(
  component: string,
  level: LauncherLineLevel,
  msg: string,
  source?: 'launcher' | 'stdout' | 'stderr',
): string {
  return JSON.stringify({
    level: LEVEL_NUMBERS[level],
    time: Date.now(),
    component,
    ...(source ? { source } : {}),
    msg,
  });
}

/**
 * A component's output line for LOG_FORMAT=json: its log lines as they are (pino writes `level`
 * first), anything else it wrote (Node's warnings, a crash's stack, a message printed before its
 * logger existed) wrapped as a line of its own, at level error when it came on stderr.
 */
export function componentJsonLine(component: string, line: string, stream: 'stdout' | 'stderr'): string {
  if (line.startsWith('{"level":')) return escapeUnshowableInJson(line);
  return escapeUnshowableInJson(jsonLogLine(component, stream === 'stderr' ? 'error' : 'info', line, stream));
}

/**
 * What JSON leaves raw of the characters a terminal acts on: DEL, the C1 controls, the line and
 * paragraph separators, the bidirectional overrides (JSON escapes only C0 controls). Outside a
 * string none of them is valid JSON, so written as `\uXXXX` they leave a line the same JSON to
 * its reader, and a terminal showing the line shows them as text.
 */
const UNSHOWABLE_IN_JSON = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function escapeUnshowableInJson(line: string): string {
  return line.replace(UNSHOWABLE_IN_JSON, unicodeEscape);
}
