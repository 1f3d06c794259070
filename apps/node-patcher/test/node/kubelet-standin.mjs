// A small, honest kubelet stand-in for the real-node test (no kubelet can run here: it needs a
// container runtime, cgroups and an API server). It starts the way kubelet does, as far as the
// patcher is concerned:
// - flags `--name=value` or `--name value` (pflag), `--config` a KubeletConfiguration file
//   (YAML or JSON), whose `imageServiceEndpoint` and `healthzPort` it uses; the
//   `--image-service-endpoint` flag overrides the config (kubelet < 1.27 had only the flag);
// - with an image service endpoint, it dials the unix socket and must get an HTTP/2 SETTINGS
//   frame back (kubelet's gRPC client validates the connection at start and exits otherwise:
//   "failed to run Kubelet: validate service connection");
// - with `--image-credential-provider-config`, each provider's executable must exist in
//   `--image-credential-provider-bin-dir` (kubelet refuses to start otherwise), and it is run
//   once with a CredentialProviderRequest on stdin, whose answer must be a CredentialProviderResponse;
// - the images of "its pods" (one a line in /etc/kubelet-standin/pod-images, the stand-in for pod
//   specs from the API server): for each, the providers whose matchImages match the image's
//   registry are run with a CredentialProviderRequest for that image, and the image is pulled
//   (manifest, config and layers, over HTTP from a loopback registry) with the credentials of the
//   longest matching `auth` key, as kubelet hands them to the runtime;
// - then it serves /healthz on 127.0.0.1:healthzPort and reports what it uses on /standin.
import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import yaml from 'yaml';

const parseYaml = yaml.parse;

const fail = (msg) => {
  process.stderr.write(`E kubelet stand-in: ${msg}\n`);
  process.exit(1);
};

const flags = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const m = /^--?([^=]+)(?:=(.*))?$/.exec(argv[i]);
  if (!m) continue;
  if (m[2] !== undefined) flags[m[1]] = m[2];
  else if (argv[i + 1] !== undefined && !argv[i + 1].startsWith('-')) flags[m[1]] = argv[++i];
  else flags[m[1]] = 'true';
}

const readConfig = (path) => {
  const text = readFileSync(path, 'utf8');
  return path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
};

let config = {};
if (flags.config) {
  try {
    config = readConfig(flags.config);
  } catch (err) {
    fail(`failed to load kubelet config file ${flags.config}: ${err.message}`);
  }
  if (config?.kind !== 'KubeletConfiguration') fail(`${flags.config}: not a KubeletConfiguration`);
}
const imageEndpoint = flags['image-service-endpoint'] ?? config.imageServiceEndpoint ?? '';
const healthzPort = Number(config.healthzPort ?? 10248);

/** The first frame a gRPC (HTTP/2) server sends after the client preface is SETTINGS (type 4). */
function dialHttp2(socket) {
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    const t = setTimeout(() => (s.destroy(), reject(new Error('no answer'))), 3000);
    s.once('error', (e) => (clearTimeout(t), reject(e)));
    s.once('connect', () => s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])])));
    s.once('data', (d) => {
      clearTimeout(t);
      s.destroy();
      if (d.length >= 9 && d[3] === 4) resolve();
      else reject(new Error(`not HTTP/2: ${d.subarray(0, 9).toString('hex')}`));
    });
  });
}

if (imageEndpoint) {
  const path = imageEndpoint.replace(/^unix:\/\//, '');
  try {
    await dialHttp2(path);
  } catch (err) {
    fail(`failed to run Kubelet: validate service connection: image service ${imageEndpoint}: ${err.message}`);
  }
}

const providers = [];
if (flags['image-credential-provider-config']) {
  const binDir = flags['image-credential-provider-bin-dir'];
  if (!binDir) fail('--image-credential-provider-bin-dir is required with --image-credential-provider-config');
  let cfg;
  try {
    cfg = readConfig(flags['image-credential-provider-config']);
  } catch (err) {
    fail(`failed to register credential providers: ${err.message}`);
  }
  for (const p of cfg.providers ?? []) {
    const exe = join(binDir, p.name);
    try {
      accessSync(exe, constants.X_OK);
    } catch {
      fail(`failed to register credential providers: plugin binary executable ${exe} did not exist`);
    }
    const req = JSON.stringify({ kind: 'CredentialProviderRequest', apiVersion: p.apiVersion, image: 'registry.example.com/app:1' });
    let res;
    try {
      res = JSON.parse(execFileSync(exe, p.args ?? [], { input: req, timeout: 5000 }).toString());
    } catch (err) {
      res = { error: String(err.message).split('\n')[0] };
    }
    providers.push({ name: p.name, response: res.kind ?? res.error });
  }
}

/** kubelet's matchImages: the registry host (and port) matched label by label, `*` for one label. */
const hostMatches = (pattern, host) => {
  const [p, pPort] = pattern.split('/')[0].split(':');
  const [h, hPort] = host.split(':');
  const pl = p.split('.');
  const hl = h.split('.');
  return pPort === hPort && pl.length === hl.length && pl.every((l, i) => l === '*' || l === hl[i]);
};

const providerConfig = flags['image-credential-provider-config'] ? readConfig(flags['image-credential-provider-config']) : { providers: [] };
const runProvider = (p, image) => {
  const req = JSON.stringify({ kind: 'CredentialProviderRequest', apiVersion: p.apiVersion, image });
  try {
    return JSON.parse(execFileSync(join(flags['image-credential-provider-bin-dir'], p.name), p.args ?? [], { input: req, timeout: 10_000 }).toString());
  } catch (err) {
    return { error: String(err.message).split('\n')[0] };
  }
};

/** Pulls one image as the runtime would with the credentials kubelet passes it: manifest, then every blob. */
async function pull(image) {
  const m = /^([^/]+)\/(.+):([^:/]+)$/.exec(image);
  if (!m) return { image, error: 'not HOST/REPO:TAG' };
  const [, host, repo, tag] = m;
  let by = '';
  let auth;
  for (const p of providerConfig.providers ?? []) {
    if (!(p.matchImages ?? []).some((pattern) => hostMatches(pattern, host))) continue;
    const res = runProvider(p, image);
    const keys = Object.keys(res.auth ?? {}).filter((k) => hostMatches(k, host));
    if (keys.length === 0) continue;
    by = p.name;
    auth = res.auth[keys.sort((a, b) => b.length - a.length)[0]];
  }
  const headers = auth ? { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` } : {};
  const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';
  const manifest = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, { headers: { ...headers, accept }, signal: AbortSignal.timeout(10_000) });
  if (manifest.status !== 200) return { image, by, manifest: manifest.status };
  const body = await manifest.json();
  const blobs = [];
  for (const d of [body.config, ...(body.layers ?? [])]) blobs.push((await fetch(`http://${host}/v2/${repo}/blobs/${d.digest}`, { headers, signal: AbortSignal.timeout(10_000) })).status);
  return { image, by, manifest: 200, blobs };
}

const pulls = [];
for (const image of existsSync('/etc/kubelet-standin/pod-images') ? readFileSync('/etc/kubelet-standin/pod-images', 'utf8').split('\n').filter(Boolean) : []) {
  pulls.push(await pull(image).catch((err) => ({ image, error: err.message })));
}

const report = { pid: process.pid, imageServiceEndpoint: imageEndpoint, providers, pulls, flags };
createServer((req, res) => {
  if (req.url === '/healthz') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  if (req.url === '/standin') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(report));
  res.writeHead(404).end();
}).listen(healthzPort, '127.0.0.1', () => process.stderr.write(`I kubelet stand-in serving healthz on ${healthzPort}, image service ${imageEndpoint || '(runtime)'}\n`));
