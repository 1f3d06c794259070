/**
 * kubelet laid out in the node as kubeadm, EKS AL2 and GKE (COS) lay it out: the trees of
 * fixtures.ts (written from kubeadm's 10-kubeadm.conf, amazon-eks-ami templates/al2 and
 * kubernetes' cluster/gce scripts, cited there), booted as they are, with the kubelet stand-in
 * where each unit runs kubelet from and its healthz port set in each config file. Stand-ins for
 * what the units need and this root lacks: AL2's unit Requires containerd.service and
 * sandbox-image.service and runs /sbin/iptables before kubelet; here those are oneshot units and
 * a script that succeed, saying what they stand in for. The providers' own credential plugins
 * (ECR's, GKE's auth-provider-gcp) are executables that answer an empty CredentialProviderResponse:
 * kubelet (and the stand-in) refuses to start when a configured plugin is not executable.
 */
import { cpSync } from 'node:fs';
import { hostTree, type LayoutName } from '../fixtures.js';
import type { TestNode } from './harness.js';

interface Place {
  /** Where the unit runs kubelet from. */
  readonly kubelet: string;
  /** kubelet's --config file. */
  readonly config: string;
  /** The unit file, as the provider installs it. */
  readonly unit: string;
}

export const PLACES: Record<Exclude<LayoutName, 'eks-al2023'>, Place> = {
  kubeadm: { kubelet: '/usr/bin/kubelet', config: '/var/lib/kubelet/config.yaml', unit: '/usr/lib/systemd/system/kubelet.service' },
  gke: { kubelet: '/home/kubernetes/bin/kubelet', config: '/home/kubernetes/kubelet-config.yaml', unit: '/etc/systemd/system/kubelet.service' },
  'eks-al2': { kubelet: '/usr/bin/kubelet', config: '/etc/kubernetes/kubelet/kubelet-config.json', unit: '/etc/systemd/system/kubelet.service' },
};

const EMPTY_PROVIDER = `#!/bin/sh\necho '{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1","cacheKeyType":"Registry","auth":{}}'\n`;
const PLUGINS: Partial<Record<LayoutName, string>> = {
  'eks-al2': '/etc/eks/image-credential-provider/ecr-credential-provider',
  gke: '/home/kubernetes/bin/auth-provider-gcp',
};

const oneshot = (what: string) => `[Unit]\nDescription=stand-in: ${what}\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n`;

export function layOutProvider(t: TestNode, layout: LayoutName): void {
  if (layout === 'eks-al2023') throw new Error('AL2023 is laid out by TestNode itself (nodeadm stand-in)');
  const place = PLACES[layout];
  cpSync(hostTree(layout), t.root, { recursive: true, force: true });
  t.installKubelet(place.kubelet);
  const plugin = PLUGINS[layout];
  if (plugin) t.write(plugin, EMPTY_PROVIDER, 0o755);
  const config = t.file(place.config);
  // healthzPort: YAML at the end (a key of the top-level map), JSON as its first key.
  t.write(place.config, place.config.endsWith('.json') ? config.replace(/^\{\n/, `{\n  "healthzPort": ${t.port},\n`) : `${config}healthzPort: ${t.port}\n`);
  if (layout === 'eks-al2') {
    t.write('/etc/systemd/system/containerd.service', oneshot('containerd (no runtime runs here)'));
    t.write('/etc/systemd/system/sandbox-image.service', oneshot("AL2's sandbox-image.service (pulls the pause image)"));
    t.write('/sbin/iptables', '#!/bin/sh\n# stand-in: AL2 runs `iptables -P FORWARD ACCEPT` before kubelet\nexit 0\n', 0o755);
  }
  t.enable('kubelet.service', place.unit);
}
