/**
 * Reads a claim by path. Claim names may themselves contain dots (`kubernetes.io`), so the
 * path is matched greedily: the longest leading part that is a key at each level wins.
 * `kubernetes.io.namespace` reads `{"kubernetes.io": {"namespace": ...}}`.
 */
export function readClaim(claims: unknown, path: string): unknown {
  if (path === '') return claims;
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) return undefined;
  const obj = claims as Record<string, unknown>;
  if (Object.hasOwn(obj, path)) return obj[path];
  const parts = path.split('.');
  for (let i = parts.length - 1; i >= 1; i--) {
    const head = parts.slice(0, i).join('.');
    if (Object.hasOwn(obj, head)) {
      const found = readClaim(obj[head], parts.slice(i).join('.'));
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/** A claim as a label value: strings and numbers and booleans as text; anything else is left out. */
export function claimText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

/** A claim as a list of group names: an array of strings, or one string. */
export function claimList(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}
