/**
 * Label selectors as k8s.io/apimachinery/pkg/labels parses and evaluates them.
 *
 * Grammar (whitespace allowed between tokens, requirements ANDed, separated by ','):
 *   key=value  key==value  key!=value        exact match (an empty value is allowed: `key=`)
 *   key in (v1,v2)  key notin (v1,v2)        set match (`()` and `(,)` mean the empty value)
 *   key  !key                                exists / does not exist
 *   key>n  key<n                             integer comparison (Gt / Lt)
 * Keys are qualified names (optional DNS-subdomain prefix and '/', name ≤ 63 characters), values
 * are label values (≤ 63 characters of [A-Za-z0-9-_.], alphanumeric at both ends). The words
 * `in` and `notin` are keywords after a key but ordinary values inside a value list.
 *
 * The requirements are sorted by key (stably) and each value list is sorted and de-duplicated,
 * so `toString()` is the canonical form the apiserver prints. `!=` and `notin` match an object
 * that lacks the key; `=`, `in`, `>` and `<` do not. The empty selector matches everything.
 */
import { apiserverBadRequest } from './_bad-request.ts';
import { labelValueErrors, qualifiedNameErrors } from './_names.ts';

export type LabelOperator = '=' | '==' | '!=' | 'in' | 'notin' | 'exists' | '!' | 'gt' | 'lt';

export interface LabelRequirement {
  readonly key: string;
  readonly operator: LabelOperator;
  /** Sorted and de-duplicated; exactly one for =, ==, !=, gt, lt; none for exists and !. */
  readonly values: readonly string[];
}

export interface LabelSelector {
  /** Sorted by key. */
  readonly requirements: readonly LabelRequirement[];
  /** True when there are no requirements: the selector matches every object. */
  readonly empty: boolean;
  matches(labels: Readonly<Record<string, string>> | undefined): boolean;
  /** The value `key` must have (=, == or an `in` of one value), or undefined. */
  requiresExactMatch(key: string): string | undefined;
  /** The canonical form: requirements sorted by key, set values sorted. */
  toString(): string;
}


/** Parses a selector; throws TetherError(E_BAD_REQUEST) with the apiserver's reason on bad input. */
export function parseLabelSelector(text: string): LabelSelector {
  const reqs = new Parser(lex(text)).parse();
  // Array.prototype.sort is stable, as the apiserver's sort is for the short lists it sees.
  reqs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return createSelector(reqs);
}

/** The selector that matches everything (an absent or empty labelSelector). */
export const everyLabel: LabelSelector = createSelector([]);

function createSelector(requirements: readonly LabelRequirement[]): LabelSelector {
  const text = requirements.map(requirementString).join(',');
  return {
    requirements,
    empty: requirements.length === 0,
    matches: (labels) => requirements.every((r) => requirementMatches(r, labels ?? {})),
    requiresExactMatch(key) {
      const r = requirements.find((x) => x.key === key);
      if (!r || r.values.length !== 1) return undefined;
      return r.operator === '=' || r.operator === '==' || r.operator === 'in' ? r.values[0] : undefined;
    },
    toString: () => text,
  };
}

function requirementMatches(r: LabelRequirement, labels: Readonly<Record<string, string>>): boolean {
  const has = Object.hasOwn(labels, r.key);
  const value = has ? labels[r.key] : undefined;
  switch (r.operator) {
    case '=':
    case '==':
    case 'in':
      return has && r.values.includes(value as string);
    case '!=':
    case 'notin':
      return !has || !r.values.includes(value as string);
    case 'exists':
      return has;
    case '!':
      return !has;
    case 'gt':
    case 'lt': {
      const actual = has ? parseInt64(value as string) : undefined;
      const wanted = r.values.length === 1 ? parseInt64(r.values[0] as string) : undefined;
      if (actual === undefined || wanted === undefined) return false;
      return r.operator === 'gt' ? actual > wanted : actual < wanted;
    }
  }
}

function requirementString(r: LabelRequirement): string {
  switch (r.operator) {
    case 'exists':
      return r.key;
    case '!':
      return `!${r.key}`;
    case 'in':
    case 'notin':
      return `${r.key} ${r.operator} (${r.values.join(',')})`;
    case 'gt':
      return `${r.key}>${r.values.join(',')}`;
    case 'lt':
      return `${r.key}<${r.values.join(',')}`;
    default:
      return `${r.key}${r.operator}${r.values.join(',')}`;
  }
}

const int64Min = -(2n ** 63n);
const int64Max = 2n ** 63n - 1n;

/** strconv.ParseInt(s, 10, 64): optional sign, decimal digits, in int64 range. */
function parseInt64(s: string): bigint | undefined {
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined;
  const n = BigInt(s);
  return n < int64Min || n > int64Max ? undefined : n;
}

// ---- lexer: the token rules of labels.Lexer ----

type Tok = 'end' | 'id' | '(' | ')' | ',' | '!' | '=' | '==' | '!=' | '>' | '<' | 'in' | 'notin';
interface Token {
  tok: Tok;
  lit: string;
}

const symbols = new Set<string>(['=', '!', '(', ')', ',', '>', '<']);
const symbolTokens = new Set<string>([')', ',', '!', '==', '=', '>', '<', '!=', '(']);
const isSpace = (c: string) => c === ' ' || c === '\t' || c === '\r' || c === '\n';

function lex(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  for (;;) {
    while (i < s.length && isSpace(s[i] as string)) i++;
    if (i >= s.length) {
      out.push({ tok: 'end', lit: '' });
      return out;
    }
    if (symbols.has(s[i] as string)) {
      // Longest run of symbol characters that is still a token ("!=" but "=" then "!").
      let lit = '';
      let buf = '';
      while (i < s.length && symbols.has(s[i] as string)) {
        buf += s[i];
        if (symbolTokens.has(buf)) {
          lit = buf;
          i++;
        } else break;
      }
      out.push({ tok: lit as Tok, lit });
    } else {
      const start = i;
      while (i < s.length && !symbols.has(s[i] as string) && !isSpace(s[i] as string)) i++;
      const lit = s.slice(start, i);
      out.push({ tok: lit === 'in' || lit === 'notin' ? lit : 'id', lit });
    }
  }
}

// ---- parser: the grammar of labels.Parser, with its error messages ----

class Parser {
  private pos = 0;
  constructor(private readonly items: Token[]) {}

  /** In a value position `in` and `notin` are plain identifiers. */
  private peek(values = true): Token {
    const t = this.items[this.pos] ?? { tok: 'end', lit: '' };
    return values && (t.tok === 'in' || t.tok === 'notin') ? { tok: 'id', lit: t.lit } : t;
  }
  private next(values = true): Token {
    const t = this.peek(values);
    this.pos++;
    return t;
  }

  parse(): LabelRequirement[] {
    const reqs: LabelRequirement[] = [];
    for (;;) {
      const t = this.peek();
      if (t.tok === 'end') return reqs;
      if (t.tok !== 'id' && t.tok !== '!') {
        throw apiserverBadRequest(`found '${t.lit}', expected: !, identifier, or 'end of string'`);
      }
      reqs.push(this.requirement());
      const sep = this.next();
      if (sep.tok === 'end') return reqs;
      if (sep.tok !== ',') throw apiserverBadRequest(`found '${sep.lit}', expected: ',' or 'end of string'`);
      const after = this.peek();
      if (after.tok !== 'id' && after.tok !== '!') {
        throw apiserverBadRequest(`found '${after.lit}', expected: identifier after ','`);
      }
    }
  }

  private requirement(): LabelRequirement {
    const fail = (what: string) => apiserverBadRequest(`unable to parse requirement: ${what}`);
    let negated = false;
    let t = this.next();
    if (t.tok === '!') {
      negated = true;
      t = this.next();
    }
    if (t.tok !== 'id') throw fail(`found '${t.lit}', expected: identifier`);
    const key = t.lit;
    const keyErrs = qualifiedNameErrors(key);
    if (keyErrs.length) throw fail(`key: Invalid value: ${JSON.stringify(key)}: ${keyErrs.join('; ')}`);
    const ahead = this.peek().tok;
    if (negated || ahead === 'end' || ahead === ',') {
      return { key, operator: negated ? '!' : 'exists', values: [] };
    }
    const op = this.next(false);
    let operator: LabelOperator;
    let values: string[];
    switch (op.tok) {
      case 'in':
      case 'notin':
        operator = op.tok;
        values = this.valueList(fail);
        break;
      case '=':
      case '==':
      case '!=':
        operator = op.tok;
        values = this.exactValue(fail);
        break;
      case '>':
      case '<':
        operator = op.tok === '>' ? 'gt' : 'lt';
        values = this.exactValue(fail);
        if (parseInt64(values[0] as string) === undefined) {
          throw fail(`values[0]: Invalid value: ${JSON.stringify(values[0])}: for 'Gt', 'Lt' operators, the value must be an integer`);
        }
        break;
      default:
        throw fail(`found '${op.lit}', expected: in, notin, =, ==, !=, gt, lt`);
    }
    values.forEach((v, i) => {
      const errs = labelValueErrors(v);
      if (errs.length) throw fail(`values[${i}][${key}]: Invalid value: ${JSON.stringify(v)}: ${errs.join('; ')}`);
    });
    return { key, operator, values };
  }

  private exactValue(fail: (what: string) => Error): string[] {
    const t = this.peek();
    if (t.tok === 'end' || t.tok === ',') return [''];
    this.pos++;
    if (t.tok !== 'id') throw fail(`found '${t.lit}', expected: identifier`);
    return [t.lit];
  }

  private valueList(fail: (what: string) => Error): string[] {
    const open = this.next();
    if (open.tok !== '(') throw fail(`found '${open.lit}' expected: '('`);
    const first = this.peek();
    if (first.tok === ')') {
      this.pos++;
      return [''];
    }
    if (first.tok !== 'id' && first.tok !== ',') throw fail(`found '${first.lit}', expected: ',', ')' or identifier`);
    const set = new Set<string>();
    for (let done = false; !done; ) {
      const t = this.next();
      if (t.tok === 'id') {
        set.add(t.lit);
        const after = this.peek();
        if (after.tok === ')') done = true;
        else if (after.tok !== ',') throw fail(`found '${after.lit}', expected: ',' or ')'`);
      } else if (t.tok === ',') {
        // "(,", ",," and ",)" each stand for the empty value.
        if (set.size === 0) set.add('');
        const after = this.peek().tok;
        if (after === ')') {
          set.add('');
          done = true;
        } else if (after === ',') {
          this.pos++;
          set.add('');
        }
      } else {
        throw fail(`found '${t.lit}', expected: ',', or identifier`);
      }
    }
    const close = this.next();
    if (close.tok !== ')') throw fail(`found '${close.lit}', expected: ')'`);
    return [...set].sort();
  }
}
