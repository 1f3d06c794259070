/**
 * HTTPS served by the proxy itself, with certificate files that are reloaded when they change.
 * The client is Node's TLS stack verifying against the test CA, so the certificate a new
 * connection sees is checked directly.
 */
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { requireCommands, createTestCa, type TestCa } from '@registry-proxy/testing';
import { startTestProxy, type TestProxy } from './support/proxy.js';

jest.setTimeout(30_000);
let ca: TestCa;
let proxy: TestProxy;
const live = { certFile: '', keyFile: '' };

beforeAll(async () => {
  await requireCommands('openssl');
  ca = createTestCa();
  const first = ca.issue('first');
  live.certFile = join(ca.dir, 'live.crt');
  live.keyFile = join(ca.dir, 'live.key');
  copyFileSync(first.certFile, live.certFile);
  copyFileSync(first.keyFile, live.keyFile);
  proxy = await startTestProxy({ listen: { host: '127.0.0.1', port: 0, tls: { ...live, reloadIntervalMs: 100 } }, upstreams: [{ name: 'up', url: 'http://127.0.0.1:9' }] });
});
afterAll(async () => {
  await proxy?.close();
});

/** The CN of the certificate a new TLS connection is served, verified against the test CA. */
function servedCn(): Promise<string> {
  const { hostname, port } = new URL(proxy.url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: hostname, port: Number(port), ca: ca.caPem, servername: 'localhost' }, () => {
      const cn = s.getPeerCertificate().subject.CN;
      s.end();
      resolve(Array.isArray(cn) ? cn.join(',') : String(cn));
    });
    s.on('error', reject);
  });
}
async function waitForCn(cn: string): Promise<void> {
  const until = Date.now() + 10_000;
  while ((await servedCn()) !== cn) {
    if (Date.now() > until) throw new Error(`still not serving ${cn}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('HTTPS', () => {
  it('serves the registry API over TLS', async () => {
    expect(proxy.url.startsWith('https://127.0.0.1:')).toBe(true);
    expect(await servedCn()).toBe('first');
    const { request } = await import('node:https');
    const res = await new Promise<{ status: number; challenge: string }>((resolve, reject) => {
      request(`${proxy.url}/v2/`, { ca: ca.caPem }, (r) => {
        r.resume();
        resolve({ status: r.statusCode ?? 0, challenge: String(r.headers['www-authenticate']) });
      })
        .on('error', reject)
        .end();
    });
    expect(res).toEqual({ status: 401, challenge: `Bearer realm="${proxy.url}/token",service="registry-proxy"` });
  });

  it('reloads a renewed certificate without a restart, and keeps the old one when the new pair does not match', async () => {
    const second = ca.issue('second');
    copyFileSync(second.certFile, live.certFile);
    copyFileSync(second.keyFile, live.keyFile);
    await waitForCn('second');
    expect(proxy.logs.some((l) => l.includes('TLS certificate reloaded') && l.includes('CN=second'))).toBe(true);

    // A certificate whose key is not there (yet): refused, logged, the current pair stays.
    const third = ca.issue('third');
    const before = proxy.logs.length;
    copyFileSync(third.certFile, live.certFile);
    const until = Date.now() + 5000;
    while (!proxy.logs.slice(before).some((l) => l.includes('keeping the current one'))) {
      if (Date.now() > until) throw new Error('mismatch not reported');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await servedCn()).toBe('second');
    // The key arrives: the pair is complete and taken.
    copyFileSync(third.keyFile, live.keyFile);
    await waitForCn('third');
    // Key material never reaches the logs.
    expect(proxy.logs.join('')).not.toContain('PRIVATE KEY');
  });

  it('refuses to start with an unusable pair, naming listen.tls', async () => {
    const other = ca.issue('other');
    const bad = join(ca.dir, 'garbage.crt');
    writeFileSync(bad, 'not a certificate');
    await expect(startTestProxy({ listen: { port: 0, tls: { certFile: bad, keyFile: other.keyFile } }, upstreams: [{ name: 'up', url: 'http://127.0.0.1:9' }] })).rejects.toThrow(
      /listen\.tls: unusable certificate or key/,
    );
    await expect(startTestProxy({ listen: { port: 0, tls: { certFile: other.certFile, keyFile: live.keyFile } }, upstreams: [{ name: 'up', url: 'http://127.0.0.1:9' }] })).rejects.toThrow(
      /listen\.tls: unusable certificate or key: .*key values mismatch/,
    );
    await expect(
      startTestProxy({ listen: { port: 0, tls: { certFile: join(ca.dir, 'missing.crt'), keyFile: other.keyFile } }, upstreams: [{ name: 'up', url: 'http://127.0.0.1:9' }] }),
    ).rejects.toThrow(/listen\.tls: cannot read .*missing\.crt: ENOENT/);
  });
});
