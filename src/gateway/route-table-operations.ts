import type { DescField } from '@bufbuild/protobuf';
import { BODY_METHODS } from './request-input.js';
import type { RestOperation } from './rest-operation.js';
import type { Route } from './route-table.js';

/**
 * The REST operations of the routes the gateway serves now, as registered today: a `Route` message
 * per route (HTTP method, literal path, gRPC method, response fields) and the node's descriptor set,
 * compiled into each instance's call plan. The gateway reads a POST, PUT or PATCH from its body and
 * anything else from its query string, and such paths have no variables.
 *
 * A route's first serving instance describes it (a draining one when none serves); a route with no
 * instance left is not documented, nor one whose literal path holds a brace (the gateway matches it
 * as written, but OpenAPI would read it as a path variable). This adapter is all that changes when routes come from the
 * contract's HttpRules instead.
 */
export function operationsOfRoutes(routes: Iterable<Route>): RestOperation[] {
  const operations: RestOperation[] = [];
  for (const route of routes) {
    const instance = route.serving[0] ?? route.draining[0];
    if (!instance || /[{}]/.test(route.path)) continue;
    const { method, responseFields, paging } = instance.plan;
    const fieldsOf = (names: readonly string[]): DescField[] =>
      names.flatMap((name) => method.output.fields.filter((field) => field.name === name));
    const fromBody = BODY_METHODS.has(route.method);
    operations.push({
      httpMethod: route.method,
      pathTemplate: route.path,
      pathParams: [],
      queryFields: fromBody ? [] : method.input.fields,
      body: fromBody ? { kind: 'all' } : { kind: 'none' },
      method,
      envelopeFields: fieldsOf(responseFields),
      onePageFields: paging ? fieldsOf(['next_page_token']) : [],
    });
  }
  return operations;
}
