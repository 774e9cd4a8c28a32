import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Debian's Prometheus (`apt-get install prometheus`, 2.42 on bookworm), run by the scrape test. */
export const PROMETHEUS = process.env.PROMETHEUS_PATH ?? '/usr/bin/prometheus';

/** Its `promtool`, from the same package: beside the binary. */
export const PROMTOOL = process.env.PROMTOOL_PATH ?? join(dirname(PROMETHEUS), 'promtool');

/** Whether both are installed (`.ci/run` installs them; under CI=true a missing one is a failure). */
export const havePrometheus = existsSync(PROMETHEUS) && existsSync(PROMTOOL);

/**
 * The value of one sample in Prometheus's text format: the first line of `name` whose labels
 * include every one of `labels`; undefined when there is none.
 */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const braces = line.startsWith(`${name}{`);
    if (!braces && !line.startsWith(`${name} `)) continue;
    const close = braces ? line.lastIndexOf('}') : name.length - 1;
    const labelText = braces ? line.slice(name.length + 1, close) : '';
    if (Object.entries(labels).every(([key, value]) => labelText.includes(`${key}="${value}"`))) {
      return Number(line.slice(close + 2));
    }
  }
  return undefined;
}

/** Scrapes a /metrics URL: its text. */
export async function scrape(url: string): Promise<string> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.text();
}
