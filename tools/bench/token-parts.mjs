#!/usr/bin/env node
// The parts of a token request, each measured alone in this process: CPU microseconds per
// operation (process.cpuUsage, so other processes on a loaded machine inflate it little),
// for signing with each key type, refresh-token verification (full vs. the verified-token
// cache), the whole TokenEndpoint decision for a refresh grant, rule evaluation, the request
// parser and a rate-limiter point. Companion to tokens.mjs (the end-to-end number): where the
// CPU of a token goes. Needs a build. Env: PARTS_N (2000, iterations per line).
import { generateKeyPairSync, sign } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = join(import.meta.dirname, '../..');
const core = await import(pathToFileURL(join(root, 'libs/registry-core/dist/index.js')).href);
const { createTokenLimiters, take } = await import(pathToFileURL(join(root, 'apps/proxy/dist/limits.js')).href);
const { AccessRules, KeySet, MemoryRevocations, RefreshCheck, TokenEndpoint, TokenService, parseTokenRequest } = core;
const N = Number(process.env.PARTS_N ?? 2000);

const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const rows = [];
/** CPU us per call of `fn(i)` over n calls, after n/10 warm-up calls. */
const measure = async (name, fn, n = N) => {
  for (let i = 0; i < Math.ceil(n / 10); i++) await fn(i);
  const c0 = cpuUs();
  for (let i = 0; i < n; i++) await fn(i);
  rows.push([name, (cpuUs() - c0) / n]);
};

const pem = (k) => k.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const ecKeys = await KeySet.fromPem(pem(generateKeyPairSync('ec', { namedCurve: 'P-256' })));
const rsaKeys = await KeySet.fromPem(pem(generateKeyPairSync('rsa', { modulusLength: 2048 })));
const service = (keys) => new TokenService({ issuer: 'bench', service: 'svc', keys, accessTokenTtl: 300, refreshTokenTtl: 86400, algorithms: ['ES256', 'RS256'], clockTolerance: 60 });
const identity = { subject: 'bench', method: 'htpasswd', groups: ['dev'], labels: {} };
const access = [{ type: 'repository', name: 'bench/app', actions: ['pull'] }];

for (const [alg, keys] of [
  ['ES256', ecKeys],
  ['RS256', rsaKeys],
]) {
  const s = service(keys);
  await measure(`issueAccessToken, ${alg} key`, () => s.issueAccessToken('bench', access), alg === 'RS256' ? N / 4 : N);
}
const ed = generateKeyPairSync('ed25519');
const data = Buffer.alloc(400, 'x');
await measure('(reference) raw Ed25519 sign, not supported', () => sign(null, data, ed.privateKey));

// Refresh verification: N distinct tokens each verified once (what every grant cost before the
// cache), then one token verified N times (what a docker client refreshing again costs now).
const s = service(ecKeys);
const distinct = await Promise.all(Array.from({ length: N + Math.ceil(N / 10) }, () => s.issueRefreshToken(identity)));
const verifier = service(ecKeys);
await measure('verifyRefresh, first use (full check)', (i) => verifier.verifyRefresh(distinct[i]));
const one = await s.issueRefreshToken(identity);
await measure('verifyRefresh, same token again (cached)', () => verifier.verifyRefresh(one));

// The whole decision for a refresh grant (no HTTP): verification, revocation check, rules, signing.
const rules = new AccessRules([
  ...Array.from({ length: 20 }, (_, i) => ({ groups: [`g${i}`], repository: [`team${i}/**`], actions: ['pull', 'push'] })),
  { account: ['bench'], repository: ['**'], actions: ['pull', 'push'] },
]);
const endpoint = (tokens) =>
  new TokenEndpoint({
    tokens,
    verifier: { name: 'none', verify: async () => ({ result: 'skip' }) },
    rules,
    basicRealm: 'svc',
    refreshCheck: new RefreshCheck({ lookup: async (id) => ({ result: 'allow', identity: id }), revalidateAfter: 3600, revocations: new MemoryRevocations() }),
  });
const grant = (t) =>
  parseTokenRequest({
    method: 'POST',
    query: new URLSearchParams(),
    form: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: t, service: 'svc', client_id: 'docker', scope: 'repository:bench/app:pull' }),
  });
const distinct2 = await Promise.all(Array.from({ length: N + Math.ceil(N / 10) }, () => s.issueRefreshToken(identity)));
const ep1 = endpoint(service(ecKeys));
await measure('TokenEndpoint.handle, refresh grant, first use', (i) => ep1.handle(grant(distinct2[i])));
const ep2 = endpoint(service(ecKeys));
const req = grant(one);
await measure('TokenEndpoint.handle, refresh grant, cached', () => ep2.handle(req));
await measure('AccessRules via grant(), 21 rules, 1 scope', () => ep2.grant(identity, access));
const body = `scope=repository%3Abench%2Fapp%3Apull&service=svc&client_id=docker&grant_type=refresh_token&refresh_token=${one}`;
await measure('parseTokenRequest (POST form)', () => parseTokenRequest({ method: 'POST', query: new URLSearchParams(), form: new URLSearchParams(body) }));
const limits = createTokenLimiters({ perClient: { burst: 1e9, perSecond: 1e9 }, perAccount: { burst: 1e9, perSecond: 1e9 }, failures: { points: 1e9, durationSeconds: 60 } });
await measure('rate limiter: take() one point (memory)', () => take(limits.client, '127.0.0.1'));

console.log(`\nregistry-proxy token parts (CPU us per operation, ${N} iterations, ${new Date().toISOString()})`);
for (const [name, us] of rows) console.log(`  ${name.padEnd(52)} ${us.toFixed(1).padStart(8)}`);
