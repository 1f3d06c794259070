import { ProxyError } from './codes.js';

/** One resource scope of the distribution token spec: `type[(class)]:name:actions`. */
export interface Access {
  readonly type: string;
  readonly name: string;
  readonly actions: readonly string[];
  /**
   * In an issued token: the upstream the name resolved to when it was granted. The same name
   * can mean different repositories on different upstreams (a mirror of quay.io and one of
   * ghcr.io may both have `team/app`), so a grant is good only where it was made.
   */
  readonly upstream?: string;
}

const TYPE_RE = /^[a-z0-9]+(?:\([a-z0-9]+\))?$/;
const ACTION_RE = /^[a-z*]+$/;

/**
 * Parses one scope. The name may itself contain ':' (a `host:port` prefix), so the type ends at
 * the first ':' and the actions start after the last one.
 */
export function parseScope(scope: string): Access {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) throw new ProxyError('RP_ERR_SCOPE_INVALID', `invalid scope ${JSON.stringify(scope)}`);
  const type = scope.slice(0, first);
  const name = scope.slice(first + 1, last);
  const actions = scope
    .slice(last + 1)
    .split(',')
    .filter((a) => a.length > 0);
  if (!TYPE_RE.test(type) || name.length === 0 || actions.some((a) => !ACTION_RE.test(a))) {
    throw new ProxyError('RP_ERR_SCOPE_INVALID', `invalid scope ${JSON.stringify(scope)}`);
  }
  return { type, name, actions: [...new Set(actions)] };
}

/** Parses every scope in a list of `scope` parameters, each of which may hold several separated by spaces. */
export function parseScopes(params: Iterable<string>): Access[] {
  const out: Access[] = [];
  for (const p of params) for (const s of p.split(' ')) if (s.length > 0) out.push(parseScope(s));
  return mergeAccess(out);
}

/** Formats a scope as `type:name:a,b`. */
export function formatScope(access: Access): string {
  return `${access.type}:${access.name}:${access.actions.join(',')}`;
}

/** Merges entries for the same resource, so each resource appears once with the union of its actions. */
export function mergeAccess(list: readonly Access[]): Access[] {
  const byKey = new Map<string, { type: string; name: string; actions: Set<string> }>();
  for (const a of list) {
    const key = `${a.type}\u0000${a.name}`;
    const entry = byKey.get(key) ?? { type: a.type, name: a.name, actions: new Set<string>() };
    for (const act of a.actions) entry.actions.add(act);
    byKey.set(key, entry);
  }
  return [...byKey.values()].map((e) => ({ type: e.type, name: e.name, actions: [...e.actions] }));
}

/** The actions of `requested` that `allowed` grants; `*` in `allowed` grants every action. */
export function intersectActions(requested: readonly string[], allowed: readonly string[]): string[] {
  if (allowed.includes('*')) return [...requested];
  return requested.filter((a) => allowed.includes(a));
}

/** True when the granted access list includes `action` on repository `name` as resolved to `upstream` when it was granted. */
export function grantsOn(granted: readonly Access[], name: string, upstream: string, action: string): boolean {
  return granted.some((a) => a.type === 'repository' && a.name === name && a.upstream === upstream && (a.actions.includes(action) || a.actions.includes('*')));
}

/** True when the granted access list includes `action` on `type:name`. */
export function grants(granted: readonly Access[], type: string, name: string, action: string): boolean {
  return granted.some((a) => a.type === type && a.name === name && (a.actions.includes(action) || a.actions.includes('*')));
}
