/**
 * Building blocks of the API schemas. A cross-field rule is written once with `withRules`: the
 * same rule becomes a zod refinement (checked by the controllers) and a CEL
 * `x-kubernetes-validations` entry (checked by kube-apiserver), with the same message.
 */
import { z } from 'zod';

export interface Rule<T> {
  /**
   * CEL expression over `self`, for the CRD; absent when CEL cannot see the fields involved
   * (values of x-kubernetes-preserve-unknown-fields): then only the controllers check the rule.
   */
  cel?: string;
  /** The same rule in TypeScript, for zod. */
  check: (value: T) => boolean;
  message: string;
  /** Field the message is about (CEL `fieldPath`, zod issue path), relative to the object. */
  field?: string;
}

/** Attaches rules to a schema, both as zod refinements and as CEL validations in the CRD. */
export function withRules<S extends z.ZodType>(schema: S, rules: Rule<z.output<S>>[], meta: Record<string, unknown> = {}): S {
  const refined = schema.superRefine((value, ctx) => {
    for (const r of rules) {
      if (!r.check(value)) ctx.addIssue({ code: 'custom', message: r.message, path: r.field ? [r.field] : [] });
    }
  });
  const cel = rules
    .filter((r) => r.cel !== undefined)
    .map((r) => ({ rule: r.cel, message: r.message, ...(r.field ? { fieldPath: `.${r.field}` } : {}) }));
  return refined.meta({ ...meta, ...(cel.length ? { 'x-kubernetes-validations': cel } : {}) }) as unknown as S;
}

// Kubernetes name grammars (apimachinery validation), as RE2-compatible regular expressions.
const dnsLabel = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
export const DNS_LABEL = `^${dnsLabel}$`;
export const DNS_SUBDOMAIN = `^${dnsLabel}(\\.${dnsLabel})*$`;
export const QUALIFIED_NAME = `^(${dnsLabel}(\\.${dnsLabel})*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`;
export const LABEL_VALUE = '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$';

export function isQualifiedName(key: string): boolean {
  if (!new RegExp(QUALIFIED_NAME).test(key)) return false;
  const slash = key.lastIndexOf('/');
  return key.length - slash - 1 <= 63 && slash <= 253;
}

const celString = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/**
 * A string matching `pattern`, checked by a CEL rule rather than an OpenAPI `pattern` so the
 * apiserver's refusal carries `message` instead of the regular expression.
 */
export function patterned(max: number, pattern: string, message: string) {
  const re = new RegExp(pattern);
  return withRules(z.string().max(max), [{ cel: `self.matches(${celString(pattern)})`, check: (v) => re.test(v), message }]);
}

export const labelValue = patterned(63, LABEL_VALUE, 'must be a label value: up to 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit');
export const dnsLabelName = patterned(63, DNS_LABEL, 'must be a DNS label: lower-case letters, digits and "-", starting and ending with a letter or digit');

const keyRule = (what: string): Rule<Record<string, string>> => ({
  cel: `self.all(k, k.size() <= 316 && k.matches(${celString(QUALIFIED_NAME)}))`,
  check: (m) => Object.keys(m).every(isQualifiedName),
  message: `${what} keys must be qualified names ([prefix/]name, e.g. example.com/site)`,
});

/** Keys under apps.tether.dev/ belong to Tether; a pool may only set the autonomy annotation. */
const reservedRule = (allowed: string[]): Rule<Record<string, string>> => ({
  cel: `self.all(k, !k.startsWith('apps.tether.dev/')${allowed.map((a) => ` || k == '${a}'`).join('')})`,
  check: (m) => Object.keys(m).every((k) => !k.startsWith('apps.tether.dev/') || allowed.includes(k)),
  message: `keys under apps.tether.dev/ are reserved${allowed.length ? ` (allowed: ${allowed.join(', ')})` : ''}`,
});

export function labelMap(description: string) {
  return withRules(z.record(z.string(), labelValue).describe(description), [keyRule('label'), reservedRule([])], { maxProperties: 64 });
}

export function annotationMap(description: string, allowedReserved: string[] = []) {
  return withRules(z.record(z.string(), z.string().max(4096)).describe(description), [keyRule('annotation'), reservedRule(allowedReserved)], {
    maxProperties: 64,
  });
}

export const taintEffect = z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']);

export const taintSchema = z.object({
  key: patterned(316, QUALIFIED_NAME, 'must be a qualified name ([prefix/]name, e.g. example.com/site)').describe('Taint key'),
  value: labelValue.optional().describe('Taint value'),
  effect: taintEffect.describe('NoSchedule, PreferNoSchedule or NoExecute'),
});

export const labelSelectorSchema = z
  .object({
    matchLabels: z.record(z.string(), z.string().max(63)).optional().describe('Labels that must all match'),
    matchExpressions: z
      .array(
        z.object({
          key: z.string().min(1).max(316).describe('Label key'),
          operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']).describe('In, NotIn, Exists or DoesNotExist'),
          values: z.array(z.string().max(63)).max(64).optional().describe('Values for In and NotIn'),
        }),
      )
      .max(16)
      .optional()
      .describe('Expressions that must all match'),
  })
  .describe('A Kubernetes label selector over NodePool labels');

export const conditionSchema = z.object({
  type: z.string().min(1).max(316).describe('Condition type'),
  status: z.enum(['True', 'False', 'Unknown']).describe('True, False or Unknown'),
  reason: z.string().max(1024).optional().describe('One-word CamelCase reason'),
  message: z.string().max(32768).optional().describe('Human-readable details'),
  lastTransitionTime: z.string().optional().describe('When the status last changed (RFC 3339)'),
  observedGeneration: z.number().int().min(0).optional().describe('Generation of the spec the condition was computed from'),
});
export type Condition = z.infer<typeof conditionSchema>;

/** Metadata a Kubernetes object carries, as far as the controllers read it. */
export const objectMetaSchema = z.looseObject({
  name: z.string(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.number().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  deletionTimestamp: z.string().optional(),
});
