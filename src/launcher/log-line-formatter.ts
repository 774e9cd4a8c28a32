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
