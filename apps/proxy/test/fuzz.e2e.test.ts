/**
 * A few thousand cases of the request fuzzer (tools/fuzz/requests.mjs runs 100,000 against the
 * built proxy) with a fixed seed, against the proxy in this process and a real docker-registry:
 * no 5xx made by the proxy, no response outside the registry error format, no error answer of
 * the proxy whose (code, HTTP status) pair is not a row of the error table, no 100 Continue
 * before a refusal, no hang, and no unhandled rejection.
 */
import { KeySet, RegistryErrors, TokenService } from '@registry-proxy/registry-core';
import { requireCommands } from '@registry-proxy/testing';
// eslint-disable-next-line @nx/enforce-module-boundaries -- the fuzzer is a tool script, shared with the suite on purpose
import { allowedPairs, fuzz, pairProblems } from '../../../tools/fuzz/cases.mjs';
import { USERS, startWorld, token, type World } from './support/fixture.js';

jest.setTimeout(180_000);
let w: World;
const rejections: unknown[] = [];
const onRejection = (r: unknown) => rejections.push(r);
beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd');
  process.on('unhandledRejection', onRejection);
  w = await startWorld();
});
afterAll(async () => {
  process.off('unhandledRejection', onRejection);
  await w?.stop();
});

it('the pair check refuses a (code, status) pair the error table does not have, and only that', () => {
  const allowed = allowedPairs(RegistryErrors);
  const answer = (status: number, codes: string[]) => ({ status, complete: true, body: Buffer.from(JSON.stringify({ errors: codes.map((code) => ({ code, message: 'm' })) })) });
  expect(pairProblems(answer(401, ['UNAUTHORIZED']), 'GET', allowed)).toEqual([]);
  expect(pairProblems(answer(413, ['SIZE_INVALID']), 'PUT', allowed)).toEqual([]);
  // The pairs issue 12 found made by a status override: each is refused.
  expect(pairProblems(answer(400, ['UNAUTHORIZED']), 'GET', allowed)).toEqual(['UNAUTHORIZED 400']);
  expect(pairProblems(answer(504, ['UNAVAILABLE', 'DENIED']), 'GET', allowed)).toEqual(['DENIED 504']);
  expect(pairProblems(answer(400, ['UNAUTHORIZED']), 'HEAD', allowed)).toEqual([]); // no body to read
});

it('3,000 generated requests (seed 11): 0 proxy-made 5xx, 0 format breaks, 0 pairs outside the error table, 0 hangs, 0 early 100s', async () => {
  const keys = await KeySet.fromPem(w.signingKeyPem);
  const access = [{ type: 'repository', name: 'team/app', actions: ['pull'], upstream: 'local' }];
  const service = (k: KeySet) => new TokenService({ issuer: 'registry-proxy', service: 'registry-proxy', keys: k, accessTokenTtl: 60, refreshTokenTtl: 60, algorithms: ['ES256'], clockTolerance: 0 });
  const pull = await token(w, 'alice', 'repository:team/app:pull');
  const tokens = {
    pull,
    push: await token(w, 'alice', 'repository:push/fuzz:pull,push'),
    mirror: await token(w, 'alice', 'repository:quay.localtest/team/app:pull'),
    otherHost: pull,
    expired: (await service(keys).issueAccessToken('alice', access, new Date(Date.now() - 3_600_000))).token,
    foreignKey: (await service(await KeySet.ephemeral()).issueAccessToken('alice', access)).token,
    unsigned: `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"alice"}').toString('base64url')}.`,
  };
  const ctx = { host: w.proxy.host, seed: 11, user: 'alice', password: USERS.alice, tokens, manifestDigest: w.images.v1.digest, blobDigest: w.images.v1.blobs[0]?.digest };
  const stats = await fuzz({ port: Number(new URL(w.proxy.url).port), ctx, seed: 11, count: 3000, concurrency: 24, errorTable: RegistryErrors });
  // 5xx from the proxy itself: its log says so (a warning or error line with the request's id).
  const flagged = w.proxy.logs
    .map((l) => JSON.parse(l) as { level: number; req_id?: string })
    .filter((l) => l.level >= 40 && l.req_id)
    .map((l) => l.req_id);
  const own = stats.fiveXX.filter((f) => flagged.includes(f.id));
  // Answers relayed from the registry keep its status and body; the proxy's own must be table rows.
  const relayed = new Set(
    w.proxy.logs
      .map((l) => JSON.parse(l) as { msg?: string; upstream?: string; req_id?: string })
      .filter((l) => l.msg === 'request' && l.upstream !== undefined)
      .map((l) => l.req_id),
  );
  const ownPairs = stats.badPairs.filter((b) => !relayed.has(b.id));
  expect(stats.cases).toBe(3000);
  expect(stats.answered).toBeGreaterThan(1500);
  expect(own).toEqual([]);
  expect(stats.formatProblems).toEqual([]);
  expect(ownPairs).toEqual([]);
  expect(stats.continueBeforeRefusal).toEqual([]);
  expect(stats.timeouts).toBe(0);
  expect(rejections).toEqual([]);
});
