/**
 * Azure instance identity, both sides, against an honest stand-in for IMDS (libs/testing
 * azure.ts): no Azure VM can run here, so the stand-in speaks IMDS's documented format and signs
 * with a TEST CA (root -> intermediate -> `eastus.metadata.azure.com`) instead of Microsoft's.
 *
 * The format, from Microsoft's "Azure Instance Metadata Service" reference, section "Attested
 * data" (learn.microsoft.com/azure/virtual-machines/instance-metadata-service#attested-data):
 * `GET /metadata/attested/document?api-version=...&nonce=<10-digit string>` with header
 * `Metadata: true` answers `{"encoding":"pkcs7","signature":"<base64 PKCS#7>"}`; the signed
 * document holds `nonce`, `plan` {name, product, publisher}, `timeStamp` {createdOn, expiresOn}
 * (`11/28/18 00:16:17 -0000`), `vmId`, `licenseType` (Azure Hybrid Benefit only),
 * `subscriptionId` and `sku`; the PKCS#7 embeds the signing certificate only, whose SAN is a
 * subdomain of metadata.azure.com. It holds no resource group and no tags: those are only at
 * the unsigned /metadata/instance, which this verifier does not use.
 */
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { azureAttestedDocument, createAzureTestCa, startAzureImds, type AzureVm } from '@registry-proxy/testing';
import { azureImdsNonce, encodeAzureIidCredential, parseAzureTimestamp } from './azure.js';
import { AzureIidProvider } from './providers.js';
import { IidStrategy } from './strategy.js';

jest.setTimeout(30_000);
const ca = createAzureTestCa();
const signer = ca.signer();
const vm: AzureVm = { vmId: '02aab8a4-74ef-476e-8182-f6d2ba4166a6', subscriptionId: '8d10da13-8125-4ba9-a717-bf7490507b3d', sku: 'ubuntu-24_04-lts', plan: { name: '', product: '', publisher: '' } };
const SECRET = 'node-secret-0123456789abcdef';

const strategy = (over = {}) => new IidStrategy({ azure: { roots: [ca.rootPem], intermediates: [ca.intermediatePem], subscriptions: [vm.subscriptionId], ...over } });
/** A credential as a node would present it: IMDS asked with the nonce derived from `secret`. */
const credential = (secret = SECRET, opts: { doc?: string; by?: typeof signer } = {}) =>
  encodeAzureIidCredential({ signature: (opts.by ?? signer).sign(opts.doc ?? azureAttestedDocument(vm, azureImdsNonce(secret))), nonce: secret });

describe('Azure attested documents', () => {
  it('the node fetches the attested document with its nonce; the proxy verifies it and labels the identity with signed claims only', async () => {
    const imds = await startAzureImds({ ...vm, licenseType: 'Windows_Server' }, signer);
    try {
      const dir = mkdtempSync(join(tmpdir(), 'rp-azure-iid-'));
      const creds = (await new AzureIidProvider({ imdsUrl: imds.url, nonceFile: join(dir, 'nonce') }).credentials()) as { username: string; password: string };
      expect(creds.username).toBe('azure-iid');
      expect(statSync(join(dir, 'nonce')).mode & 0o777).toBe(0o600);
      expect(imds.requests).toEqual([expect.stringMatching(/^GET \/metadata\/attested\/document\?api-version=2020-09-01&nonce=\d{10}$/)]);
      const r = await strategy().verify('azure-iid', creds.password);
      expect(r).toEqual({
        result: 'allow',
        identity: {
          subject: `azure/${vm.subscriptionId}/${vm.vmId}`,
          method: 'iid:azure',
          groups: [],
          labels: { 'azure.subscriptionId': vm.subscriptionId, 'azure.vmId': vm.vmId, 'azure.sku': 'ubuntu-24_04-lts', 'azure.licenseType': 'Windows_Server' },
          expiresAt: expect.any(Number),
        },
      });
      expect(Object.keys(r.result === 'allow' ? r.identity.labels : {})).not.toContain('azure.resourceGroup');
      // Refresh tokens issued for this identity end with the document (6 h in the stand-in).
      const expiresAt = r.result === 'allow' ? (r.identity.expiresAt ?? 0) : 0;
      expect(Math.abs(expiresAt - (Math.floor(Date.now() / 1000) + 6 * 3600))).toBeLessThan(30);
    } finally {
      await imds.close();
    }
  });

  it('refuses tampered content: one changed byte of the signed document breaks the signature', async () => {
    const good = JSON.parse(Buffer.from(credential(), 'base64url').toString()) as { signature: string; nonce: string };
    const der = Buffer.from(good.signature, 'base64');
    const at = der.indexOf(Buffer.from(vm.subscriptionId));
    expect(at).toBeGreaterThan(0); // the document is inside the PKCS#7, as IMDS serves it
    der.write('9', at); // another subscription, same length
    const tampered = encodeAzureIidCredential({ signature: der.toString('base64'), nonce: good.nonce });
    expect(await strategy({ subscriptions: [] }).verify('azure-iid', tampered)).toEqual({ result: 'deny', reason: 'signature does not verify with the embedded certificate' });
  });

  it('refuses a signature by a certificate that does not chain to a configured root, or lacks its intermediate', async () => {
    const other = createAzureTestCa('Attacker');
    expect(await strategy().verify('azure-iid', credential(SECRET, { by: other.signer() }))).toEqual({ result: 'deny', reason: 'signing certificate does not chain to a configured root' });
    expect(await strategy({ intermediates: [] }).verify('azure-iid', credential())).toEqual({ result: 'deny', reason: 'signing certificate does not chain to a configured root' });
    // Roots and intermediates may come as one bundle.
    expect(
      (await strategy({ roots: [`${createAzureTestCa('Other').rootPem}${ca.rootPem}`], intermediates: [`${other.intermediatePem}\n${ca.intermediatePem}`] }).verify('azure-iid', credential())).result,
    ).toBe('allow');
    // The attacker's intermediate configured does not help: its root is not.
    expect(await strategy({ intermediates: [ca.intermediatePem, other.intermediatePem] }).verify('azure-iid', credential(SECRET, { by: other.signer() }))).toMatchObject({ result: 'deny' });
    // A certificate of the right CA but for another name.
    expect(await strategy().verify('azure-iid', credential(SECRET, { by: ca.signer({ dnsNames: ['metadata.example.com'] }) }))).toEqual({
      result: 'deny',
      reason: 'signing certificate is not for metadata.azure.com (SAN: metadata.example.com)',
    });
  });

  it('refuses an expired document and an expired signing certificate', async () => {
    const expired = azureAttestedDocument(vm, azureImdsNonce(SECRET), 6 * 3600, Date.now() - 7 * 3600_000);
    expect(await strategy().verify('azure-iid', credential(SECRET, { doc: expired }))).toMatchObject({ result: 'deny', reason: expect.stringMatching(/^document expired at /) });
    const old = ca.signer({ notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
    expect(await strategy().verify('azure-iid', credential(SECRET, { by: old }))).toMatchObject({ result: 'deny', reason: expect.stringContaining('outside its validity period') });
  });

  it('refuses a subscription or VM the configuration does not allow', async () => {
    expect(await strategy({ subscriptions: ['00000000-1111-2222-3333-444444444444'] }).verify('azure-iid', credential())).toEqual({
      result: 'deny',
      reason: `subscription ${vm.subscriptionId} not allowed`,
    });
    expect(await strategy({ vmIds: ['another-vm'] }).verify('azure-iid', credential())).toEqual({ result: 'deny', reason: `VM ${vm.vmId} not allowed` });
  });

  it('binds the nonce: a document presented with another secret, or a VM seen with another secret first, is refused', async () => {
    const s = strategy();
    expect((await s.verify('azure-iid', credential('first-secret-0123456789'))).result).toBe('allow');
    expect((await s.verify('azure-iid', credential('first-secret-0123456789'))).result).toBe('allow');
    // Someone who copied the signed document but not the node's secret:
    const doc = azureAttestedDocument(vm, azureImdsNonce('first-secret-0123456789'));
    expect(await s.verify('azure-iid', credential('attacker-secret-abcdef', { doc }))).toEqual({ result: 'deny', reason: 'the signed nonce is not the one derived from the presented secret' });
    // Another process on the VM that asks IMDS itself, with its own secret, after the node:
    expect(await s.verify('azure-iid', credential('attacker-secret-abcdef'))).toEqual({ result: 'deny', reason: `VM ${vm.vmId} is bound to another nonce (a replayed document?)` });
    // IMDS's default nonce (a time stamp) when none was asked:
    expect(await s.verify('azure-iid', credential(SECRET, { doc: azureAttestedDocument(vm, undefined) }))).toMatchObject({ result: 'deny' });
  });

  it('refuses garbage, and leaves other usernames alone', async () => {
    const s = strategy();
    expect(await s.verify('azure-iid', 'not-json')).toEqual({ result: 'deny', reason: 'not an Azure attested-document credential' });
    expect(await s.verify('azure-iid', encodeAzureIidCredential({ signature: 'AAAA', nonce: SECRET }))).toEqual({ result: 'deny', reason: 'not a PKCS#7 SignedData with the document inside' });
    expect(await s.verify('azure-iid', encodeAzureIidCredential({ signature: signer.sign('x'), nonce: 'short' }))).toEqual({ result: 'deny', reason: 'nonce must be 16 to 256 characters' });
    expect(await s.verify('aws-iid', credential())).toEqual({ result: 'skip' });
    expect(() => new IidStrategy({ azure: { roots: ['-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----'] } })).toThrow(/azure roots.0: not a PEM certificate/);
  });

  it("reads IMDS's time stamps as UTC (Microsoft's example)", () => {
    expect(parseAzureTimestamp('11/28/18 06:16:17 -0000')).toBe(Date.UTC(2018, 10, 28, 6, 16, 17));
    expect(parseAzureTimestamp('11/28/2018 06:16:17 +0100')).toBe(Date.UTC(2018, 10, 28, 5, 16, 17));
    expect(parseAzureTimestamp('2018-11-28T06:16:17Z')).toBe(Date.UTC(2018, 10, 28, 6, 16, 17));
    expect(parseAzureTimestamp('2018-11-28')).toBeNaN();
    expect(parseAzureTimestamp('11/28/18 06:16:17')).toBeNaN();
  });

  it('the provider fetches a new document at half the life of the one it holds', async () => {
    const imds = await startAzureImds(vm, signer, { ttlSeconds: 4 });
    try {
      const p = new AzureIidProvider({ imdsUrl: imds.url });
      const first = await p.credentials();
      expect(await p.credentials()).toBe(first);
      expect(imds.requests).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 2500));
      await p.credentials();
      expect(imds.requests).toHaveLength(2);
    } finally {
      await imds.close();
    }
  });

  it('the provider says why when IMDS is missing or refuses', async () => {
    const imds = await startAzureImds(vm, signer);
    await imds.close();
    await expect(new AzureIidProvider({ imdsUrl: imds.url }).credentials()).rejects.toThrow(/IMDS attested document unreachable: ECONNREFUSED/);
    const wrong = await startAzureImds(vm, signer);
    try {
      // IMDS refuses requests without `Metadata: true`; the provider always sends it, so a 400 here would be a defect.
      expect((await fetch(`${wrong.url}/metadata/attested/document?api-version=2020-09-01`)).status).toBe(400);
      await expect(new AzureIidProvider({ imdsUrl: `${wrong.url}/nowhere` }).credentials()).rejects.toThrow(/IMDS attested document answered HTTP 404/);
    } finally {
      await wrong.close();
    }
  });
});
