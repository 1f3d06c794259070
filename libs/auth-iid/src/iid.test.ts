/**
 * Instance identity, both sides, against stand-ins for the cloud metadata servers that speak
 * their real formats (IMDSv2 with session tokens and an RSA-2048 PKCS#7 signature; GCP's
 * identity endpoint and a JWKS), with test certificates and keys the verifiers are told to trust.
 */
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthBackendError, MemoryStateStore, StateUnavailableError, type StateStore } from '@registry-proxy/registry-core';
import { awsDocument, createIidSigner, startGcpMetadata, startImds } from '@registry-proxy/testing';
import { AwsIidProvider, GcpIidProvider } from './providers.js';
import { IidStrategy } from './strategy.js';
import { encodeAwsIidCredential, type AwsIidCredential } from './aws.js';

jest.setTimeout(30_000);
const region = createIidSigner('eu-west-1');
const otherRegion = createIidSigner('us-east-1');
const forger = createIidSigner('an attacker');

describe('AWS instance identity', () => {
  const strategy = (over = {}) => new IidStrategy({ aws: { certificates: [otherRegion.certPem, region.certPem], accounts: ['123456789012'], ...over } });

  it('the node fetches document and signature over IMDSv2; the proxy verifies them and labels the identity', async () => {
    const doc = awsDocument({ instanceId: 'i-0aaaaaaaaaaaaaaa1' });
    const imds = await startImds(doc, region);
    try {
      const dir = mkdtempSync(join(tmpdir(), 'rp-iid-'));
      const provider = new AwsIidProvider({ imdsUrl: imds.url, nonceFile: join(dir, 'nonce') });
      const creds = await provider.credentials();
      expect(imds.requests).toEqual(['PUT /latest/api/token', 'GET /latest/dynamic/instance-identity/document', 'GET /latest/dynamic/instance-identity/rsa2048']);
      expect(creds.kind === 'basic' && creds.username).toBe('aws-iid');
      expect(statSync(join(dir, 'nonce')).mode & 0o777).toBe(0o600);
      const r = await strategy().verify('aws-iid', (creds as { password: string }).password);
      expect(r).toEqual({
        result: 'allow',
        identity: {
          subject: 'aws/123456789012/i-0aaaaaaaaaaaaaaa1',
          method: 'iid:aws',
          groups: [],
          labels: { 'aws.accountId': '123456789012', 'aws.region': 'eu-west-1', 'aws.instanceId': 'i-0aaaaaaaaaaaaaaa1', 'aws.availabilityZone': 'eu-west-1a', 'aws.imageId': 'ami-0abcdef1234567890' },
        },
      });
      // A second provider on the same node reads the same nonce.
      const again = await new AwsIidProvider({ imdsUrl: imds.url, nonceFile: join(dir, 'nonce') }).credentials();
      expect(JSON.parse(Buffer.from((again as { password: string }).password, 'base64url').toString()).nonce).toBe(readFileSync(join(dir, 'nonce'), 'utf8').trim());
    } finally {
      await imds.close();
    }
  });

  it('refuses a tampered document, a forged signature, a wrong account and garbage', async () => {
    const s = strategy();
    const doc = awsDocument();
    const good: AwsIidCredential = { document: doc, pkcs7: region.sign(doc), nonce: 'n'.repeat(32) };
    const tampered = { ...good, document: doc.replace('123456789012', '999999999999') };
    expect(await s.verify('aws-iid', encodeAwsIidCredential(tampered))).toEqual({ result: 'deny', reason: 'signature does not verify with any configured certificate' });
    const forged = { ...good, pkcs7: forger.sign(doc) };
    expect(await s.verify('aws-iid', encodeAwsIidCredential(forged))).toEqual({ result: 'deny', reason: 'signature does not verify with any configured certificate' });
    const otherAccount = awsDocument({ accountId: '210987654321' });
    expect(await s.verify('aws-iid', encodeAwsIidCredential({ document: otherAccount, pkcs7: region.sign(otherAccount), nonce: 'n'.repeat(32) }))).toEqual({
      result: 'deny',
      reason: 'account 210987654321 not allowed',
    });
    expect(await s.verify('aws-iid', 'not-base64-json')).toMatchObject({ result: 'deny' });
    expect(await s.verify('aws-iid', encodeAwsIidCredential({ ...good, pkcs7: 'AAAA' }))).toMatchObject({ result: 'deny' });
    expect(await s.verify('someone', encodeAwsIidCredential(good))).toEqual({ result: 'skip' });
    expect(await strategy({ regions: ['us-east-1'] }).verify('aws-iid', encodeAwsIidCredential(good))).toEqual({ result: 'deny', reason: 'region eu-west-1 not allowed' });
  });

  it('binds an instance to the nonce it first came with, so a replayed document is refused', async () => {
    const s = strategy();
    const doc = awsDocument();
    const pkcs7 = region.sign(doc);
    expect((await s.verify('aws-iid', encodeAwsIidCredential({ document: doc, pkcs7, nonce: 'node-nonce-0123456789' }))).result).toBe('allow');
    expect((await s.verify('aws-iid', encodeAwsIidCredential({ document: doc, pkcs7, nonce: 'node-nonce-0123456789' }))).result).toBe('allow');
    // Someone who saw the document and signature, but not the node's nonce:
    expect(await s.verify('aws-iid', encodeAwsIidCredential({ document: doc, pkcs7, nonce: 'attacker-nonce-abcdef' }))).toMatchObject({
      result: 'deny',
      reason: expect.stringContaining('bound to another nonce'),
    });
    expect(await s.verify('aws-iid', encodeAwsIidCredential({ document: doc, pkcs7, nonce: 'short' }))).toMatchObject({ result: 'deny', reason: 'nonce must be 16 to 256 characters' });
  });

  it('keeps bindings in the state store it is given, so another replica on the same store refuses a replay', async () => {
    const store = new MemoryStateStore();
    const doc = awsDocument({ instanceId: 'i-0bbbbbbbbbbbbbbb2' });
    const pkcs7 = region.sign(doc);
    expect((await strategy({ store }).verify('aws-iid', encodeAwsIidCredential({ document: doc, pkcs7, nonce: 'node-nonce-0123456789' }))).result).toBe('allow');
    const replica = strategy({ store });
    expect(await replica.verify('aws-iid', encodeAwsIidCredential({ document: doc, pkcs7, nonce: 'attacker-nonce-abcdef' }))).toMatchObject({
      result: 'deny',
      reason: expect.stringContaining('bound to another nonce'),
    });
    expect((await replica.verify('aws-iid', encodeAwsIidCredential({ document: doc, pkcs7, nonce: 'node-nonce-0123456789' }))).result).toBe('allow');
    // A replica with a store of its own would have let the replay in (what each replica did before).
    expect((await strategy().verify('aws-iid', encodeAwsIidCredential({ document: doc, pkcs7, nonce: 'attacker-nonce-abcdef' }))).result).toBe('allow');
  });

  it('fails closed when the state store cannot answer: a backend error (503), never an allow', async () => {
    const down: StateStore = {
      kind: 'down',
      claim: () => Promise.reject(new StateUnavailableError('redis claim: Command timed out')),
      put: () => Promise.reject(new StateUnavailableError('down')),
      get: () => Promise.reject(new StateUnavailableError('down')),
      lock: () => Promise.reject(new StateUnavailableError('down')),
      close: async () => undefined,
    };
    const doc = awsDocument();
    await expect(strategy({ store: down }).verify('aws-iid', encodeAwsIidCredential({ document: doc, pkcs7: region.sign(doc), nonce: 'node-nonce-0123456789' }))).rejects.toBeInstanceOf(
      AuthBackendError,
    );
  });

  it('refuses certificates that are not certificates, at construction', () => {
    expect(() => new IidStrategy({ aws: { certificates: ['-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----'] } })).toThrow(/aws certificates.0: not a PEM certificate/);
    expect(() => new IidStrategy({})).toThrow(/configure at least one of aws, gcp, azure/);
  });
});

describe('GCP instance identity', () => {
  const compute = { project_id: 'acme-prod', zone: 'europe-west1-b', instance_id: '4242424242', instance_name: 'gke-pool-1-abcd' };
  const AUD = 'https://registry.example.com';

  it('the node asks the metadata server for a full identity token; the proxy verifies it', async () => {
    const md = await startGcpMetadata(compute);
    try {
      const creds = (await new GcpIidProvider({ audience: AUD, metadataUrl: md.url }).credentials()) as { username: string; password: string };
      expect(creds.username).toBe('gcp-iid');
      expect(md.requests).toEqual([`GET /computeMetadata/v1/instance/service-accounts/default/identity?audience=${encodeURIComponent(AUD)}&format=full`]);
      const s = new IidStrategy({ gcp: { audience: AUD, jwksUrl: md.jwksUrl, projects: ['acme-prod'] } });
      expect(await s.verify('gcp-iid', creds.password)).toEqual({
        result: 'allow',
        identity: {
          subject: 'gcp/acme-prod/gke-pool-1-abcd',
          method: 'iid:gcp',
          groups: [],
          labels: { 'gcp.project': 'acme-prod', 'gcp.zone': 'europe-west1-b', 'gcp.instanceId': '4242424242', 'gcp.instanceName': 'gke-pool-1-abcd' },
          expiresAt: expect.any(Number),
        },
      });
      // Another project, another audience, an expired token.
      expect(await new IidStrategy({ gcp: { audience: AUD, jwksUrl: md.jwksUrl, projects: ['other'] } }).verify('gcp-iid', creds.password)).toEqual({
        result: 'deny',
        reason: 'project acme-prod not allowed',
      });
      expect(await new IidStrategy({ gcp: { audience: 'https://elsewhere.example.com', jwksUrl: md.jwksUrl } }).verify('gcp-iid', creds.password)).toEqual({
        result: 'deny',
        reason: 'token rejected: ERR_JWT_CLAIM_VALIDATION_FAILED (aud)',
      });
      const now = Math.floor(Date.now() / 1000);
      const expired = await md.sign({ iss: 'https://accounts.google.com', aud: AUD, iat: now - 7200, exp: now - 3600, google: { compute_engine: compute } });
      expect(await s.verify('gcp-iid', expired)).toEqual({ result: 'deny', reason: 'token rejected: ERR_JWT_EXPIRED' });
      const notGoogle = await md.sign({ iss: 'https://evil.example.com', aud: AUD, exp: now + 600, google: { compute_engine: compute } });
      expect(await s.verify('gcp-iid', notGoogle)).toEqual({ result: 'deny', reason: 'token rejected: ERR_JWT_CLAIM_VALIDATION_FAILED (iss)' });
      const thin = await md.sign({ iss: 'https://accounts.google.com', aud: AUD, exp: now + 600 });
      expect(await s.verify('gcp-iid', thin)).toMatchObject({ result: 'deny', reason: expect.stringContaining('format=full') });
    } finally {
      await md.close();
    }
  });

  it('says why when the metadata server is missing or refuses', async () => {
    const md = await startGcpMetadata(compute);
    await md.close();
    await expect(new GcpIidProvider({ audience: AUD, metadataUrl: md.url }).credentials()).rejects.toThrow(/the metadata server unreachable: ECONNREFUSED/);
  });
});

describe('IidStrategy.lookup (refresh re-checks, issue 11 defect 7)', () => {
  const id = (method: string, labels: Record<string, string>) => ({ subject: 'x', method, groups: [], labels });
  it('re-applies the allow-lists configured now to an identity established earlier', async () => {
    const s = new IidStrategy({
      aws: { certificates: [region.certPem], accounts: ['123456789012'], instanceIds: ['i-1'] },
      gcp: { audience: 'a', projects: ['p1'], jwksUrl: 'http://127.0.0.1:9/jwks' },
    });
    const aws = { 'aws.accountId': '123456789012', 'aws.region': 'eu-west-1', 'aws.instanceId': 'i-1' };
    expect((await s.lookup(id('iid:aws', aws))).result).toBe('allow');
    expect((await s.lookup(id('iid:aws', { ...aws, 'aws.instanceId': 'i-2' }))).result).toBe('deny');
    expect((await s.lookup(id('iid:aws', { ...aws, 'aws.accountId': '999999999999' }))).result).toBe('deny');
    const gcp = { 'gcp.project': 'p1', 'gcp.zone': 'z', 'gcp.instanceId': '1', 'gcp.instanceName': 'n' };
    expect((await s.lookup(id('iid:gcp', gcp))).result).toBe('allow');
    expect((await s.lookup(id('iid:gcp', { ...gcp, 'gcp.project': 'p2' }))).result).toBe('deny');
    expect((await s.lookup(id('ldap', {}))).result).toBe('skip');
  });
});
