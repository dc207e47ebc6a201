/**
 * The node a bootstrap token is bound to, carried in the token's groups.
 *
 * `tether-hub token create --node-name N` puts the extra group `system:bootstrappers:tether:node:<N'>`
 * into the token's `auth-extra-groups`, where N' is N with every `.` written as `:`. The apiserver
 * accepts only groups matching `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]` (it refuses the
 * whole token otherwise), so the dots of a DNS-subdomain node name cannot appear literally; node
 * names never contain `:`, so the mapping is one-to-one. The apiserver copies the requester's
 * groups into every CSR's spec.groups, where the requester cannot forge them: that is where the
 * approver reads the name back.
 */
export const TOKEN_NODE_GROUP_PREFIX = 'system:bootstrappers:tether:node:';

/** Longest node name that fits the apiserver's bootstrap group pattern behind the prefix. */
export const MAX_TOKEN_NODE_NAME = 256 - 'tether:node:'.length; // 256: the pattern's [a-z0-9:-]{0,255}[a-z0-9]

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Why `name` cannot be bound to a token, or undefined when it can. */
export function tokenNodeNameProblem(name: string): string | undefined {
  if (!DNS_SUBDOMAIN.test(name)) return `${JSON.stringify(name)} is not a valid node name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)`;
  if (name.length > MAX_TOKEN_NODE_NAME) return `node name ${JSON.stringify(name)} is ${name.length} characters long; a bootstrap token can carry at most ${MAX_TOKEN_NODE_NAME}`;
  return undefined;
}

/** The extra group that binds a token to node `name` (call tokenNodeNameProblem first). */
export function tokenNodeGroup(name: string): string {
  return TOKEN_NODE_GROUP_PREFIX + name.replaceAll('.', ':');
}

/** The node names that `groups` bind a token to (normally none or one). */
export function tokenNodesOf(groups: readonly string[]): string[] {
  return groups.filter((g) => g.startsWith(TOKEN_NODE_GROUP_PREFIX)).map((g) => g.slice(TOKEN_NODE_GROUP_PREFIX.length).replaceAll(':', '.'));
}
