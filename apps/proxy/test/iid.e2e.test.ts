/**
 * Instance identity logins end to end: the node-side providers fetch their credentials from
 * stand-ins for IMDSv2 and the GCP metadata server (no cloud can run here; they speak the real
 * formats), docker logs in with them, and the proxy's `iid` strategy decides by account and
 * project labels.
 */
import { AwsIidProvider, GcpIidProvider } from '@registry-proxy/auth-iid';
import {
  Pusher,
  awsDocument,
  createIidSigner,
  requireCommands,
  sampleImage,
  startDockerd,
  startGcpMetadata,
  startImds,
  startRegistry,
  type TestDockerd,
  type TestRegistry,
} from '@registry-proxy/testing';
import { startTestProxy, type TestProxy } from './support/proxy.js';

jest.setTimeout(120_000);
const signer = createIidSigner('eu-west-1');
let reg: TestRegistry;
let proxy: TestProxy;
let d: TestDockerd;
const img = sampleImage('amd64');
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd', 'dockerd', 'docker');
  reg = await startRegistry({ up: 'up-pw' });
  await new Pusher(reg.url, 'up', 'up-pw').image('nodes/pause', 'v1', img);
  proxy = await startTestProxy({
    auth: [
      { type: 'iid', aws: { certificates: [signer.certPem], accounts: ['123456789012'] }, gcp: { audience: 'registry-proxy-test', projects: ['acme-prod'], jwksUrl: 'http://127.0.0.1:1/unused' } },
    ],
    rules: [
      { labels: { 'aws.accountId': '123456789012' }, repository: 'nodes/**', actions: ['pull'] },
      { labels: { 'gcp.project': 'acme-prod' }, repository: 'nodes/**', actions: ['pull'] },
    ],
    upstreams: [{ name: 'local', url: reg.url, credentials: { type: 'static', username: 'up', password: 'up-pw' } }],
  });
  d = await startDockerd();
});
afterAll(async () => {
  await d?.stop();
  await proxy?.close();
  await reg?.stop();
  for (const c of closers) await c();
});

describe('instance identity logins through the proxy', () => {
  it('docker login with an AWS instance identity from IMDSv2, then pull', async () => {
    const imds = await startImds(awsDocument({ instanceId: 'i-0123456789abcdef0' }), signer);
    closers.push(imds.close);
    const creds = (await new AwsIidProvider({ imdsUrl: imds.url }).credentials()) as { username: string; password: string };
    const login = await d.docker(['login', proxy.host, '-u', creds.username, '--password-stdin'], `${creds.password}\n`);
    expect([login.code, login.stdout]).toEqual([0, expect.stringContaining('Login Succeeded')]);
    const pull = await d.docker(['pull', `${proxy.host}/nodes/pause:v1`]);
    expect([pull.code, pull.stderr]).toEqual([0, '']);
    const audit = proxy.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['audit'] === 'token' && l['method'] === 'iid:aws');
    expect(audit).toMatchObject({ subject: 'aws/123456789012/i-0123456789abcdef0', outcome: 'issued' });
  });

  it('refuses a document from an account the configuration does not allow', async () => {
    const imds = await startImds(awsDocument({ accountId: '999999999999' }), signer);
    closers.push(imds.close);
    const creds = (await new AwsIidProvider({ imdsUrl: imds.url }).credentials()) as { username: string; password: string };
    const login = await d.docker(['login', proxy.host, '-u', creds.username, '--password-stdin'], `${creds.password}\n`);
    expect(login.code).not.toBe(0);
  });
});

describe('GCP instance identity through the proxy', () => {
  it('docker login with a GCP identity token, then pull', async () => {
    const md = await startGcpMetadata({ project_id: 'acme-prod', zone: 'europe-west1-b', instance_id: '42', instance_name: 'node-1' });
    closers.push(md.close);
    // This proxy verifies against the stand-in's keys.
    const gcpProxy = await startTestProxy({
      auth: [{ type: 'iid', gcp: { audience: 'registry-proxy-test', projects: ['acme-prod'], jwksUrl: md.jwksUrl } }],
      rules: [{ labels: { 'gcp.project': 'acme-prod' }, repository: 'nodes/**', actions: ['pull'] }],
      upstreams: [{ name: 'local', url: reg.url, credentials: { type: 'static', username: 'up', password: 'up-pw' } }],
    });
    closers.push(() => gcpProxy.close());
    const creds = (await new GcpIidProvider({ audience: 'registry-proxy-test', metadataUrl: md.url }).credentials()) as { username: string; password: string };
    const login = await d.docker(['login', gcpProxy.host, '-u', creds.username, '--password-stdin'], `${creds.password}\n`);
    expect([login.code, login.stdout]).toEqual([0, expect.stringContaining('Login Succeeded')]);
    expect((await d.docker(['pull', `${gcpProxy.host}/nodes/pause:v1`])).code).toBe(0);
  });
});
