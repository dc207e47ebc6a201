/**
 * Turns the JSON Schema that zod 4 writes (`z.toJSONSchema`, draft 2020-12) into the structural
 * OpenAPI v3 subset a CustomResourceDefinition accepts:
 *   - no $schema, $ref/definitions, propertyNames, const, anyOf/oneOf/allOf/not (refused: the API
 *     schemas are written so they never need them);
 *   - `type: [T, "null"]` becomes `type: T, nullable: true`;
 *   - `additionalProperties: false` (strict objects) is dropped: the apiserver prunes unknown fields;
 *   - the ±2^53 bounds zod puts on integers are dropped; a numeric `exclusiveMinimum`/`Maximum`
 *     becomes OpenAPI v3's boolean form;
 *   - an object with `x-kubernetes-preserve-unknown-fields` keeps its declared properties only;
 *   - the long regular expression zod adds to `format: date-time` is dropped (format is enough).
 * Anything else outside the known keys is an error, so a schema change that Kubernetes would not
 * accept fails at generation time, not at `kubectl apply`.
 */
import { ErrorCode, TetherError } from '../../shared/errors.ts';

export type JsonSchema = Record<string, unknown>;

const passThrough = new Set([
  'type', 'description', 'enum', 'default', 'minimum', 'maximum', 'minLength', 'maxLength', 'pattern', 'format',
  'minItems', 'maxItems', 'minProperties', 'maxProperties', 'nullable', 'required',
  'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-validations', 'x-kubernetes-int-or-string',
  'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-map-type', 'x-kubernetes-embedded-resource',
]);
const SAFE = Number.MAX_SAFE_INTEGER;

export function toStructural(schema: JsonSchema, path = ''): JsonSchema {
  const out: JsonSchema = {};
  const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
  for (const [key, value] of Object.entries(schema)) {
    const at = `${path || '<root>'}: ${key}`;
    switch (key) {
      case '$schema':
      case 'propertyNames':
        break;
      case 'type':
        if (Array.isArray(value)) {
          const types = value.filter((t) => t !== 'null');
          if (types.length !== 1) throw unsupported(at, `type ${JSON.stringify(value)}`);
          out.type = types[0];
          if (types.length !== value.length) out.nullable = true;
        } else out.type = value;
        break;
      case 'properties': {
        const props = value as Record<string, JsonSchema>;
        if (preserve && Object.keys(props).length === 0) break;
        out.properties = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, toStructural(v, `${path}.${k}`)]));
        break;
      }
      case 'items':
        if (Array.isArray(value)) throw unsupported(at, 'tuple items');
        out.items = toStructural(value as JsonSchema, `${path}[]`);
        break;
      case 'additionalProperties':
        if (value === false || preserve) break;
        if (typeof value !== 'object' || value === null || Object.keys(value).length === 0) throw unsupported(at, JSON.stringify(value));
        out.additionalProperties = toStructural(value as JsonSchema, `${path}.*`);
        break;
      case 'minimum':
      case 'maximum':
        if (Math.abs(value as number) !== SAFE) out[key] = value;
        break;
      case 'exclusiveMinimum':
      case 'exclusiveMaximum':
        if (typeof value === 'number') {
          out[key === 'exclusiveMinimum' ? 'minimum' : 'maximum'] = value;
          out[key] = true;
        } else out[key] = value;
        break;
      case 'pattern':
        if (schema.format !== 'date-time') out.pattern = value;
        break;
      default:
        if (!passThrough.has(key)) throw unsupported(at, JSON.stringify(value).slice(0, 80));
        out[key] = value;
    }
  }
  if (out.type === undefined && !preserve && out['x-kubernetes-int-or-string'] !== true) {
    throw unsupported(path || '<root>', 'a schema without a type (structural schemas need one)');
  }
  return out;
}

function unsupported(at: string, what: string): TetherError {
  return new TetherError(ErrorCode.Internal, `generate CRD schema: ${at}: not expressible in a structural schema: ${what}`);
}
