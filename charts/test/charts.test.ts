/**
 * helm cannot run here, so the charts are checked the next best way: values (defaults and the
 * examples) against each chart's values.schema.json (ajv), the templates rendered by
 * tools/helm-lite.mjs (the small Go-template subset the charts use), and every rendered object
 * validated offline against the Kubernetes OpenAPI schemas (kubernetes-models).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import { parse } from 'yaml';
import { renderChart } from '../../tools/helm-lite.mjs';
import { HOST_MOUNTS, PLACES, STATE_DIR } from '../../apps/node-patcher/src/layouts.js';

const charts = join(__dirname, '..');

type Obj = { apiVersion: string; kind: string; metadata: { name: string }; [k: string]: unknown };

/** Validates objects with tools/validate-k8s.mjs (kubernetes-models is ESM-only: a native module). */
function validate(objs: Obj[]): string[] {
  const r = spawnSync(process.execPath, [join(__dirname, '../../tools/validate-k8s.mjs')], { input: JSON.stringify(objs), encoding: 'utf8' });
  return r.stdout.trim().split('\n');
}

function schemaCheck(chart: string, values: unknown): string[] {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const ok = ajv.validate(JSON.parse(readFileSync(join(charts, chart, 'values.schema.json'), 'utf8')), values);
  return ok ? [] : (ajv.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}

const load = (chart: string, file: string) => parse(readFileSync(join(charts, chart, file), 'utf8')) as Record<string, unknown>;
const merged = (chart: string, file?: string) => {
  const base = load(chart, 'values.yaml');
  return file ? { ...base, ...load(chart, file) } : base;
};

describe.each(['registry-proxy', 'kubelet-image-service'])('chart %s', (chart) => {
  it.each([
    ['defaults', undefined],
    ['the example', 'values-example.yaml'],
  ])('%s: values match the schema, and every object is valid Kubernetes', (_n, file) => {
    const values = merged(chart, file);
    expect(schemaCheck(chart, values)).toEqual([]);
    const docs = renderChart(join(charts, chart), file ? load(chart, file) : {}, { Name: 'rp', Namespace: 'registry' });
    expect(docs.length).toBeGreaterThan(3);
    // ServiceMonitor is a CRD that kubernetes-models does not carry.
    const objs = docs.map((d) => d.obj as Obj).filter((o) => o.apiVersion !== 'monitoring.coreos.com/v1');
    const lines = validate(objs);
    expect(lines).toEqual(objs.map((o) => `ok ${o.kind}/${o.metadata.name}`));
  });

  it('refuses bad values with the schema', () => {
    expect(schemaCheck(chart, { ...merged(chart), unknownKey: 1 })).toEqual([' must NOT have additional properties']);
  });
});

describe('the offline validator', () => {
  it('reports an invalid object, so the checks above can fail', () => {
    expect(validate([{ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'broken' }, spec: { replicas: 'two' } } as unknown as Obj])[0]).toMatch(/^invalid Deployment\/broken: /);
  });
});

describe('registry-proxy objects', () => {
  const docs = renderChart(join(charts, 'registry-proxy'), {}, { Name: 'rp', Namespace: 'registry' }).map((d) => d.obj as Obj);
  const find = (kind: string) => docs.find((d) => d.kind === kind) as Obj & Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  it('runs non-root, read-only, with probes on /healthz and /readyz, spread over zones', () => {
    const dep = find('Deployment');
    const pod = dep['spec'].template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true });
    expect(pod.containers[0].securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(pod.containers[0].readinessProbe.httpGet.path).toBe('/readyz');
    expect(pod.containers[0].livenessProbe.httpGet.path).toBe('/healthz');
    expect(pod.topologySpreadConstraints.map((t: { topologyKey: string }) => t.topologyKey)).toEqual(['topology.kubernetes.io/zone', 'kubernetes.io/hostname']);
    expect(dep['spec'].replicas).toBeUndefined(); // the HPA decides
    expect(find('HorizontalPodAutoscaler')).toBeDefined();
    expect(find('PodDisruptionBudget')['spec'].minAvailable).toBe(1);
    // The configuration the proxy reads is the `config` value, as YAML.
    expect(parse(find('ConfigMap')['data']['config.yaml'])).toMatchObject({ upstreams: [{ name: 'hub' }] });
  });
  type Pod = { volumes: Array<Record<string, any>>; containers: Array<{ volumeMounts: Array<{ name: string; mountPath: string }> }> }; // eslint-disable-line @typescript-eslint/no-explicit-any
  const render = (values: Record<string, unknown>) => renderChart(join(charts, 'registry-proxy'), values, { Name: 'rp', Namespace: 'registry' }).map((d) => d.obj as Obj & Record<string, any>); // eslint-disable-line @typescript-eslint/no-explicit-any
  const podOf = (objs: Array<Obj & Record<string, any>>) => objs.find((d) => d.kind === 'Deployment')?.['spec'].template.spec as Pod; // eslint-disable-line @typescript-eslint/no-explicit-any

  it('without redis or a cache volume: no state in the configuration, no extra volumes', () => {
    const objs = render({});
    expect(parse(objs.find((d) => d.kind === 'ConfigMap')?.['data']['config.yaml'])).not.toHaveProperty('state');
    expect(podOf(objs).volumes.map((v) => v.name)).toEqual(['config', 'secrets', 'tmp']);
    expect(objs.some((d) => d.kind === 'PersistentVolumeClaim')).toBe(false);
  });

  it('takes the Redis URL from a key of an existing Secret, mounted as a file that state.redis.url names', () => {
    const values = { redis: { existingSecret: 'redis-creds', urlKey: 'redis-url', keyPrefix: 'rp-prod:', commandTimeoutMs: 300 } };
    expect(schemaCheck('registry-proxy', { ...merged('registry-proxy'), ...values })).toEqual([]);
    const objs = render(values);
    const pod = podOf(objs);
    expect(pod.volumes.find((v) => v.name === 'redis')).toEqual({ name: 'redis', secret: { secretName: 'redis-creds', items: [{ key: 'redis-url', path: 'url' }] } });
    expect(pod.containers[0]?.volumeMounts).toContainEqual({ name: 'redis', mountPath: '/etc/registry-proxy/redis', readOnly: true });
    const config = parse(objs.find((d) => d.kind === 'ConfigMap')?.['data']['config.yaml']);
    expect(config.state).toEqual({ redis: { url: { file: '/etc/registry-proxy/redis/url' }, keyPrefix: 'rp-prod:', commandTimeoutMs: 300 } });
    expect(config.upstreams).toEqual([expect.objectContaining({ name: 'hub' })]); // the rest of config is kept
    expect(validate(objs.filter((o) => o.apiVersion !== 'monitoring.coreos.com/v1')).every((l) => l.startsWith('ok '))).toBe(true);
  });

  it('refuses state in config when the chart writes it from redis values, and unknown redis keys', () => {
    const base = merged('registry-proxy') as { config: Record<string, unknown> };
    expect(schemaCheck('registry-proxy', { ...base, redis: { existingSecret: 'r' }, config: { ...base.config, state: {} } })).toContain('/config must NOT be valid');
    expect(schemaCheck('registry-proxy', { ...base, redis: { existingSecret: 'r', url: 'redis://x' } })).toEqual(['/redis must NOT have additional properties']);
  });

  it.each([
    ['emptyDir', { type: 'emptyDir', sizeLimit: '20Gi' }, { name: 'cache', emptyDir: { sizeLimit: '20Gi' } }],
    ['emptyDir without a limit', { type: 'emptyDir' }, { name: 'cache', emptyDir: {} }],
    ['persistentVolumeClaim', { type: 'persistentVolumeClaim', storageClassName: 'efs-sc' }, { name: 'cache', persistentVolumeClaim: { claimName: 'rp-registry-proxy-cache' } }],
    ['existingClaim', { type: 'existingClaim', existingClaim: 'shared-cache' }, { name: 'cache', persistentVolumeClaim: { claimName: 'shared-cache' } }],
  ])('mounts the cache volume: %s', (_n, volume, expected) => {
    expect(schemaCheck('registry-proxy', { ...merged('registry-proxy'), cache: { volume } })).toEqual([]);
    const objs = render({ cache: { volume } });
    const pod = podOf(objs);
    expect(pod.volumes.find((v) => v.name === 'cache')).toEqual(expected);
    expect(pod.containers[0]?.volumeMounts).toContainEqual({ name: 'cache', mountPath: '/var/cache/registry-proxy' });
    const pvc = objs.find((d) => d.kind === 'PersistentVolumeClaim');
    if (volume.type === 'persistentVolumeClaim') expect(pvc?.['spec']).toEqual({ accessModes: ['ReadWriteMany'], storageClassName: 'efs-sc', resources: { requests: { storage: '50Gi' } } });
    else expect(pvc).toBeUndefined();
    expect(validate(objs.filter((o) => o.apiVersion !== 'monitoring.coreos.com/v1')).every((l) => l.startsWith('ok '))).toBe(true);
  });

  it("mounts the registry cache store's password from an existing Secret, where the store credentials can name it as a file", () => {
    const values = { cache: { volume: { type: 'none' }, registryStore: { existingSecret: 'cache-store-creds', passwordKey: 'token' } } };
    expect(schemaCheck('registry-proxy', { ...merged('registry-proxy'), ...values })).toEqual([]);
    const objs = render(values);
    const pod = podOf(objs);
    expect(pod.volumes.find((v) => v.name === 'cache-store')).toEqual({ name: 'cache-store', secret: { secretName: 'cache-store-creds', items: [{ key: 'token', path: 'password' }] } });
    expect(pod.containers[0]?.volumeMounts).toContainEqual({ name: 'cache-store', mountPath: '/etc/registry-proxy/cache-store', readOnly: true });
    const objsValid = objs.filter((o) => o.apiVersion !== 'monitoring.coreos.com/v1');
    expect(validate(objsValid)).toEqual(objsValid.map((o) => `ok ${o.kind}/${o.metadata.name}`));
    expect(podOf(render({})).volumes.find((v) => v.name === 'cache-store')).toBeUndefined();
    expect(schemaCheck('registry-proxy', { ...merged('registry-proxy'), cache: { volume: { type: 'none' }, registryStore: { existingSecret: 's', url: 'https://x' } } })).toEqual([
      '/cache/registryStore must NOT have additional properties',
    ]);
  });

  it('refuses a cache volume type it does not know, and an existingClaim without a name', () => {
    expect(schemaCheck('registry-proxy', { ...merged('registry-proxy'), cache: { volume: { type: 'hostPath' } } })).toContain('/cache/volume/type must be equal to one of the allowed values');
    expect(schemaCheck('registry-proxy', { ...merged('registry-proxy'), cache: { volume: { type: 'existingClaim' } } })).toContain("/cache/volume must have required property 'existingClaim'");
  });

  it('uses an existing Secret instead of creating one', () => {
    const withSecret = renderChart(join(charts, 'registry-proxy'), { existingSecret: 'mine' }).map((d) => d.obj as Obj & Record<string, any>); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(withSecret.some((d) => d.kind === 'Secret')).toBe(false);
    const dep = withSecret.find((d) => d.kind === 'Deployment');
    expect(dep?.['spec'].template.spec.volumes.find((v: { name: string }) => v.name === 'secrets').secret.secretName).toBe('mine');
  });
});

describe('kubelet-image-service objects (issue 13)', () => {
  const docs = renderChart(join(charts, 'kubelet-image-service'), {}, { Name: 'rp', Namespace: 'registry' }).map((d) => d.obj as Obj & Record<string, any>); // eslint-disable-line @typescript-eslint/no-explicit-any
  const ds = (name: string) => docs.find((d) => d.kind === 'DaemonSet' && d.metadata.name === name) as Obj & Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** The host folders a pod's container mounts under /host, from its volumes' hostPath. */
  function hostMounts(pod: { volumes: Array<{ name: string; hostPath?: { path: string } }> }, container: { volumeMounts: Array<{ name: string; mountPath: string }> }): string[] {
    return container.volumeMounts
      .filter((m) => m.mountPath.startsWith('/host/'))
      .map((m) => {
        const host = pod.volumes.find((v) => v.name === m.name)?.hostPath?.path;
        expect(m.mountPath).toBe(`/host${host}`); // mounted where the patcher looks (--root /host)
        return host as string;
      });
  }

  it("defect 4: the patcher's host mounts are the folders of the patcher's own table, in both DaemonSets", () => {
    // Every place in the table lies under a mount, and every mount holds a place.
    const places = [...Object.values(PLACES).flatMap((p) => [p.binDir, p.ownDir]), STATE_DIR, '/etc/containerd', '/etc/systemd/system/kubelet.service.d', '/home/kubernetes/kubelet-config.yaml'];
    const under = (p: string, m: string) => p === m || p.startsWith(`${m}/`);
    expect(places.filter((p) => !HOST_MOUNTS.some((m) => under(p, m)))).toEqual([]);
    expect(HOST_MOUNTS.filter((m) => !places.some((p) => under(p, m)))).toEqual([]);
    for (const [name, container] of [
      ['rp-kubelet-image-service', 'node-patcher'],
      ['rp-kubelet-image-service-revert', 'revert'],
    ] as const) {
      const pod = ds(name)['spec'].template.spec;
      const c = pod.initContainers.find((x: { name: string }) => x.name === container);
      // The patcher also sees the image service's socket (image-service mode waits until it is served).
      expect(hostMounts(pod, c).sort()).toEqual([...HOST_MOUNTS, '/run/dbus', ...(container === 'node-patcher' ? ['/run/registry-proxy'] : [])].sort());
    }
  });

  it('image-service mode: the patcher runs beside the image service (not before it) and stays', () => {
    const docs2 = renderChart(join(charts, 'kubelet-image-service'), { mode: 'image-service' }, { Name: 'rp', Namespace: 'registry' }).map((d) => d.obj as Obj & Record<string, any>); // eslint-disable-line @typescript-eslint/no-explicit-any
    const pod = (docs2.find((d) => d.kind === 'DaemonSet' && d.metadata.name === 'rp-kubelet-image-service') as Obj & Record<string, any>)['spec'].template.spec; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(pod.initContainers).toBeUndefined();
    expect(pod.containers.map((c: { name: string }) => c.name)).toEqual(['image-service', 'node-patcher']);
    const patcher = pod.containers[1];
    expect(patcher.args).toEqual(expect.arrayContaining(['--mode', 'image-service', '--stay']));
    expect(patcher.volumeMounts).toContainEqual({ name: 'socket-dir', mountPath: '/host/run/registry-proxy' });
    // The image service's socket folder is the one the patcher checks.
    expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'socket-dir', mountPath: '/run/registry-proxy' });
    expect(validate(docs2)).toEqual(docs2.map((o) => `ok ${o.kind}/${o.metadata.name}`));
  });

  it('defect 7: a rolling update starts the new pod before the old one goes', () => {
    expect(ds('rp-kubelet-image-service')['spec'].updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
  });

  it('defect 2: credential-provider is the default mode; mirror mode gets its probe images', () => {
    const init = ds('rp-kubelet-image-service')['spec'].template.spec.initContainers[0];
    expect(init.args.slice(0, 5)).toEqual(['patch', '--root', '/host', '--mode', 'credential-provider']);
    const cm = docs.find((d) => d.kind === 'ConfigMap');
    expect(JSON.parse(cm?.['data']['mirror-probes.json'])).toEqual({ 'docker.io': 'library/pause:3.9' });
  });
});
