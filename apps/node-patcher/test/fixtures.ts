import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';

/**
 * Host trees as each provider lays kubelet out (files written here by hand from the providers'
 * documentation and AMIs: GKE's /etc/default/kubelet and /home/kubernetes/kubelet-config.yaml,
 * the EKS AL2 AMI's kubelet-config.json and systemd drop-ins, EKS AL2023 nodeadm's config.json
 * and /etc/eks/kubelet/environment, kubeadm's kubeadm-flags.env and config.yaml).
 */
export type LayoutName = 'gke' | 'eks-al2' | 'eks-al2023' | 'kubeadm';

const CONTAINERD = `version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
`;
const YAML_CONFIG = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroups as the node's systemd runs them
cgroupDriver: systemd
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
clusterDNS:
  - 10.96.0.10
clusterDomain: cluster.local
`;
const JSON_CONFIG = `{
  "kind": "KubeletConfiguration",
  "apiVersion": "kubelet.config.k8s.io/v1beta1",
  "address": "0.0.0.0",
  "authentication": {
    "anonymous": {
      "enabled": false
    }
  },
  "clusterDomain": "cluster.local",
  "cgroupDriver": "systemd"
}
`;

const TREES: Record<LayoutName, Record<string, string>> = {
  kubeadm: {
    '/var/lib/kubelet/kubeadm-flags.env': 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9"\n',
    '/var/lib/kubelet/config.yaml': YAML_CONFIG,
    '/usr/lib/systemd/system/kubelet.service': '[Unit]\nDescription=kubelet\n[Service]\nExecStart=/usr/bin/kubelet\nRestart=always\n',
    '/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf':
      '[Service]\nEnvironment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"\nEnvironment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"\nEnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\nExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n',
    '/etc/containerd/config.toml': CONTAINERD,
  },
  gke: {
    '/etc/default/kubelet':
      'KUBELET_OPTS="--v=2 --cloud-provider=external --experimental-mounter-path=/home/kubernetes/containerized_mounter/mounter --cert-dir=/var/lib/kubelet/pki/ --kubeconfig=/var/lib/kubelet/kubeconfig --max-pods=110 --volume-plugin-dir=/home/kubernetes/flexvolume --node-status-max-images=25 --container-runtime-endpoint=unix:///run/containerd/containerd.sock --runtime-cgroups=/system.slice/containerd.service --registry-qps=10 --registry-burst=20 --config /home/kubernetes/kubelet-config.yaml"\n',
    '/home/kubernetes/kubelet-config.yaml': YAML_CONFIG,
    '/etc/systemd/system/kubelet.service':
      '[Unit]\nDescription=Kubernetes kubelet\nRequires=network-online.target\nAfter=network-online.target\n\n[Service]\nRestart=always\nRestartSec=10\nEnvironmentFile=/etc/default/kubelet\nExecStartPre=/bin/mkdir -p /var/lib/kubelet\nExecStart=/home/kubernetes/bin/kubelet $KUBELET_OPTS\n\n[Install]\nWantedBy=multi-user.target\n',
    '/etc/containerd/config.toml': CONTAINERD,
  },
  'eks-al2': {
    '/etc/eks/bootstrap.sh': '#!/usr/bin/env bash\n# the EKS AL2 AMI bootstrap script\n',
    '/etc/kubernetes/kubelet/kubelet-config.json': JSON_CONFIG,
    '/etc/systemd/system/kubelet.service':
      '[Unit]\nDescription=Kubernetes Kubelet\nAfter=containerd.service sandbox-image.service\nRequires=containerd.service sandbox-image.service\n\n[Service]\nExecStartPre=/sbin/iptables -P FORWARD ACCEPT -w 5\nExecStart=/usr/bin/kubelet \\\n    --config /etc/kubernetes/kubelet/kubelet-config.json \\\n    --kubeconfig /var/lib/kubelet/kubeconfig \\\n    --image-credential-provider-config /etc/eks/image-credential-provider/config.json \\\n    --image-credential-provider-bin-dir /etc/eks/image-credential-provider \\\n    $KUBELET_ARGS \\\n    $KUBELET_EXTRA_ARGS\n\nRestart=on-failure\n',
    '/etc/systemd/system/kubelet.service.d/10-kubelet-args.conf': "[Service]\nEnvironment='KUBELET_ARGS=--node-ip=10.0.1.23 --pod-infra-container-image=602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/pause:3.5 --v=2'\n",
    '/etc/eks/image-credential-provider/config.json':
      '{\n  "apiVersion": "kubelet.config.k8s.io/v1",\n  "kind": "CredentialProviderConfig",\n  "providers": [\n    {\n      "name": "ecr-credential-provider",\n      "matchImages": ["*.dkr.ecr.*.amazonaws.com"],\n      "defaultCacheDuration": "12h",\n      "apiVersion": "credentialprovider.kubelet.k8s.io/v1"\n    }\n  ]\n}\n',
    '/etc/containerd/config.toml': CONTAINERD,
  },
  'eks-al2023': {
    '/etc/eks/kubelet/environment': 'NODEADM_KUBELET_ARGS="--node-ip=10.0.1.23 --node-labels=eks.amazonaws.com/nodegroup=ng-1 --hostname-override=ip-10-0-1-23.eu-west-1.compute.internal"\n',
    '/etc/kubernetes/kubelet/config.json': JSON_CONFIG,
    '/etc/systemd/system/kubelet.service':
      '[Unit]\nDescription=Kubernetes Kubelet\n\n[Service]\nEnvironmentFile=/etc/eks/kubelet/environment\nExecStart=/usr/bin/kubelet \\\n    --config /etc/kubernetes/kubelet/config.json \\\n    --kubeconfig /var/lib/kubelet/kubeconfig \\\n    --container-runtime-endpoint unix:///run/containerd/containerd.sock \\\n    $NODEADM_KUBELET_ARGS\n',
    '/etc/containerd/config.toml': CONTAINERD,
  },
};

export function hostTree(layout: LayoutName, extra: Record<string, string> = {}): string {
  const root = mkdtempSync(join(tmpdir(), `rp-host-${layout}-`));
  for (const [path, text] of Object.entries({ ...TREES[layout], ...extra })) {
    mkdirSync(join(root, dirname(path)), { recursive: true });
    writeFileSync(join(root, path), text);
    if (path.endsWith('.sh')) chmodSync(join(root, path), 0o755);
  }
  return root;
}

/** Every file under root with its bytes and mode, for byte-for-byte comparisons. */
export function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out[`/${relative(root, p)}`] = `${(st.mode & 0o7777).toString(8)} ${readFileSync(p).toString('base64')}`;
    }
  };
  walk(root);
  return out;
}
