import { ANONYMOUS, AccessRules, globToRegExp } from './access-rules.js';
import type { Identity } from './identity.js';

const id = (subject: string, groups: string[] = [], labels: Record<string, string> = {}): Identity => ({ subject, method: 'test', groups, labels });

describe('globs', () => {
  it('* stays in a segment, ** crosses, \\ escapes', () => {
    expect(globToRegExp('team/*').test('team/app')).toBe(true);
    expect(globToRegExp('team/*').test('team/a/b')).toBe(false);
    expect(globToRegExp('team/**').test('team/a/b')).toBe(true);
    expect(globToRegExp('a\\*b').test('a*b')).toBe(true);
    expect(globToRegExp('a\\*b').test('axb')).toBe(false);
    expect(globToRegExp('a.b').test('axb')).toBe(false);
  });
});

describe('AccessRules', () => {
  const rules = new AccessRules([
    { account: ['root'], repository: ['**'], actions: ['*'] },
    { account: ['mallory'], repository: ['**'], actions: [] },
    { groups: ['registry-admins'], repository: ['**'], actions: ['pull', 'push', 'delete'] },
    { labels: { 'kubernetes.io/namespace': 'team-*' }, repository: ['apps/**'], actions: ['pull'] },
    { repository: ['users/${account}/**'], actions: ['pull', 'push'] },
    { repository: ['public/**'], actions: ['pull'] },
    { account: ['anonymous'], repository: ['open/*'], actions: ['pull'] },
  ]);

  it('first match wins', () => {
    expect(rules.allowedActions(id('root'), 'x/y')).toEqual(['*']);
    expect(rules.allowedActions(id('mallory'), 'public/a')).toEqual([]);
  });
  it('matches groups and labels', () => {
    expect(rules.allowedActions(id('ann', ['dev', 'registry-admins']), 'x')).toEqual(['pull', 'push', 'delete']);
    expect(rules.allowedActions(id('sa', [], { 'kubernetes.io/namespace': 'team-a' }), 'apps/web')).toEqual(['pull']);
    expect(rules.allowedActions(id('sa', [], { 'kubernetes.io/namespace': 'other' }), 'apps/web')).toEqual([]);
  });
  it('substitutes the account placeholder, escaped', () => {
    expect(rules.allowedActions(id('bob'), 'users/bob/app')).toEqual(['pull', 'push']);
    expect(rules.allowedActions(id('bob'), 'users/alice/app')).toEqual([]);
    expect(rules.allowedActions(id('*'), 'users/alice/app')).toEqual([]);
  });
  it('denies by default', () => {
    expect(rules.allowedActions(id('bob'), 'secret/x')).toEqual([]);
  });
  it('applies account-less rules to authenticated identities only', () => {
    expect(rules.allowedActions(id('bob'), 'public/x')).toEqual(['pull']);
    expect(rules.allowedActions(ANONYMOUS, 'public/x')).toEqual([]);
    expect(rules.allowedActions(ANONYMOUS, 'open/x')).toEqual(['pull']);
  });
});

describe('AccessRules with hosts', () => {
  const id = { subject: 'u', method: 'm', groups: [], labels: {} };
  const rules = new AccessRules([
    { account: ['u'], hosts: ['gcr.example.com', '*.internal'], repository: ['**'], actions: ['pull', 'push'] },
    { account: ['u'], repository: ['**'], actions: ['pull'] },
  ]);
  it('applies host rules only on those hosts (ports ignored, case-insensitive), and says it is host-aware', () => {
    expect(rules.allowedActions(id, 'a/b', 'GCR.example.com:443')).toEqual(['pull', 'push']);
    expect(rules.allowedActions(id, 'a/b', 'x.internal')).toEqual(['pull', 'push']);
    expect(rules.allowedActions(id, 'a/b', 'hub.example.com')).toEqual(['pull']);
    expect(rules.allowedActions(id, 'a/b')).toEqual(['pull']); // no host known: host rules do not apply
    expect(rules.hostAware).toBe(true);
    expect(new AccessRules([{ repository: ['**'], actions: ['pull'] }]).hostAware).toBe(false);
  });
  it('applies upstream rules only to names resolved to those upstreams (issue 11, defect 6)', () => {
    const r = new AccessRules([
      { account: ['u'], upstreams: ['quay-*'], repository: ['team/**'], actions: ['pull', 'push'] },
      { account: ['u'], upstreams: ['ghcr'], repository: ['**'], actions: [] },
      { account: ['u'], repository: ['**'], actions: ['pull'] },
    ]);
    expect(r.allowedActions(id, 'team/app', undefined, 'quay-eu')).toEqual(['pull', 'push']);
    expect(r.allowedActions(id, 'team/app', undefined, 'ghcr')).toEqual([]);
    expect(r.allowedActions(id, 'team/app', undefined, 'hub')).toEqual(['pull']);
    expect(r.allowedActions(id, 'team/app')).toEqual(['pull']); // no upstream known: upstream rules do not apply
  });
});

// Token endpoint bench, 2026-12-03: the rules walk was about 3% of a token's CPU with one rule,
// more with many; answers are now remembered per identity object.
describe('AccessRules remembered answers', () => {
  const make = () =>
    new AccessRules([
      { account: ['u'], hosts: ['x'], repository: ['**'], actions: ['push'] },
      { account: ['u'], upstreams: ['x'], repository: ['**'], actions: ['delete'] },
      { account: ['u'], repository: ['a', 'a/**'], actions: ['pull'] },
    ]);
  const walks = (rules: AccessRules) => jest.spyOn(rules as unknown as { evaluate: () => readonly string[] }, 'evaluate');

  it('answers a repeated question from memory, as a fresh walk would, and never across arguments', () => {
    const rules = make();
    const walk = walks(rules);
    const u = id('u');
    const ask = () => [
      rules.allowedActions(u, 'a', 'x'),
      rules.allowedActions(u, 'a', undefined, 'x'),
      rules.allowedActions(u, 'a'),
      rules.allowedActions(u, 'a', 'x', 'x'),
      rules.allowedActions(u, 'b'),
      rules.allowedActions(u, 'a', ''),
    ];
    const expected = [['push'], ['delete'], ['pull'], ['push'], [], ['pull']];
    expect(ask()).toEqual(expected);
    expect(walk).toHaveBeenCalledTimes(6);
    expect(ask()).toEqual(expected);
    expect(walk).toHaveBeenCalledTimes(6); // all six from memory
    // The same fields in another object, and the same object under another rule set, are asked afresh.
    expect(rules.allowedActions(id('u'), 'a', 'x')).toEqual(['push']);
    expect(walk).toHaveBeenCalledTimes(7);
    expect(new AccessRules([{ account: ['u'], repository: ['**'], actions: [] }]).allowedActions(u, 'a', 'x')).toEqual([]);
  });

  it('keys every argument list apart, whatever characters the names hold', () => {
    const rules = make();
    const u = id('u');
    // Without length prefixes these could share a key ("a" on host "x" vs a repository holding the host).
    expect(rules.allowedActions(u, 'a1:x')).toEqual([]);
    expect(rules.allowedActions(u, 'ax')).toEqual([]);
    expect(rules.allowedActions(u, 'a\u0000x')).toEqual([]);
    expect(rules.allowedActions(u, 'a', 'x')).toEqual(['push']);
    expect(rules.allowedActions(u, 'a-', undefined)).toEqual([]);
    expect(rules.allowedActions(u, 'a', undefined, undefined)).toEqual(['pull']);
    expect(rules.allowedActions(u, 'a/1:x', '-')).toEqual(['pull']);
    expect(rules.allowedActions(u, 'a/1:x-')).toEqual(['pull']);
    expect(rules.allowedActions(u, 'a', '1:x')).toEqual(['pull']);
  });

  it('remembers at most 32 answers per identity', () => {
    const rules = make();
    const u = id('u');
    for (let i = 0; i < 100; i++) expect(rules.allowedActions(u, `a/${i}`)).toEqual(['pull']);
    const size = (rules as unknown as { decided: WeakMap<Identity, Map<string, unknown>> }).decided.get(u)?.size ?? 0;
    expect(size).toBeGreaterThan(0);
    expect(size).toBeLessThanOrEqual(32);
  });
});
