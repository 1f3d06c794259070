import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AccessRules,
  KeySet,
  MemoryStateStore,
  parseTokenRequest,
  RefreshCheck,
  StateUnavailableError,
  TokenEndpoint,
  TokenService,
  type Identity,
  type StateStore,
} from '@registry-proxy/registry-core';
import { pino } from 'pino';
import { RevocationsFile } from '../revocations-file.js';
import { replicaRevocations, revokeSubject, StateRevocations } from './revocations.js';

const person = (subject: string): Identity => ({ subject, method: 'test', groups: [], labels: {} });
const tokenService = async () => new TokenService({ issuer: 'i', service: 'svc', keys: await KeySet.ephemeral(), accessTokenTtl: 60, refreshTokenTtl: 600, algorithms: ['ES256'], clockTolerance: 0 });
const silent = pino({ level: 'silent' });
const files: RevocationsFile[] = [];
afterAll(() => files.forEach((f) => f.stop()));

/** A replica: its own memory for the file, the shared store for --revoke-subject, one check over both. */
async function replica(store: StateStore, path: string) {
  const r = replicaRevocations(store, 600);
  const file = new RevocationsFile(path, r.file, silent, 60_000);
  files.push(file);
  await file.start();
  // revalidateAfter beyond the test: only revocations decide here.
  const check = new RefreshCheck({ lookup: async () => ({ result: 'skip' }), revalidateAfter: 3600, revocations: r.all });
  return { file, check };
}

describe('refresh-token revocation: one check, fed by the revocations file and by --revoke-subject', () => {
  it('each source refuses its subjects on every replica; a file lifts only its own entries', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rp-revocations-'));
    const path = join(dir, 'revoked.txt');
    writeFileSync(path, 'alice\n');
    const store = new MemoryStateStore(); // shared by both replicas, as Redis is
    const tokens = await tokenService();
    const [a, b] = [await replica(store, path), await replica(store, path)];
    const old = new Date(Date.now() - 5000);
    const issued = async (subject: string, at = new Date()) => tokens.verifyRefresh((await tokens.issueRefreshToken(person(subject), at)) as string);
    const [alice, bob, carol] = [await issued('alice', old), await issued('bob', old), await issued('carol', old)];
    const verdicts = async (t: Awaited<ReturnType<typeof issued>>) => Promise.all([a, b].map(async (r) => ('refused' in (await r.check.check(t)) ? 'refused' : 'ok')));

    // The file: alice, on both replicas; nobody else.
    expect(await verdicts(alice)).toEqual(['refused', 'refused']);
    expect(await verdicts(bob)).toEqual(['ok', 'ok']);

    // --revoke-subject (the CLI writes to the shared store): bob, on both replicas, at once.
    await revokeSubject(new StateRevocations(store, 600), 'bob', Date.now() - 3000);
    expect(await verdicts(bob)).toEqual(['refused', 'refused']);
    expect(await verdicts(await issued('bob'))).toEqual(['ok', 'ok']); // a login after the revocation
    expect(await verdicts(carol)).toEqual(['ok', 'ok']);

    // alice revoked through the CLI too; the file then drops her: the CLI's record still holds.
    await revokeSubject(new StateRevocations(store, 600), 'alice', Date.now() - 3000);
    writeFileSync(path, '# nobody\n');
    for (const r of [a, b]) expect(await r.file.load()).toBe(true);
    expect(await verdicts(alice)).toEqual(['refused', 'refused']);
    expect(await verdicts(await issued('alice'))).toEqual(['ok', 'ok']);

    // A cut-off time in the file spares later logins.
    writeFileSync(path, `carol ${new Date(Date.now() - 3000).toISOString()}\n`);
    for (const r of [a, b]) await r.file.load();
    expect(await verdicts(carol)).toEqual(['refused', 'refused']);
    expect(await verdicts(await issued('carol'))).toEqual(['ok', 'ok']);
  });

  it('reads records in the format earlier versions of --revoke-subject wrote (the last revoked second)', async () => {
    const store = new MemoryStateStore();
    const now = Math.floor(Date.now() / 1000);
    await store.put('revoked:subject:dave', String(now), 60_000);
    expect(await new StateRevocations(store, 600).revokedBefore('dave')).toBe(now + 1);
    await new StateRevocations(store, 600).unrevoke('dave');
    expect(await new StateRevocations(store, 600).revokedBefore('dave')).toBeLessThanOrEqual(0);
  });

  it('fails closed: a shared store that cannot answer makes the refresh grant a 503, never a token', async () => {
    const down: StateStore = {
      kind: 'down',
      claim: () => Promise.reject(new StateUnavailableError('down')),
      put: () => Promise.reject(new StateUnavailableError('down')),
      get: () => Promise.reject(new StateUnavailableError('redis get: Command timed out')),
      lock: () => Promise.reject(new StateUnavailableError('down')),
      close: async () => undefined,
    };
    const tokens = await tokenService();
    const refresh = (await tokens.issueRefreshToken(person('alice'))) as string;
    const refreshCheck = new RefreshCheck({ lookup: async () => ({ result: 'skip' }), revalidateAfter: 3600, revocations: replicaRevocations(down, 600).all });
    const ep = new TokenEndpoint({ tokens, verifier: { name: 'none', verify: async () => ({ result: 'skip' }) }, rules: new AccessRules([]), basicRealm: 'svc', refreshCheck });
    const req = parseTokenRequest({
      method: 'POST',
      query: new URLSearchParams(),
      form: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refresh, service: 'svc', client_id: 't' }),
      authorization: undefined,
    });
    const d = await ep.handle(req);
    expect([d.status, d.outcome, d.headers['Retry-After']]).toEqual([503, 'unavailable', '5']);
    expect(d.body).not.toContain(refresh);
  });
});
