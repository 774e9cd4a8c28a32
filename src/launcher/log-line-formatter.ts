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
 * Turns one pino JSON line into "HH:MM:SS.mmm LEVEL message key=value ..." for a person at a
 * terminal; any other line is returned as it is.
 */
export function formatLogLine(line: string): string {
  if (!line.startsWith('{')) return line;
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof record.level !== 'number' || typeof record.time !== 'number') return line;
  const time = new Date(record.time).toISOString().slice(11, 23);
  const level = (LEVELS[record.level] ?? String(record.level)).padEnd(5);
  const extras = Object.entries(record)
    .filter(([key]) => !OMITTED.has(key))
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  return [time, level, String(record.msg ?? ''), ...extras].join(' ').trimEnd();
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
  if (line.startsWith('{"level":')) return line;
  return jsonLogLine(component, stream === 'stderr' ? 'error' : 'info', line, stream);
}
