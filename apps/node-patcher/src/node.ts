import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';

export const ANNOTATION = 'registry-proxy.io/node-patcher';

/** JSON pointer escaping for a map key (RFC 6901). */
const pointer = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');

/** A client for this node's own object: in-cluster (service account) by default. */
export function nodeApi(kc?: KubeConfig): CoreV1Api {
  const config = kc ?? new KubeConfig();
  if (!kc) config.loadFromCluster();
  return config.makeApiClient(CoreV1Api);
}

/** The kubelet version the API server reports for the node (`v1.30.4`). */
export async function kubeletVersion(api: CoreV1Api, name: string): Promise<string | undefined> {
  const node = await api.readNode({ name });
  return node.status?.nodeInfo?.kubeletVersion;
}

/**
 * Records what the patcher did on the Node as an annotation (a JSON patch: add, or remove on
 * revert), so an operator can list patched nodes: `kubectl get nodes -o json | jq ...`.
 */
export async function annotate(api: CoreV1Api, name: string, value: Record<string, unknown> | undefined): Promise<void> {
  const node = await api.readNode({ name });
  const annotations = node.metadata?.annotations;
  const ops: Array<Record<string, unknown>> = [];
  const path = `/metadata/annotations/${pointer(ANNOTATION)}`;
  if (value === undefined) {
    if (!annotations || !(ANNOTATION in annotations)) return;
    ops.push({ op: 'remove', path });
  } else {
    if (!annotations) ops.push({ op: 'add', path: '/metadata/annotations', value: {} });
    ops.push({ op: 'add', path, value: JSON.stringify(value) });
  }
  await api.patchNode({ name, body: ops }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch));
}
