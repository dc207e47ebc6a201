/**
 * Field selectors as k8s.io/apimachinery/pkg/fields parses and evaluates them.
 *
 * A selector is terms separated by unescaped ',': `field=value`, `field==value` (the same) or
 * `field!=value`, ANDed. In a value `\\`, `\,` and `\=` stand for `\`, `,` and `=`; any other
 * escape, or a bare ',' or '=' in a value, is an error. The field name is taken as written (no
 * trimming, no unescaping). Empty terms are skipped, so '' and ',' match everything. The terms
 * are sorted as written before parsing, which makes `toString()` canonical.
 *
 * Matching looks a field up in the object's selectable fields; a field the object does not
 * have reads as '' (as fields.Set.Get does). Which fields a resource has, and the apiserver's
 * renames ("spec.host" → "spec.nodeName"), live in fields.ts.
 */
import { apiserverBadRequest } from './_bad-request.ts';

export type FieldOperator = '=' | '!=';

export interface FieldRequirement {
  readonly field: string;
  /** '==' in the text is '=' here, as in the apiserver. */
  readonly operator: FieldOperator;
  /** Unescaped. */
  readonly value: string;
}

/** An object's selectable fields, as a set or as a lookup function. Absent fields read as ''. */
export type FieldSource = Readonly<Record<string, string>> | ((field: string) => string);

export interface FieldSelector {
  readonly requirements: readonly FieldRequirement[];
  /** True when there are no terms: the selector matches every object. */
  readonly empty: boolean;
  matches(fields: FieldSource): boolean;
  /** The value `field` must equal (the first `field=value` term), or undefined. */
  requiresExactMatch(field: string): string | undefined;
  /** Rewrites each term (used for the apiserver's per-kind field label conversion). */
  transform(fn: (field: string, value: string) => { field: string; value: string }): FieldSelector;
  /** Canonical form, values escaped. */
  toString(): string;
}


/** Parses a selector; throws TetherError(E_BAD_REQUEST) on bad input. */
export function parseFieldSelector(text: string): FieldSelector {
  const terms = splitTerms(text).sort();
  const reqs: FieldRequirement[] = [];
  for (const term of terms) {
    if (term === '') continue;
    const split = splitTerm(term);
    if (!split) throw apiserverBadRequest(`invalid selector: '${text}'; can't understand '${term}'`);
    reqs.push({ field: split.field, operator: split.op === '!=' ? '!=' : '=', value: unescapeValue(split.rhs) });
  }
  return createFieldSelector(reqs);
}

/** A selector from requirements as given (no sorting), e.g. `metadata.name=<name>` for a named watch. */
export function createFieldSelector(requirements: readonly FieldRequirement[]): FieldSelector {
  const text = requirements.map((r) => `${r.field}${r.operator}${escapeFieldValue(r.value)}`).join(',');
  return {
    requirements,
    empty: requirements.length === 0,
    matches(fields) {
      const get =
        typeof fields === 'function'
          ? fields
          : (f: string) => (Object.hasOwn(fields, f) ? (fields[f] ?? '') : '');
      return requirements.every((r) => (get(r.field) === r.value) === (r.operator === '='));
    },
    requiresExactMatch: (field) => requirements.find((r) => r.field === field && r.operator === '=')?.value,
    transform: (fn) => createFieldSelector(requirements.map((r) => ({ ...fn(r.field, r.value), operator: r.operator }))),
    toString: () => text,
  };
}

/** The selector that matches everything (an absent or empty fieldSelector). */
export const everyField: FieldSelector = createFieldSelector([]);

/** Escapes `\`, `,` and `=` in a value, as fields.EscapeValue does. */
export function escapeFieldValue(value: string): string {
  return value.replace(/[\\,=]/g, (c) => `\\${c}`);
}

/** Splits on ',' not preceded by an escaping '\'. */
function splitTerms(text: string): string[] {
  if (text === '') return [];
  const terms: string[] = [];
  let start = 0;
  let inSlash = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inSlash) inSlash = false;
    else if (c === '\\') inSlash = true;
    else if (c === ',') {
      terms.push(text.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(text.slice(start));
  return terms;
}

/** The first operator in the term, trying '!=', '==', '=' at each position. */
function splitTerm(term: string): { field: string; op: string; rhs: string } | undefined {
  for (let i = 0; i < term.length; i++) {
    for (const op of ['!=', '==', '=']) {
      if (term.startsWith(op, i)) return { field: term.slice(0, i), op, rhs: term.slice(i + op.length) };
    }
  }
  return undefined;
}

function unescapeValue(s: string): string {
  if (!/[\\,=]/.test(s)) return s;
  let out = '';
  let inSlash = false;
  for (const c of s) {
    if (inSlash) {
      if (c !== '\\' && c !== ',' && c !== '=') {
        throw apiserverBadRequest(`invalid field selector: invalid escape sequence: \\${c}`);
      }
      out += c;
      inSlash = false;
    } else if (c === '\\') inSlash = true;
    else if (c === ',' || c === '=') throw apiserverBadRequest(`invalid field selector: unescaped character in value: ${c.charCodeAt(0)}`);
    else out += c;
  }
  if (inSlash) throw apiserverBadRequest('invalid field selector: invalid escape sequence: \\');
  return out;
}
