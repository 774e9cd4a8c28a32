import type { TestNetwork } from './netns.js';

/** One HTTP request with node:http, as a client process; prints {status, body} as JSON. */
const HTTP_CLIENT = `
const [method, url, body] = process.argv.slice(1);
const request = require('node:http').request(url, {
  method, timeout: 5000, headers: body ? { 'content-type': 'application/json' } : {},
}, (response) => {
  let text = '';
  response.setEncoding('utf8');
  response.on('data', (chunk) => { text += chunk; });
  response.on('end', () => process.stdout.write(JSON.stringify({ status: response.statusCode, body: text })));
});
request.on('timeout', () => request.destroy(new Error('timed out')));
request.on('error', (error) => { process.stderr.write(String(error)); process.exitCode = 1; });
request.end(body);
`;

/**
 * One HTTP request sent from a host of a test network (its own process there), with `body` as
 * JSON when given; throws if no answer came.
 */
export async function httpFromHost(
  network: TestNetwork,
  host: string,
  method: string,
  url: string,
  body?: unknown,
): Promise<{ status: number; body: string }> {
  const args = ['-e', HTTP_CLIENT, method, url];
  if (body !== undefined) args.push(JSON.stringify(body));
  const run = await network.run(host, process.execPath, args, 10_000);
  if (run.code !== 0) throw new Error(`HTTP ${method} ${url} from host ${host} failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as { status: number; body: string };
}
