import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { METRICS_PORT_OFFSET } from '../../src/common/observability-settings.js';
import { SHOP_COMPONENTS } from '../../src/launcher/components.js';
import { createTestDatabase, type TestDatabase } from '../helpers/mysql.js';
import { havePrometheus, PROMETHEUS, PROMTOOL, sample, scrape } from '../helpers/prometheus.js';
import {
  type ComponentProcess,
  descendantPids,
  freePort,
  isRunning,
  launcherEnv,
  spawnComponent,
  spawnLogged,
} from './support/processes.js';

// The README's "Metrics (Prometheus)" section run as written: `npm start` (on free ports), scraped
// by a real Prometheus (Debian's 2.42) through the README's own scrape configuration, every PromQL
// query of its panel list evaluated through Prometheus's HTTP API, and each component's /metrics
// linted by `promtool check metrics`. The queries and the scrape configuration are read out of
// README.md, so that the README and this test cannot drift apart. Under CI=true a missing
// Prometheus fails the run (.ci/run installs it); elsewhere the test says why it does not run.

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The body of the first ```lang block after `heading` in the README. */
function readmeBlock(heading: string, lang: string): string {
  const at = README.indexOf(heading);
  if (at < 0) throw new Error(`README.md has no "${heading}"`);
  const open = README.indexOf(`\`\`\`${lang}\n`, at);
  const close = README.indexOf('\n```', open);
  if (open < 0 || close < 0) throw new Error(`README.md has no ${lang} block after "${heading}"`);
  return README.slice(open + lang.length + 4, close + 1);
}

/** The README's PromQL queries: a line each, a line indented under it continuing it; `#` lines say what for. */
const README_QUERIES: readonly string[] = readmeBlock('A sample PromQL query per panel.', 'promql')
  .split('\n')
  .reduce<string[]>((queries, line) => {
    if (line.trim() === '' || line.startsWith('#')) return queries;
    if (/^\s/.test(line) && queries.length > 0) queries[queries.length - 1] += ` ${line.trim()}`;
    else queries.push(line.trim());
    return queries;
  }, []);

const README_SCRAPE_CONFIG = readmeBlock('A scrape configuration for `npm start` on one machine:', 'yaml');

/** One row of the README's table of metrics. */
interface MetricsRow {
  /** Its metrics; `process_*` for every metric of that prefix. */
  readonly names: string[];
  /** One type for every name, or one per name. */
  readonly types: string[];
  /** The components that serve them. */
  readonly from: string[];
  /** Served on MySQL only. */
  readonly mysqlOnly: boolean;
}

/** The README's table of metrics: `| metric | type | labels | from |`. */
const README_METRICS: readonly MetricsRow[] = (() => {
  const header = '| metric | type | labels | from |\n|---|---|---|---|\n';
  const start = README.indexOf(header);
  if (start < 0) throw new Error('README.md has no table of metrics');
  const rows = README.slice(start + header.length).split('\n');
  return rows
    .slice(
      0,
      rows.findIndex((line) => !line.startsWith('|')),
    )
    .map((line) => {
      const [metric, type, , from] = line.slice(1, -1).split('|');
      const listed = [...metric!.matchAll(/`([a-z_*]+)`/g)].map((match) => match[1]!);
      // `db_client_connection_count` / `_pending_requests`: a suffix of the first name's stem.
      const stem = listed[0]!.replace(/_[a-z]+$/, '');
      const names = listed.map((name) => (name.startsWith('_') ? `${stem}${name}` : name));
      const types = [...withoutParentheses(type!).matchAll(/\b(counter|gauge|histogram|summary)s?\b/g)].map(
        (match) => match[1]!,
      );
      const served = from!.split('→')[0]!;
      const components = /every process/.test(served)
        ? [...SHOP_COMPONENTS.map((component) => component.name)]
        : served
            .replace('services', 'goods, members, purchases')
            .replace(/ on MySQL/, '')
            .split(',')
            .map((word) => word.trim());
      return { names, types, from: components, mysqlOnly: / on MySQL/.test(served) };
    });
})();

/** `text` without its parenthesized parts, nested ones included. */
function withoutParentheses(text: string): string {
  let depth = 0;
  let kept = '';
  for (const char of text) {
    if (char === '(') depth++;
    else if (char === ')') depth--;
    else if (depth === 0) kept += char;
  }
  return kept;
}

/** Where each component serves /metrics with `npm start`'s defaults: its metrics port, or its own (the gateway). */
const DEFAULT_SCRAPE_PORTS = new Map(
  SHOP_COMPONENTS.map((component) => {
    const port = Number(component.settings.port!.default);
    return [component.name, component.settings.metricsPort ? port + METRICS_PORT_OFFSET : port];
  }),
);

/** Prometheus's GET /api/v1/targets, the fields read here. */
interface TargetsAnswer {
  data: {
    activeTargets: Array<{ scrapeUrl: string; health: string; lastError: string; lastScrape: string }>;
  };
}

interface Series {
  metric: Record<string, string>;
  value: [number, string];
}

/**
 * What each of the README's queries must give once the shop had the test's traffic. A query the
 * README gains must be added here (the test fails until it is): whether it has data in a healthy
 * shop, and what.
 */
type Panel =
  | { readonly check: (series: Series[]) => void }
  | {
      /** Why a healthy shop gives it no data: the query must then parse and give none. */
      readonly noDataWhenHealthy: string;
      /**
       * The same query with its fault filter widened, which must have data: its names are the
       * shop's. None where no series of it exists at all in this run.
       */
      readonly widened?: (query: string) => string;
    };

const numbers = (series: Series[], labels: Record<string, string>): number[] =>
  series
    .filter((each) => Object.entries(labels).every(([key, value]) => each.metric[key] === value))
    .map((each) => Number(each.value[1]));

/** One series with `labels` whose value is a number above 0 (not NaN: some rate to take a quantile of). */
function expectPositive(series: Series[], labels: Record<string, string>): void {
  expect(numbers(series, labels), JSON.stringify(series)).toEqual([expect.any(Number)]);
  expect(numbers(series, labels)[0], JSON.stringify(series)).toBeGreaterThan(0);
}

const mysqlUrl = inject('mysqlUrl');

const PANELS: Record<string, Panel> = {
  'sum by (http_route, http_request_method) (rate(http_server_request_duration_seconds_count[5m]))': {
    check(series) {
      expectPositive(series, { http_route: '/goods', http_request_method: 'GET' });
      expectPositive(series, { http_route: '/members', http_request_method: 'GET' });
      expectPositive(series, { http_route: '/purchases', http_request_method: 'POST' });
    },
  },
  'sum by (http_route) (rate(http_server_request_duration_seconds_count{http_response_status_code=~"5.."}[5m]) or rate(http_server_request_duration_seconds_count{error_type="answer_cut_short"}[5m])) / sum by (http_route) (rate(http_server_request_duration_seconds_count[5m]))':
    {
      // The 503s of the pipelining bound (see traffic): a 5xx a healthy gateway gives on demand.
      check(series) {
        expectPositive(series, { http_route: '/goods' });
        expect(numbers(series, { http_route: '/goods' })[0]).toBeLessThan(1);
      },
    },
  'histogram_quantile(0.99, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket[5m])))':
    {
      check(series) {
        for (const route of ['/goods', '/members', '/purchases'])
          expectPositive(series, { http_route: route });
      },
    },
  'shop_gateway_connections / shop_gateway_connections_max': {
    check(series) {
      expect(series).toHaveLength(1);
      expect(Number(series[0]!.value[1])).toBeGreaterThanOrEqual(0);
      expect(Number(series[0]!.value[1])).toBeLessThan(0.8);
    },
  },
  'sum by (grpc_method) (rate(grpc_server_handled_total{grpc_code=~"Unknown|DeadlineExceeded|Internal|Unavailable|DataLoss"}[5m]))':
    {
      noDataWhenHealthy:
        "a healthy shop has no faults of its own to count; the callers' mistakes it answers (NotFound, Unauthenticated, ResourceExhausted) are not faults",
      widened: (query) => query.replace(/grpc_code=~"[^"]*"/, 'grpc_code=~".+"'),
    },
  'histogram_quantile(0.99, sum by (le, db_operation_name, db_collection_name) (rate(db_client_operation_duration_seconds_bucket[5m])))':
    {
      check(series) {
        expectPositive(series, { db_operation_name: 'SELECT', db_collection_name: 'goods' });
      },
    },
  'db_client_connection_count{state="used"} / ignoring(state) db_client_connection_max':
    mysqlUrl === ''
      ? {
          noDataWhenHealthy:
            'the pool is MySQL\'s: on SQLite (this run: no MySQL, see "MySQL tests will skip") no service has one',
        }
      : {
          check(series) {
            // One pool per service, none of its 11 connections held between calls.
            expect(series.map((each) => each.metric.db_system_name)).toEqual(['mysql', 'mysql', 'mysql']);
            for (const each of series) expect(Number(each.value[1])).toBe(0);
          },
        },
  shop_password_hash_queue_depth: {
    check(series) {
      expect(series.map((each) => each.value[1])).toEqual(['0']);
    },
  },
  'sum(rate(shop_sign_in_throttled_total[5m]))': {
    check(series) {
      expectPositive(series, {});
    },
  },
  'sum(rate(shop_sign_in_checks_total{outcome="failed"}[10m])) / sum(rate(shop_sign_in_checks_total[10m]))': {
    // The traffic's guessed sign-ins failed their checks; a share, so at most 1.
    check(series) {
      expectPositive(series, {});
      expect(numbers(series, {})[0]).toBeLessThanOrEqual(1);
    },
  },
  'sum by (name) (shop_registry_nodes{state="serving"})': {
    check(series) {
      for (const name of ['goods', 'members', 'purchases', 'gateway']) {
        expect(numbers(series, { name }), name).toEqual([1]);
      }
    },
  },
  'changes(shop_registry_revision[10m])': {
    check(series) {
      expect(series).toHaveLength(1);
      expect(Number(series[0]!.value[1])).toBeGreaterThanOrEqual(0);
    },
  },
};

/**
 * What `promtool check metrics` says of names we keep on purpose, each with why. Anything else it
 * says fails the test.
 */
const ACCEPTED_LINTS: Record<string, string> = {
  // prom-client's collectDefaultMetrics names these gauges so; every Node.js dashboard and alert
  // written for prom-client reads them by these names (as for nodejs_eventloop_lag_*: metrics.ts).
  'nodejs_active_handles_total non-counter metrics should not have "_total" suffix': 'prom-client default',
  'nodejs_active_requests_total non-counter metrics should not have "_total" suffix': 'prom-client default',
  'nodejs_active_resources_total non-counter metrics should not have "_total" suffix': 'prom-client default',
  // OpenTelemetry's database convention: the UpDownCounter db.client.connection.count, which its
  // Prometheus mapping names db_client_connection_count (".count" is OpenTelemetry's word for a
  // number of things in use; no histogram db_client_connection exists for it to be mistaken with).
  'db_client_connection_count non-histogram and non-summary metrics should not have "_count" suffix':
    'OpenTelemetry name',
};

if (!havePrometheus) {
  const message = `prometheus-scrape.test.ts: no Prometheus at ${PROMETHEUS} with ${PROMTOOL} (apt-get install prometheus)`;
  if (process.env.CI === 'true')
    throw new Error(`${message}; CI=true needs it: .ci/run should have installed it`);
  process.stderr.write(`\n[test] skipped: ${message}\n`);
}

describe.runIf(havePrometheus)("the README's Prometheus section, run against Prometheus 2.42", () => {
  let workDir: string;
  let database: TestDatabase | undefined;
  let launcher: ComponentProcess | undefined;
  let prometheus: ComponentProcess | undefined;
  let gatewayUrl: string;
  let prometheusUrl: string;
  /** Each component's /metrics address, host:port. */
  const targets = new Map<string, string>();

  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'shop-prometheus-'));
    if (mysqlUrl !== '') database = await createTestDatabase(mysqlUrl);
    // Every port a free one, chosen first, so that Prometheus starts with the shop: it takes some
    // seconds to scrape the targets of a new configuration.
    const env: NodeJS.ProcessEnv = {
      ...launcherEnv({ distributorPort: await freePort(), dataDir: join(workDir, 'data') }),
      GATEWAY_HOST: '127.0.0.1',
      LOG_FORMAT: 'json',
      MYSQL_URL: database?.url ?? '',
    };
    for (const { name, settings } of SHOP_COMPONENTS) {
      const port = await freePort();
      env[(settings.metricsPort ?? settings.port)!.env!] = String(port);
      targets.set(name, `127.0.0.1:${port}`);
    }
    gatewayUrl = `http://${targets.get('gateway')}`;

    // The README's scrape configuration, each npm start default address made the one this shop has,
    // scraped every second (not the default minute) so that rates have two samples within seconds.
    let config = README_SCRAPE_CONFIG;
    for (const [name, port] of DEFAULT_SCRAPE_PORTS) {
      config = config.replace(`'127.0.0.1:${port}'`, `'${targets.get(name)}'`);
    }
    const configFile = join(workDir, 'prometheus.yml');
    writeFileSync(configFile, `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n${config}`);
    prometheusUrl = `http://127.0.0.1:${await freePort()}`;
    prometheus = spawnLogged(
      PROMETHEUS,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(workDir, 'tsdb')}`,
        `--web.listen-address=${new URL(prometheusUrl).host}`,
        '--log.level=warn',
      ],
      { env: process.env },
    );

    // `npm start` (MYSQL_URL=... npm start when there is a MySQL).
    launcher = spawnComponent('src/launcher/main.ts', [], env, { stdinOpen: true });
    const ready = await launcher.waitForLine(/^\[launcher\] \{.*"the shop is ready: /, 60_000);
    expect(ready).toContain(`the shop is ready: ${gatewayUrl} `);
    for (const name of targets.keys()) {
      if (name === 'gateway') continue;
      const line = await launcher.waitForLine(new RegExp(`^\\[${name} *\\] \\{.*"event":"metrics"`));
      const { host, port } = JSON.parse(line.slice(line.indexOf('{')));
      expect(`${host}:${port}`, name).toBe(targets.get(name));
    }
    await vi.waitFor(
      async () => {
        expect(prometheus!.child.exitCode, prometheus!.lines.join('\n')).toBeNull();
        expect((await fetch(`${prometheusUrl}/-/ready`)).status).toBe(200);
      },
      { timeout: 15_000, interval: 100 },
    );
  }, 90_000);

  afterAll(async () => {
    if (prometheus && prometheus.child.exitCode === null) {
      prometheus.child.kill('SIGTERM');
      await prometheus.exited();
    }
    if (launcher) {
      const tree = descendantPids(launcher.child.pid!);
      launcher.child.kill('SIGTERM');
      await launcher.exited();
      for (const pid of tree) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
    }
    await database?.drop();
    rmSync(workDir, { recursive: true, force: true });
  });

  /** Evaluates `query` now through the HTTP API: the whole answer, an error one included. */
  async function evaluate(
    query: string,
  ): Promise<{ status: string; error?: string; data?: { result: Series[] } }> {
    const response = await fetch(`${prometheusUrl}/api/v1/query?${new URLSearchParams({ query })}`);
    return (await response.json()) as { status: string; error?: string; data?: { result: Series[] } };
  }

  it("scrapes every component through the README's scrape configuration, npm start's five addresses", async () => {
    // The README lists exactly where npm start serves /metrics by default.
    const listed = [...README_SCRAPE_CONFIG.matchAll(/'(127\.0\.0\.1:\d+)'/g)].map((match) => match[1]);
    expect(listed.sort()).toEqual(
      [...DEFAULT_SCRAPE_PORTS.values()].map((port) => `127.0.0.1:${port}`).sort(),
    );
    await vi.waitFor(
      async () => {
        const { data } = (await (await fetch(`${prometheusUrl}/api/v1/targets`)).json()) as TargetsAnswer;
        const active = data.activeTargets.map(
          (target: { scrapeUrl: string; health: string; lastError: string }) =>
            `${target.scrapeUrl} ${target.health} ${target.lastError}`,
        );
        expect(active.sort()).toEqual(
          [...targets.values()].map((address) => `http://${address}/metrics up `).sort(),
        );
      },
      { timeout: 10_000, interval: 200 },
    );
    const up = await evaluate('up');
    expect(up.data!.result.map((each) => [each.metric.instance, each.value[1]]).sort()).toEqual(
      [...targets.values()].map((address) => [address, '1']).sort(),
    );
    // Prometheus took every sample of every page: no series twice in a page, none refused.
    const own = await scrape(`${prometheusUrl}/metrics`);
    for (const refused of [
      'prometheus_target_scrapes_sample_duplicate_timestamp_total',
      'prometheus_target_scrapes_sample_out_of_order_total',
      'prometheus_target_scrapes_sample_out_of_bounds_total',
      'prometheus_target_scrapes_exceeded_sample_limit_total',
      'prometheus_target_scrapes_exceeded_body_size_limit_total',
    ]) {
      expect(sample(own, refused), refused).toBe(0);
    }
  });

  /** The shop's REST traffic: the catalogue, sign-ins (right, wrong, throttled), a purchase. */
  async function traffic(round: number): Promise<void> {
    const post = async (path: string, body: object): Promise<void> => {
      const answer = await fetch(`${gatewayUrl}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(answer.status, path).toBe(200);
      await answer.text();
    };
    const get = async (path: string): Promise<number> => {
      const answer = await fetch(`${gatewayUrl}${path}`);
      await answer.text();
      return answer.status;
    };
    if (round === 0) {
      await post('/members', { username: 'watched', password: '1234', passwordConfirm: '1234' });
      await post('/goods', { name: 'pen', category: 'office', price: 3, description: 'blue' });
    }
    expect(await get('/goods')).toBe(200);
    expect(await get('/members?username=watched&password=1234')).toBe(200);
    // Wrong passwords in a row: six are checked, the next refused (429) and counted as throttled.
    const guesses: number[] = [];
    for (let attempt = 0; attempt < 7; attempt++) {
      guesses.push(await get(`/members?username=guessed-${round}&password=guess${attempt}`));
    }
    expect(guesses).toEqual([200, 200, 200, 200, 200, 200, 429]);
    await post('/purchases', { userid: 1, goodsid: 1 });
    // The 5xx a healthy gateway gives: more pipelined requests on one connection than it takes in
    // flight (16), answered 503 past them.
    const statuses = await pipelined('/goods', 24);
    expect(statuses).toContain('503');
  }

  /** Writes `count` GETs of `path` at once on one connection: the status of each answer. */
  function pipelined(path: string, count: number): Promise<string[]> {
    const { hostname, port } = new URL(gatewayUrl);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), hostname);
      let received = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => {
        received += chunk;
      });
      socket.on('error', reject);
      // Answered in full without a 503, the connection would stay open.
      socket.setTimeout(3_000, () => socket.destroy());
      socket.on('close', () =>
        resolve([...received.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((match) => match[1]!)),
      );
      socket.on('connect', () =>
        socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n\r\n`.repeat(count)),
      );
    });
  }

  let trafficDone: Promise<void> | undefined;

  /**
   * The test's traffic, once for the file: two rounds a scrape apart (a series the first one makes
   * has its first sample, the second one moves it, and the 5 m rates have two samples to differ).
   */
  function trafficScraped(): Promise<void> {
    trafficDone ??= (async () => {
      await traffic(0);
      const firstScrape = Date.now() / 1000;
      await vi.waitFor(
        async () => {
          const { data } = (await (await fetch(`${prometheusUrl}/api/v1/targets`)).json()) as TargetsAnswer;
          expect(data.activeTargets).toHaveLength(targets.size);
          for (const target of data.activeTargets) {
            expect(Date.parse(target.lastScrape) / 1000).toBeGreaterThan(firstScrape);
          }
        },
        { timeout: 10_000, interval: 200 },
      );
      await traffic(1);
    })();
    return trafficDone;
  }

  it("evaluates every PromQL query of the README's panel list: each parses, and has data where a healthy shop has some", async () => {
    expect(README_QUERIES.length).toBeGreaterThan(0);
    // Every query of the README is known here, and nothing here is gone from the README.
    expect([...README_QUERIES].sort()).toEqual(Object.keys(PANELS).sort());

    await trafficScraped();

    for (const query of README_QUERIES) {
      const panel = PANELS[query]!;
      await vi.waitFor(
        async () => {
          const answer = await evaluate(query);
          expect(answer.error, query).toBeUndefined();
          expect(answer.status, query).toBe('success');
          if ('check' in panel) {
            expect(answer.data!.result, query).not.toEqual([]);
            panel.check(answer.data!.result);
          } else {
            expect(answer.data!.result, `${query}: ${panel.noDataWhenHealthy}`).toEqual([]);
            if (panel.widened) {
              const widened = await evaluate(panel.widened(query));
              expect(widened.status, panel.widened(query)).toBe('success');
              expect(widened.data!.result, panel.widened(query)).not.toEqual([]);
            }
          }
        },
        { timeout: 15_000, interval: 250 },
      );
    }
  });

  it("has every metric of the README's table, of the type it says, where it says, and none it does not name", async () => {
    await trafficScraped();
    const answer = (await (await fetch(`${prometheusUrl}/api/v1/metadata`)).json()) as {
      data: Record<string, Array<{ type: string }>>;
    };
    const scraped = new Map(Object.entries(answer.data).map(([name, [first]]) => [name, first!.type]));
    const documented = new Set<string>();
    for (const row of README_METRICS) {
      for (const [index, name] of row.names.entries()) {
        const type = row.types.length === 1 ? row.types[0] : row.types[index];
        const instances = await instancesOf(name);
        const expected = row.from
          .filter(() => mysqlUrl !== '' || !row.mysqlOnly)
          .map((component) => targets.get(component))
          .sort();
        expect(instances, `${name}: served by`).toEqual(expected);
        documented.add(name);
        if (!name.endsWith('_*') && expected.length > 0) {
          expect(scraped.get(name), `${name}: its type`).toBe(type);
        }
      }
    }
    const undocumented = [...scraped.keys()].filter(
      (name) =>
        !documented.has(name) &&
        ![...documented].some((each) => each.endsWith('_*') && name.startsWith(each.slice(0, -1))),
    );
    expect(undocumented).toEqual([]);
  });

  /** The instances that serve a metric (a histogram by its _count; `name_*` any of the prefix). */
  async function instancesOf(name: string): Promise<string[]> {
    const selector = name.endsWith('_*')
      ? `{__name__=~"${name.slice(0, -1)}.+",job="shop"}`
      : `{__name__=~"${name}|${name}_count",job="shop"}`;
    const answer = await evaluate(`count by (instance) (${selector})`);
    expect(answer.status, selector).toBe('success');
    return answer.data!.result.map((each) => each.metric.instance!).sort();
  }

  it('finds nothing promtool check metrics flags on any /metrics page, beyond the names kept on purpose', async () => {
    for (const [name, address] of targets) {
      const text = await scrape(`http://${address}/metrics`);
      const lint = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      // 0: nothing to say; 3: lint problems only (1 would be a page it cannot read).
      expect([0, 3], `${name}: ${lint.stdout}${lint.stderr}`).toContain(lint.status);
      const problems = `${lint.stdout}${lint.stderr}`
        .split('\n')
        .filter((line) => line.trim() !== '' && !(line.trim() in ACCEPTED_LINTS));
      expect(problems, name).toEqual([]);
    }
  });
});
