import { execFileSync } from 'node:child_process';
import bcrypt from 'bcryptjs';
import passport from 'passport';
import type { IncomingMessage } from 'node:http';
import { StaticStrategy } from './strategy.js';
import { parseHtpasswd } from './htpasswd.js';

const hash = (p: string) => bcrypt.hashSync(p, 4);

describe('parseHtpasswd', () => {
  it('reads bcrypt lines, comments and blank lines', () => {
    const users = parseHtpasswd(`# team\nalice:${hash('a')}\n\nbob:${hash('b')}\r\n`);
    expect([...users.keys()]).toEqual(['alice', 'bob']);
  });
  it.each([
    ['MD5', 'alice:$apr1$abc$defghijklmnopqrstuvwx'],
    ['SHA1', 'alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g='],
    ['crypt', 'alice:rl2ZeU1eYu1yU'],
    ['plain', 'alice:secret'],
    ['no colon', 'alice'],
  ])('refuses %s with the line and user, never the hash', (_kind, line) => {
    let message = '';
    try {
      parseHtpasswd(line, 'users.htpasswd');
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^RP_ERR_HTPASSWD_INVALID: users.htpasswd line 1/);
    const secretPart = line.split(':')[1];
    if (secretPart) expect(message).not.toContain(secretPart);
  });
  it('refuses duplicate users', () => {
    expect(() => parseHtpasswd(`a:${hash('x')}\na:${hash('y')}`)).toThrow(/listed twice/);
  });
  // Needs apache2-utils (installed by tools/install-deps.sh).
  it('reads what Apache htpasswd -B writes', async () => {
    const line = execFileSync('htpasswd', ['-nbB', 'carol', 's3cret']).toString();
    const s = new StaticStrategy({ htpasswd: [{ source: 'f', text: line }] });
    expect((await s.verify('carol', 's3cret')).result).toBe('allow');
  });
});

describe('StaticStrategy', () => {
  const strategy = new StaticStrategy({
    htpasswd: [{ source: 'f', text: `alice:${hash('pw')}\n` }],
    users: [{ username: 'bob', passwordHash: hash('bpw'), groups: ['dev'] }],
    groups: { admins: ['alice'] },
  });

  it('allows with an identity carrying groups', async () => {
    expect(await strategy.verify('alice', 'pw')).toEqual({ result: 'allow', identity: { subject: 'alice', method: 'htpasswd', groups: ['admins'], labels: {} } });
    expect(await strategy.verify('bob', 'bpw')).toMatchObject({ result: 'allow', identity: { groups: ['dev'] } });
  });
  it('denies wrong and empty passwords, and says "not mine" for unknown users', async () => {
    expect((await strategy.verify('alice', 'nope')).result).toBe('deny');
    expect((await strategy.verify('alice', '')).result).toBe('deny');
    expect((await strategy.verify('carol', 'pw')).result).toBe('skip');
  });
  it('refuses non-bcrypt configured hashes and duplicate users at construction', () => {
    expect(() => new StaticStrategy({ users: [{ username: 'x', passwordHash: 'plain' }] })).toThrow(/RP_ERR_HTPASSWD_INVALID: users\[0\]/);
    expect(() => new StaticStrategy({ htpasswd: [{ source: 'f', text: `a:${hash('x')}` }], users: [{ username: 'a', passwordHash: hash('y') }] })).toThrow(/defined twice/);
  });

  describe('as a Passport strategy', () => {
    function run(authorization?: string): Promise<{ kind: string; value?: unknown }> {
      return new Promise((resolve) => {
        const s = Object.create(strategy) as StaticStrategy & Record<string, unknown>;
        s['success'] = (user: unknown) => resolve({ kind: 'success', value: user });
        s['fail'] = (challenge: unknown) => resolve({ kind: 'fail', value: challenge });
        s['pass'] = () => resolve({ kind: 'pass' });
        s['error'] = (err: unknown) => resolve({ kind: 'error', value: err });
        s.authenticate({ headers: authorization === undefined ? {} : { authorization } } as IncomingMessage);
      });
    }
    const b = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
    it('maps allow/deny/not-mine to success/fail/pass', async () => {
      expect(await run(b('alice', 'pw'))).toMatchObject({ kind: 'success', value: { subject: 'alice' } });
      expect(await run(b('alice', 'bad'))).toEqual({ kind: 'fail', value: 'Basic realm="registry-proxy"' });
      expect(await run(b('zed', 'x'))).toEqual({ kind: 'pass' });
      expect(await run()).toMatchObject({ kind: 'fail' });
      expect(await run('Basic %%%')).toMatchObject({ kind: 'fail' });
    });
    it('plugs into passport.use / passport.authenticate', async () => {
      const p = new passport.Passport();
      p.use('static', strategy);
      const user = await new Promise((resolve, reject) => {
        const mw = p.authenticate('static', { session: false }, (err: unknown, u: unknown) => (err ? reject(err) : resolve(u)));
        mw({ headers: { authorization: b('bob', 'bpw') } }, {}, reject);
      });
      expect(user).toMatchObject({ subject: 'bob', groups: ['dev'] });
    });
  });
});
