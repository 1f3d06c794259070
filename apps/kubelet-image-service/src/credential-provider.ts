#!/usr/bin/env node
// A kubelet credential provider plugin (KEP-2133): reads a CredentialProviderRequest on stdin,
// prints a CredentialProviderResponse with credentials from the same rules as the image
// service. Usage in kubelet's --image-credential-provider-config:
//   providers: [{name: registry-proxy-credential-provider, matchImages: ["registry.example.com"],
//               defaultCacheDuration: "5m", apiVersion: credentialprovider.kubelet.k8s.io/v1,
//               args: ["--config", "/etc/registry-proxy/image-service.yaml"]}]
// With per-pod identity (KEP-4412, kubelet 1.33+; see the README) the provider entry adds
//   tokenAttributes: {serviceAccountTokenAudience: registry-proxy, requireServiceAccount: false}
// and the rule `serviceAccountToken: {username: kubernetes}`: the answer is then the pod's token.
import { loadConfig } from './config.js';
import { answer } from './provider-response.js';

async function main(): Promise<number> {
  const i = process.argv.indexOf('--config');
  const file = i > 0 ? process.argv[i + 1] : process.env['REGISTRY_PROXY_IMAGE_SERVICE_CONFIG'];
  if (!file) {
    process.stderr.write('usage: registry-proxy-credential-provider --config FILE < CredentialProviderRequest\n');
    return 2;
  }
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  try {
    const out = await answer(loadConfig(file), Buffer.concat(chunks).toString('utf8'));
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return 0;
  } catch (err) {
    // kubelet logs stderr; never a secret here.
    process.stderr.write(`${(err as Error).message}\n`);
    return 1;
  }
}

main().then((code) => process.exit(code));
