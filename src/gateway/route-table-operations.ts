import type { HttpRoute } from '../common/http-routes.js';
import type { RestOperation } from './rest-operation.js';
import type { Route } from './route-table.js';

/**
 * The REST operations of the routes the gateway serves now: each route's HttpRule binding as its
 * first serving instance's descriptors declare it (a draining instance's when none serves), see
 * {@link HttpRoute}. A route with no instance left is not documented, nor one whose template has an
 * anonymous wildcard (`/files/*` outside a variable), which OpenAPI's paths cannot say.
 */
export function operationsOfRoutes(routes: Iterable<Route>): RestOperation[] {
  const operations: RestOperation[] = [];
  for (const route of routes) {
    const instance = route.serving[0] ?? route.draining[0];
    if (!instance) continue;
    const operation = operationOf(instance.plan.route, instance.plan.paging !== undefined);
    if (operation) operations.push(operation);
  }
  return operations;
}

/** One route as an OpenAPI operation, or undefined when its template cannot be written as OpenAPI's. */
export function operationOf(route: HttpRoute, pages: boolean): RestOperation | undefined {
  const { template } = route;
  const covered = new Set<number>();
  for (const variable of template.variables) {
    for (let index = variable.start; index < variable.end; index++) covered.add(index);
  }
  const anonymous = template.segments.some(
    (segment, index) => segment.kind !== 'literal' && !covered.has(index),
  );
  if (anonymous) return undefined;
  const nextPageToken = route.method.output.fields.find((field) => field.name === 'next_page_token');
  return {
    httpMethod: route.httpMethod,
    // `{name=shelves/*}` is `{name}` for OpenAPI; the pattern stays the gateway's business.
    pathTemplate: template.text.replace(/\{([^}=]+)=[^}]*\}/g, '{$1}'),
    pathParams: route.pathVariables.map((variable) => ({
      name: variable.fieldPath,
      field: variable.fields[variable.fields.length - 1]!,
    })),
    queryFields: route.queryFields,
    body: route.body,
    method: route.method,
    envelopeFields: route.envelopeFields,
    onePageFields: pages && nextPageToken ? [nextPageToken] : [],
    ...(route.description === undefined ? {} : { description: route.description }),
    writesOncePerKey: route.writesOncePerKey,
  };
}
