import { status } from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { ServiceError } from '../../src/common/service-error.js';
import type { Tracer } from '../../src/common/trace-span.js';
import {
  databaseOperation,
  databaseOperationSync,
  operationOfStatement,
  transactionOn,
} from '../../src/services/common/database-telemetry.js';
import { memoryTracer } from '../helpers/memory-tracer.js';

/**
 * The process's tracer as the code under test finds it (activeTracer): the project's real one over
 * the SDK (memoryTracer, set below), since startTracing builds its exporters from the environment only.
 */
const active = vi.hoisted(() => ({ tracer: undefined as Tracer | undefined }));

vi.mock('../../src/common/tracing.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/common/tracing.js')>();
  return { ...original, activeTracer: () => active.tracer };
});

const { tracer, exporter } = memoryTracer();
active.tracer = tracer;

beforeEach(() => {
  exporter.reset();
});

const throwing = (error: Error) => () => {
  throw error;
};

describe('database operation spans', () => {
  it("fail for the store's faults, not for a caller's mistake that rolls a transaction back", async () => {
    // The call's server span, as a handler hands it down (traceParentOf: only a sampled one).
    const parent = tracer.startSpan('shop.v1.PurchasesService/Purchase', 'server', undefined);
    const name = transactionOn('purchases_idempotency');
    const reused = new ServiceError(
      status.FAILED_PRECONDITION,
      'Idempotency-Key reused with a different request',
    );
    expect(() => databaseOperationSync(undefined, 'sqlite', name, throwing(reused), parent)).toThrow(reused);
    await expect(
      databaseOperation(undefined, 'mysql', name, () => Promise.reject(reused), parent),
    ).rejects.toBe(reused);
    const down = new ServiceError(status.UNAVAILABLE, 'Database unavailable');
    expect(() => databaseOperationSync(undefined, 'sqlite', name, throwing(down), parent)).toThrow(down);
    const driver = Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_WRITE' });
    expect(() => databaseOperationSync(undefined, 'sqlite', name, throwing(driver), parent)).toThrow(driver);
    parent.end();

    const spans = exporter.getFinishedSpans();
    const server = spans.pop()!;
    expect(server.name).toBe('shop.v1.PurchasesService/Purchase');
    // Exported means ended: each operation ended its span, thrown or not.
    expect(spans.map((span) => [span.name, span.kind, span.status])).toEqual([
      ['TRANSACTION purchases_idempotency', SpanKind.CLIENT, { code: SpanStatusCode.UNSET }],
      ['TRANSACTION purchases_idempotency', SpanKind.CLIENT, { code: SpanStatusCode.UNSET }],
      [
        'TRANSACTION purchases_idempotency',
        SpanKind.CLIENT,
        { code: SpanStatusCode.ERROR, message: 'ServiceError' },
      ],
      [
        'TRANSACTION purchases_idempotency',
        SpanKind.CLIENT,
        { code: SpanStatusCode.ERROR, message: 'SQLITE_IOERR_WRITE' },
      ],
    ]);
    expect(spans.map((span) => span.attributes)).toEqual(
      ['sqlite', 'mysql', 'sqlite', 'sqlite'].map((system) => ({
        'db.system.name': system,
        'db.operation.name': 'TRANSACTION',
        'db.collection.name': 'purchases_idempotency',
      })),
    );
    for (const span of spans) {
      expect(span.spanContext().traceId).toBe(server.spanContext().traceId);
      expect(span.parentSpanContext?.spanId).toBe(server.spanContext().spanId);
    }
  });

  it('name a statement by its verb and table, and carry its text with placeholders only', async () => {
    const parent = tracer.startSpan('shop.v1.GoodsService/ListGoods', 'server', undefined);
    const statement = 'SELECT id, name FROM goods WHERE id > ? ORDER BY id LIMIT ?';
    expect(
      await databaseOperation(undefined, 'mysql', operationOfStatement(statement), async () => 7, parent),
    ).toBe(7);
    const [span] = exporter.getFinishedSpans();
    expect(span).toMatchObject({
      name: 'SELECT goods',
      kind: SpanKind.CLIENT,
      status: { code: SpanStatusCode.UNSET },
      attributes: {
        'db.system.name': 'mysql',
        'db.operation.name': 'SELECT',
        'db.collection.name': 'goods',
        'db.query.text': statement,
      },
    });
    expect(span!.parentSpanContext?.spanId).toBe(parent.carrier().traceparent!.split('-')[2]);
  });

  it('are not made for a call that is not sampled', async () => {
    const name = transactionOn('purchases_idempotency');
    // What a handler hands down for an unsampled call: no parent (see traceParentOf).
    databaseOperationSync(undefined, 'sqlite', name, () => 1, undefined);
    await databaseOperation(undefined, 'mysql', name, async () => 1, undefined);
    // A span of a caller's unsampled trace, should one be handed down all the same.
    const unsampled = tracer.startSpan('shop.v1.PurchasesService/Purchase', 'server', {
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00',
    });
    expect(unsampled.isSampled()).toBe(false);
    databaseOperationSync(undefined, 'sqlite', name, () => 1, unsampled);
    unsampled.end();
    expect(exporter.getFinishedSpans()).toEqual([]);
  });
});
