/**
 * The component a request comes from: its User-Agent up to the first '/', lower-cased and
 * trimmed ("kubelet/v1.34.4 (linux/amd64) kubernetes/abc" → "kubelet"); '' when absent.
 * Per-client cache views are keyed by it.
 */
export function componentOf(userAgent: string | null | undefined): string {
  if (!userAgent) return '';
  const slash = userAgent.indexOf('/');
  return (slash < 0 ? userAgent : userAgent.slice(0, slash)).trim().toLowerCase();
}
