import type { Registry } from 'prom-client';
import { setTimeout as sleep } from 'node:timers/promises';

/** A proxy started in this process (test/support/proxy.ts): its metrics registry. */
interface WithMetrics {
  readonly metrics: { readonly registry: Registry };
}

/** The sum of a metric's series whose labels include `labels`. */
export async function metric(p: WithMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await p.metrics.registry.metrics();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  return text
    .split('\n')
    .filter((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && want.every((w) => l.includes(w)))
    .reduce((a, l) => a + Number(l.split(' ').pop()), 0);
}

/**
 * Until no blob fill of the proxy is running. A registry store's clients get their last byte
 * before the object's upload to the store ends, so a test that looks at the store after a pull
 * waits for this first.
 */
export async function fillsSettled(p: WithMetrics, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while ((await metric(p, 'registry_proxy_cache_fills')) > 0) {
    if (Date.now() > until) throw new Error(`cache fills still running after ${timeoutMs} ms`);
    await sleep(10);
  }
}
