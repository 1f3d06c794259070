import type { Identity } from './identity.js';

/** One access rule: who (all given matchers must match), which repositories, which actions. */
export interface AccessRule {
  /** Globs on the identity's subject; `anonymous` matches requests without credentials. */
  readonly account?: readonly string[] | undefined;
  /** The identity must be in at least one group matching one of these globs. */
  readonly groups?: readonly string[] | undefined;
  /** Each label must be present with a value matching the glob. */
  readonly labels?: Readonly<Record<string, string>> | undefined;
  /** Repository globs: `*` stays within one path segment, `**` crosses segments, `${account}` is the subject. */
  readonly repository: readonly string[];
  /**
   * Host globs (`gcr.example.com`, `*.example.com`): the rule applies only to requests for
   * these virtual hosts. Without it, the rule applies on every host.
   */
  readonly hosts?: readonly string[] | undefined;
  /**
   * Upstream name globs: the rule applies only to repositories that resolve to one of these
   * upstreams (by prefix, host or a mirror request's `ns`). Without it, to every upstream.
   */
  readonly upstreams?: readonly string[] | undefined;
  /** Actions granted: `pull`, `push`, `delete`, or `*`. An empty list denies explicitly. */
  readonly actions: readonly string[];
}

/** The identity of a request without credentials. */
export const ANONYMOUS: Identity = Object.freeze({ subject: 'anonymous', method: 'anonymous', groups: [], labels: {} });

const globCache = new Map<string, RegExp>();

/** Remembered answers per identity (see AccessRules.decided): a client asks for a few repositories. */
const DECIDED_PER_IDENTITY = 32;

/** Compiles a glob: `**` any characters, `*` any except '/', `?` one character except '/', `\\x` a literal x. */
export function globToRegExp(glob: string): RegExp {
  let re = globCache.get(glob);
  if (re) return re;
  let src = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '\\' && i + 1 < glob.length) {
      src += (glob[++i] as string).replace(/[.*?+^${}()|[\]\\]/g, '\\$&');
    } else if (c === '*' && glob[i + 1] === '*') {
      src += '.*';
      i++;
    } else if (c === '*') src += '[^/]*';
    else if (c === '?') src += '[^/]';
    else src += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  re = new RegExp(`^${src}$`, 's');
  if (globCache.size < 10_000) globCache.set(glob, re);
  return re;
}

function matchAny(globs: readonly string[], value: string): boolean {
  return globs.some((g) => globToRegExp(g).test(value));
}

function escapeGlob(s: string): string {
  return s.replace(/[*?\\]/g, '\\$&');
}

function identityMatches(rule: AccessRule, id: Identity): boolean {
  if (rule.account && !matchAny(rule.account, id.subject)) return false;
  if (rule.groups && !id.groups.some((g) => matchAny(rule.groups as readonly string[], g))) return false;
  if (rule.labels) {
    for (const [k, glob] of Object.entries(rule.labels)) {
      const v = id.labels[k];
      if (v === undefined || !globToRegExp(glob).test(v)) return false;
    }
  }
  // A rule that names no account only applies to authenticated identities.
  if (!rule.account && id.method === 'anonymous') return false;
  return true;
}

/**
 * Ordered access rules: the first rule that matches both the identity and the repository
 * decides the actions; when none matches, nothing is allowed.
 */
export class AccessRules {
  private readonly rules: readonly AccessRule[];

  /** Whether any rule names hosts (then tokens are bound to the host they were issued for). */
  get hostAware(): boolean {
    return this.rules.some((r) => r.hosts !== undefined);
  }

  constructor(rules: readonly AccessRule[]) {
    this.rules = Object.freeze(rules.map((r) => Object.freeze({ ...r })));
  }

  /**
   * Answers already worked out, per identity object and (repository, host, upstream): every
   * token request and every catalog page asks again for the identity a cache handed back (the
   * password and refresh-token caches return the same object each time), and a rules walk costs
   * a glob escape and a regex test per rule. Identities are not changed once made, and a new
   * rule set is a new AccessRules, so an answer stays right for as long as its identity lives
   * (a WeakMap: it goes with it). At most {@link DECIDED_PER_IDENTITY} answers per identity.
   */
  private readonly decided = new WeakMap<Identity, Map<string, readonly string[]>>();

  /**
   * The actions `identity` may perform on `repository` (on virtual host `host`, when given,
   * resolved to upstream `upstream`, when given: rules naming hosts or upstreams need them).
   */
  allowedActions(identity: Identity, repository: string, host?: string, upstream?: string): readonly string[] {
    // Length-prefixed, so no two argument lists share a key whatever characters they hold.
    const key = `${repository.length}:${repository}${host === undefined ? '-' : `${host.length}:${host}`}${upstream === undefined ? '-' : `${upstream.length}:${upstream}`}`;
    let answers = this.decided.get(identity);
    const hit = answers?.get(key);
    if (hit !== undefined) return hit;
    const actions = this.evaluate(identity, repository, host, upstream);
    if (answers === undefined) this.decided.set(identity, (answers = new Map()));
    else if (answers.size >= DECIDED_PER_IDENTITY) answers.clear();
    answers.set(key, actions);
    return actions;
  }

  private evaluate(identity: Identity, repository: string, host: string | undefined, upstream: string | undefined): readonly string[] {
    const account = escapeGlob(identity.subject);
    const h = host?.toLowerCase().replace(/:\d+$/, '');
    for (const rule of this.rules) {
      if (!identityMatches(rule, identity)) continue;
      if (rule.hosts && (h === undefined || !matchAny(rule.hosts, h))) continue;
      if (rule.upstreams && (upstream === undefined || !matchAny(rule.upstreams, upstream))) continue;
      const repoGlobs = rule.repository.map((g) => g.replaceAll('${account}', account));
      if (matchAny(repoGlobs, repository)) return rule.actions;
    }
    return [];
  }
}
