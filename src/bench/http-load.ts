import autocannon from 'autocannon';
import type { CaseResult } from './case-result.js';

/** One HTTP load case: autocannon, closed loop, fixed connections and duration. */
export interface HttpCase {
  name: string;
  url: string;
  method?: 'GET' | 'POST' | 'DELETE';
  body?: string;
  connections: number;
  durationSec: number;
}

/**
 * Runs one case. Besides transport errors and non-2xx answers, a body whose envelope says
 * `"errorcode":1` counts as an error, so a run that "succeeds" with business failures is seen.
 */
export async function runHttpCase(spec: HttpCase): Promise<CaseResult> {
  let businessErrors = 0;
  const result = await autocannon({
    url: spec.url,
    method: spec.method ?? 'GET',
    connections: spec.connections,
    duration: spec.durationSec,
    // autocannon stops at its first sample tick after the duration: with its default of one a
    // second, a slice of 2.5 s (see BENCH_OBSERVABILITY_SLICES) ran 3 s. Its per-tick figures are
    // not used here.
    sampleInt: 100,
    headers: spec.body ? { 'content-type': 'application/json' } : {},
    body: spec.body,
    setupClient: (client) => {
      client.on('body', (body: Buffer) => {
        if (body.includes('"errorcode":1')) businessErrors++;
      });
    },
  });
  // Every answer of the gateway wears the envelope, so a non-2xx answer is also a business error:
  // the larger count, not the sum, is the number of failed answers.
  const failedAnswers = Math.max(result.non2xx, businessErrors);
  return {
    name: spec.name,
    // Successful answers only: a fast refusal must not count as throughput. requests.total counts
    // answers only: a request that got none (a reset, a timeout) is not among them to take off.
    requestsPerSec: Math.max(0, result.requests.total - failedAnswers) / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    // autocannon's errors count its timeouts already, and the requests that got no answer.
    errors: result.errors + failedAnswers,
    total: result.requests.total + result.errors,
  };
}
