import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The proxy's Prometheus metrics, on a registry of their own (no global state). */
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'registry_proxy_requests_total',
    help: 'HTTP requests by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
    // Every read of the counter (the exposition, get()) first takes in the counts countRequest kept.
    collect: () => this.flushRequests(),
  });
  readonly upstreamLatency = new Histogram({
    name: 'registry_proxy_upstream_response_seconds',
    help: 'Time until the upstream answered with headers',
    labelNames: ['upstream', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly upstreamBytes = new Counter({
    name: 'registry_proxy_upstream_bytes_total',
    help: 'Response body bytes relayed from upstreams (as announced by Content-Length)',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });
  readonly coalesced = new Counter({
    name: 'registry_proxy_coalesced_requests_total',
    help: 'Manifest requests answered by an upstream request that an identical request had started',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });
  readonly tokens = new Counter({
    name: 'registry_proxy_tokens_total',
    help: 'Token requests by outcome (issued, denied, invalid, limited: 429, unavailable: backend down, overloaded: too many password checks queued)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly cacheRequests = new Counter({
    name: 'registry_proxy_cache_requests_total',
    help: 'Pull-through cache lookups by upstream, kind (blob, manifest) and result (hit, miss, stale: served while the upstream fails, bypass: relayed without caching)',
    labelNames: ['upstream', 'kind', 'result'] as const,
    registers: [this.registry],
  });
  readonly cacheBytes = new Counter({
    name: 'registry_proxy_cache_bytes_total',
    help: 'Bytes the cache served from its store (source=cache) or took from the upstream (source=upstream)',
    labelNames: ['upstream', 'source'] as const,
    registers: [this.registry],
  });
  readonly cacheEvictions = new Counter({
    name: 'registry_proxy_cache_evictions_total',
    help: 'Objects removed from a cache store to stay within its size quota',
    labelNames: ['store'] as const,
    registers: [this.registry],
  });
  readonly cacheErrors = new Counter({
    name: 'registry_proxy_cache_errors_total',
    help: 'Cache faults by reason: store (unwritable, full: the pull was relayed), digest (the upstream sent wrong bytes: nothing stored), corrupt (a stored object failed its check: removed), upstream (a fill broke off)',
    labelNames: ['upstream', 'reason'] as const,
    registers: [this.registry],
  });
  readonly cacheLockFallbacks = new Counter({
    name: 'registry_proxy_cache_lock_fallbacks_total',
    help: 'Cache fill locks taken on this replica only because the shared state store (Redis) did not answer: replicas may each fetch such a blob',
    labelNames: ['store'] as const,
    registers: [this.registry],
  });
  readonly cacheFills = new Gauge({
    name: 'registry_proxy_cache_fills',
    help: 'Blob fills running: being downloaded and verified, or stored (for a registry store: uploaded, after its clients have every byte)',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });
  readonly cacheStoreBytes = new Gauge({
    name: 'registry_proxy_cache_store_bytes',
    help: 'Bytes held by a cache store, as this process counts them',
    labelNames: ['store'] as const,
    registers: [this.registry],
  });

  /**
   * Requests counted since `requests` was last read, by route, method and status, each with its
   * prom-client child: a child's inc() still hashes its label object (about 3,500 instructions,
   * more than a tenth of the proxy's own work for a relayed HEAD), adding to a number here does not.
   */
  private readonly requestCounts = new Map<string, Map<string, Map<number, { readonly child: { inc(n: number): void }; n: number }>>>();
  /** The same slots in the order their label sets first came, which is the order the exposition lists them in. */
  private readonly requestSlots: Array<{ readonly child: { inc(n: number): void }; n: number }> = [];

  private readonly latencyChildren = new Map<string, { observe(v: number): void }>();

  /** Observes the time to an upstream's response head, from `started` (process.hrtime.bigint()). */
  observeUpstream(upstream: string, status: number, started: bigint): void {
    const key = `${upstream} ${status}`;
    let child = this.latencyChildren.get(key);
    if (child === undefined) {
      child = this.upstreamLatency.labels(upstream, String(status));
      if (this.latencyChildren.size < 4096) this.latencyChildren.set(key, child);
    }
    child.observe(Number(process.hrtime.bigint() - started) / 1e9);
  }

  /** Counts one request (a few hundred label combinations at most: routes x methods x statuses). */
  countRequest(route: string, method: string, status: number): void {
    let byMethod = this.requestCounts.get(route);
    if (byMethod === undefined) this.requestCounts.set(route, (byMethod = new Map()));
    let byStatus = byMethod.get(method);
    if (byStatus === undefined) byMethod.set(method, (byStatus = new Map()));
    const slot = byStatus.get(status);
    if (slot !== undefined) {
      slot.n++;
      return;
    }
    const child = this.requests.labels(route, method, String(status));
    if (this.requestSlots.length >= 4096) {
      child.inc(1); // a label set beyond any real mix: counted at once, not kept
      return;
    }
    const fresh = { child, n: 1 };
    this.requestSlots.push(fresh);
    byStatus.set(status, fresh);
  }

  private flushRequests(): void {
    for (const slot of this.requestSlots) {
      if (slot.n === 0) continue;
      slot.child.inc(slot.n);
      slot.n = 0;
    }
  }

  constructor(defaults = true) {
    if (defaults) collectDefaultMetrics({ register: this.registry });
  }
}
