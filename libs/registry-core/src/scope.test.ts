import { formatScope, grants, intersectActions, mergeAccess, parseScope, parseScopes } from './scope.js';

describe('scopes', () => {
  it('parses a plain repository scope', () => {
    expect(parseScope('repository:team/app:pull,push')).toEqual({ type: 'repository', name: 'team/app', actions: ['pull', 'push'] });
  });
  it('keeps host:port inside the name', () => {
    expect(parseScope('repository:localhost:5000/team/app:pull')).toEqual({ type: 'repository', name: 'localhost:5000/team/app', actions: ['pull'] });
  });
  it('parses registry:catalog:* and resource classes', () => {
    expect(parseScope('registry:catalog:*')).toEqual({ type: 'registry', name: 'catalog', actions: ['*'] });
    expect(parseScope('repository(plugin):a/b:pull').type).toBe('repository(plugin)');
  });
  it.each(['', 'repository', 'repository:name', 'repository::pull', 'Repo:x:pull', 'repository:x:pu ll', 'repository:x:PULL'])('refuses %j', (s) => {
    expect(() => parseScope(s)).toThrow(/RP_ERR_SCOPE_INVALID/);
  });
  it('splits space-separated scopes and merges duplicates', () => {
    expect(parseScopes(['repository:a:pull repository:b:pull', 'repository:a:push'])).toEqual([
      { type: 'repository', name: 'a', actions: ['pull', 'push'] },
      { type: 'repository', name: 'b', actions: ['pull'] },
    ]);
  });
  it('formats', () => {
    expect(formatScope({ type: 'repository', name: 'a/b', actions: ['pull', 'push'] })).toBe('repository:a/b:pull,push');
  });
  it('intersects', () => {
    expect(intersectActions(['pull', 'push'], ['pull'])).toEqual(['pull']);
    expect(intersectActions(['pull', 'push'], ['*'])).toEqual(['pull', 'push']);
    expect(intersectActions(['push'], [])).toEqual([]);
  });
  it('answers grants', () => {
    const g = mergeAccess([{ type: 'repository', name: 'a', actions: ['pull'] }]);
    expect(grants(g, 'repository', 'a', 'pull')).toBe(true);
    expect(grants(g, 'repository', 'a', 'push')).toBe(false);
    expect(grants(g, 'repository', 'b', 'pull')).toBe(false);
  });
});
