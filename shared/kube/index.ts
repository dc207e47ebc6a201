/** Kubernetes request parsing and selector evaluation: the public surface of shared/kube. */
export { componentOf } from './component.ts';
export { normalizeTarget } from './_url.ts';
export {
  createFieldSelector,
  escapeFieldValue,
  everyField,
  parseFieldSelector,
  type FieldOperator,
  type FieldRequirement,
  type FieldSelector,
  type FieldSource,
} from './field-selector.ts';
export { convertFieldSelector, matchesFieldSelector, objectFields, supportedFieldLabels } from './fields.ts';
export {
  everyLabel,
  parseLabelSelector,
  type LabelOperator,
  type LabelRequirement,
  type LabelSelector,
} from './label-selector.ts';
export {
  parseRequest,
  type NonResourceRequestInfo,
  type PatchType,
  type RequestHeaders,
  type RequestInfo,
  type ResourceRequestInfo,
  type ResourceVerb,
  type ResourceVersionMatch,
} from './request-info.ts';
export { apiserverBadRequest } from './_bad-request.ts';
export { apiStatusError, apiStatusOf, tooLargeResourceVersion, type ApiStatus, type ApiStatusCause } from './api-status.ts';
