import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';

/**
 * Host trees as each provider lays kubelet out, written here from the providers' own sources:
 * - EKS AL2023: amazon-eks-ami templates/al2023/runtime/rootfs/etc/systemd/system/kubelet.service
 *   (`ExecStart=/usr/bin/kubelet $NODEADM_KUBELET_ARGS`), nodeadm/internal/kubelet/environment.go
 *   (`NODEADM_KUBELET_ARGS=--flag=value ...`, unquoted, rewritten on every boot, flag order from
 *   a Go map), config.go (config.json indented with 4 spaces), image-credential-provider.go
 *   (/etc/eks/image-credential-provider/config.json and bin dir), containerd/config.template.toml
 *   (`config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"`).
 * - EKS AL2: the last AL2 templates (templates/al2/runtime/kubelet-containerd.service,
 *   kubelet-config.json, containerd-config.toml, bootstrap.sh's 10-kubelet-args.conf drop-in).
 * - GKE/COS: kubernetes cluster/gce/gci/configure-helper.sh (KUBELET_OPTS in /etc/default/kubelet,
 *   the kubelet.service it writes, `--image-credential-provider-config` /home/kubernetes/cri-auth-config.yaml
 *   and bin dir /home/kubernetes/bin, containerd's `registry.mirrors."docker.io"` with mirror.gcr.io).
 * - kubeadm: kubeadm's 10-kubeadm.conf drop-in, kubeadm-flags.env, and config.yaml as kubeadm
 *   marshals it (lists not indented: `clusterDNS:\n- 10.96.0.10`).
 */
export type LayoutName = 'gke' | 'eks-al2' | 'eks-al2023' | 'kubeadm';

const CONTAINERD = `version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
`;
// amazon-eks-ami nodeadm/internal/containerd/config.template.toml (excerpt)
const CONTAINERD_EKS = `version = 2
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
address = "/run/containerd/containerd.sock"

[plugins."io.containerd.grpc.v1.cri".registry]
config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"
`;
// kubernetes cluster/gce/gci/configure-helper.sh setup-containerd (excerpt)
export const CONTAINERD_GKE = `version = 2
required_plugins = ["io.containerd.grpc.v1.cri"]
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
  endpoint = ["https://mirror.gcr.io","https://registry-1.docker.io"]
`;
// The shape of GKE's /home/kubernetes/cri-auth-config.yaml for auth-provider-gcp.
const GKE_AUTH = `kind: CredentialProviderConfig
apiVersion: kubelet.config.k8s.io/v1
providers:
- name: auth-provider-gcp
  apiVersion: credentialprovider.kubelet.k8s.io/v1
  matchImages:
  - "gcr.io"
  - "*.gcr.io"
  - "*.pkg.dev"
  args:
  - get-credentials
  defaultCacheDuration: 1m
`;
// kubeadm's config.yaml (Go yaml marshalling: sequences not indented).
const KUBEADM_CONFIG = `apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
kind: KubeletConfiguration
`;
// nodeadm's config.json: json.MarshalIndent with 4 spaces, no final newline.
const NODEADM_CONFIG = `{
    "kind": "KubeletConfiguration",
    "apiVersion": "kubelet.config.k8s.io/v1beta1",
    "address": "0.0.0.0",
    "authentication": {
        "anonymous": {
            "enabled": false
        }
    },
    "clusterDNS": [
        "172.20.0.10"
    ],
    "clusterDomain": "cluster.local",
    "cgroupDriver": "systemd"
}`;
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
    '/var/lib/kubelet/config.yaml': KUBEADM_CONFIG,
    '/usr/lib/systemd/system/kubelet.service': '[Unit]\nDescription=kubelet\n[Service]\nExecStart=/usr/bin/kubelet\nRestart=always\n',
    '/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf':
      '[Service]\nEnvironment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"\nEnvironment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"\nEnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\nExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n',
    '/etc/containerd/config.toml': CONTAINERD,
  },
  gke: {
    '/etc/default/kubelet':
      'KUBELET_OPTS="--v=2 --cloud-provider=external --experimental-mounter-path=/home/kubernetes/containerized_mounter/mounter --cert-dir=/var/lib/kubelet/pki/  --image-credential-provider-config=/home/kubernetes/cri-auth-config.yaml  --image-credential-provider-bin-dir=/home/kubernetes/bin --kubeconfig=/var/lib/kubelet/kubeconfig --max-pods=110 --container-runtime-endpoint=unix:///run/containerd/containerd.sock --config /home/kubernetes/kubelet-config.yaml"\n',
    '/home/kubernetes/cri-auth-config.yaml': GKE_AUTH,
    '/home/kubernetes/bin/auth-provider-gcp': '#!/bin/sh\n',
    '/home/kubernetes/kubelet-config.yaml': YAML_CONFIG,
    '/etc/systemd/system/kubelet.service':
      '[Unit]\nDescription=Kubernetes kubelet\nRequires=network-online.target\nAfter=network-online.target\n\n[Service]\nRestart=always\nRestartSec=10\nEnvironmentFile=/etc/default/kubelet\nExecStart=/home/kubernetes/bin/kubelet $KUBELET_OPTS\n\n[Install]\nWantedBy=multi-user.target\n',
    '/etc/containerd/config.toml': CONTAINERD_GKE,
  },
  'eks-al2': {
    '/etc/eks/bootstrap.sh': '#!/usr/bin/env bash\n# the EKS AL2 AMI bootstrap script\n',
    '/etc/kubernetes/kubelet/kubelet-config.json': JSON_CONFIG,
    '/etc/systemd/system/kubelet.service':
      '[Unit]\nDescription=Kubernetes Kubelet\nAfter=containerd.service sandbox-image.service\nRequires=containerd.service sandbox-image.service\n\n[Service]\nExecStartPre=/sbin/iptables -P FORWARD ACCEPT -w 5\nExecStart=/usr/bin/kubelet \\\n    --config /etc/kubernetes/kubelet/kubelet-config.json \\\n    --kubeconfig /var/lib/kubelet/kubeconfig \\\n    --image-credential-provider-config /etc/eks/image-credential-provider/config.json \\\n    --image-credential-provider-bin-dir /etc/eks/image-credential-provider \\\n    $KUBELET_ARGS \\\n    $KUBELET_EXTRA_ARGS\n\nRestart=on-failure\n',
    '/etc/systemd/system/kubelet.service.d/10-kubelet-args.conf':
      "[Service]\nEnvironment='KUBELET_ARGS=--node-ip=10.0.1.23 --pod-infra-container-image=602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/pause:3.5 --v=2'\n",
    '/etc/eks/image-credential-provider/config.json':
      '{\n  "apiVersion": "kubelet.config.k8s.io/v1",\n  "kind": "CredentialProviderConfig",\n  "providers": [\n    {\n      "name": "ecr-credential-provider",\n      "matchImages": ["*.dkr.ecr.*.amazonaws.com"],\n      "defaultCacheDuration": "12h",\n      "apiVersion": "credentialprovider.kubelet.k8s.io/v1"\n    }\n  ]\n}\n',
    '/etc/containerd/config.toml': CONTAINERD_EKS,
  },
  'eks-al2023': {
    '/etc/eks/kubelet/environment':
      'NODEADM_KUBELET_ARGS=--node-ip=10.0.1.23 --config=/etc/kubernetes/kubelet/config.json --kubeconfig=/var/lib/kubelet/kubeconfig --image-credential-provider-bin-dir=/etc/eks/image-credential-provider --image-credential-provider-config=/etc/eks/image-credential-provider/config.json --hostname-override=ip-10-0-1-23.eu-west-1.compute.internal --cloud-provider=external --runtime-cgroups=/runtime.slice/containerd.service',
    '/etc/kubernetes/kubelet/config.json': NODEADM_CONFIG,
    '/etc/systemd/system/kubelet.service':
      '[Unit]\nDescription=Kubernetes Kubelet\nDocumentation=https://github.com/kubernetes/kubernetes\nAfter=containerd.service\nWants=containerd.service\n\n[Service]\nSlice=runtime.slice\nEnvironmentFile=/etc/eks/kubelet/environment\nExecStart=/usr/bin/kubelet $NODEADM_KUBELET_ARGS\n\nRestart=on-failure\nRestartSec=5\nKillMode=process\n\n[Install]\nWantedBy=multi-user.target\n',
    '/etc/eks/image-credential-provider/config.json':
      '{\n    "kind": "CredentialProviderConfig",\n    "apiVersion": "kubelet.config.k8s.io/v1",\n    "providers": [\n        {\n            "name": "ecr-credential-provider",\n            "matchImages": [\n                "*.dkr.ecr.*.amazonaws.com"\n            ],\n            "defaultCacheDuration": "12h",\n            "apiVersion": "credentialprovider.kubelet.k8s.io/v1"\n        }\n    ]\n}',
    '/etc/eks/image-credential-provider/ecr-credential-provider': '#!/bin/sh\n',
    '/etc/containerd/config.toml': CONTAINERD_EKS,
  },
};

export function hostTree(layout: LayoutName, extra: Record<string, string> = {}): string {
  const root = mkdtempSync(join(tmpdir(), `rp-host-${layout}-`));
  // Every host has these.
  for (const d of ['etc', 'var/lib', 'run']) mkdirSync(join(root, d), { recursive: true });
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
      // Folders count too: revert must leave `diff -r` against the original tree empty.
      if (st.isDirectory()) {
        out[`/${relative(root, p)}/`] = 'dir';
        walk(p);
      } else if (st.isFile()) out[`/${relative(root, p)}`] = `${(st.mode & 0o7777).toString(8)} ${readFileSync(p).toString('base64')}`;
    }
  };
  walk(root);
  return out;
}
