import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { expect } from 'vitest';
import type { OpenApiDocument } from '../../../src/gateway/openapi.js';

/**
 * Checks a document against the OpenAPI 3.1 schema (with @seriousme/openapi-schema-validator, which
 * bundles the specification's JSON Schemas and works offline), then that every `$ref` resolves and
 * every schema compiles as JSON Schema 2020-12 (ajv, strict about unknown keywords).
 */
export async function expectValidOpenApi(document: unknown): Promise<void> {
  const validator = new Validator();
  const result = await validator.validate(JSON.parse(JSON.stringify(document)));
  expect(result.errors ?? [], JSON.stringify(result.errors, null, 2)).toEqual([]);
  expect(result.valid).toBe(true);
  expect(validator.version).toBe('3.1');
  // Throws on a $ref that does not resolve.
  validator.resolveRefs();
  schemaValidator(document as OpenApiDocument);
}

/**
 * A JSON Schema 2020-12 validator holding the document's named schemas, by which a test checks real
 * answers against what the document says of them.
 */
export function schemaValidator(document: OpenApiDocument): Ajv2020 {
  const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true, validateFormats: false });
  // OpenAPI's own keywords in a Schema Object, beside JSON Schema's.
  ajv.addKeyword('example').addKeyword('discriminator').addKeyword('xml').addKeyword('externalDocs');
  ajv.addSchema({ $id: COMPONENTS_ID, $defs: rebase(document.components.schemas) });
  for (const path of Object.values(document.paths)) {
    for (const operation of Object.values(path)) {
      for (const answer of Object.values(operation.responses as Record<string, { content?: unknown }>)) {
        const schema = (answer.content as Record<string, { schema: unknown }> | undefined)?.[
          'application/json'
        ]?.schema;
        if (schema) ajv.compile(rebase(schema) as object);
      }
    }
  }
  return ajv;
}

/** The schema of the 200 answer of `METHOD path`, its refs pointing into the components schema. */
export function answerSchema(document: OpenApiDocument, method: string, path: string): object {
  const operation = document.paths[path]?.[method.toLowerCase()] as
    | { responses: Record<string, { content: Record<string, { schema: unknown }> }> }
    | undefined;
  if (!operation) throw new Error(`no ${method} ${path} in the document`);
  return rebase(operation.responses['200']!.content['application/json']!.schema) as object;
}

/** The schema of the error envelope, as a gateway error answer carries it. */
export function errorSchema(): object {
  return { $ref: `${COMPONENTS_ID}#/$defs/ErrorEnvelope` };
}

const COMPONENTS_ID = 'urn:openapi:components';

/** `#/components/schemas/X` refs, made to point at the `$defs` of the schema the validator holds. */
function rebase(schema: unknown): unknown {
  return JSON.parse(
    JSON.stringify(schema).replaceAll('"$ref":"#/components/schemas/', `"$ref":"${COMPONENTS_ID}#/$defs/`),
  );
}
