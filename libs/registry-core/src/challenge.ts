/** One authentication challenge from a WWW-Authenticate header (RFC 9110 section 11.6.1). */
export interface Challenge {
  /** Lower-cased scheme: `bearer`, `basic`, ... */
  readonly scheme: string;
  /** Parameters with lower-cased names. */
  readonly params: Readonly<Record<string, string>>;
}

const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y;
const SPACE = /[ \t]*/y;

/**
 * Parses a WWW-Authenticate header value, which may hold several challenges separated by commas
 * (`Basic realm="a", Bearer realm="b",service="c"`). Malformed input yields the challenges parsed
 * before the error, never an exception.
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const skip = (): void => {
    SPACE.lastIndex = i;
    SPACE.exec(header);
    i = SPACE.lastIndex;
  };
  const token = (): string | undefined => {
    TOKEN.lastIndex = i;
    const m = TOKEN.exec(header);
    if (!m) return undefined;
    i = TOKEN.lastIndex;
    return m[0];
  };
  const quoted = (): string | undefined => {
    let s = '';
    for (i++; i < header.length; i++) {
      const c = header[i];
      if (c === '\\') s += header[++i] ?? '';
      else if (c === '"') {
        i++;
        return s;
      } else s += c;
    }
    return undefined;
  };
  while (i < header.length) {
    skip();
    while (header[i] === ',') {
      i++;
      skip();
    }
    const scheme = token();
    if (scheme === undefined) break;
    const params: Record<string, string> = {};
    for (;;) {
      skip();
      const start = i;
      const name = token();
      if (name === undefined) break;
      skip();
      if (header[i] !== '=') {
        i = start; // the next challenge's scheme
        break;
      }
      i++;
      skip();
      const value = header[i] === '"' ? quoted() : token();
      if (value === undefined) return [...out, { scheme: scheme.toLowerCase(), params }];
      params[name.toLowerCase()] = value;
      skip();
      if (header[i] === ',') i++;
    }
    out.push({ scheme: scheme.toLowerCase(), params });
  }
  return out;
}

function quote(v: string): string {
  return `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Formats one challenge: `Bearer realm="...",service="..."`; parameters with undefined values are left out. */
export function formatChallenge(scheme: string, params: Record<string, string | undefined>): string {
  const parts = Object.entries(params)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${quote(v)}`);
  return parts.length === 0 ? scheme : `${scheme} ${parts.join(',')}`;
}
