import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The proxy's Prometheus metrics, on a registry of their own (no global state). */
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'registry_proxy_requests_total',
    help: 'HTTP requests by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
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

  constructor(defaults = true) {
    if (defaults) collectDefaultMetrics({ register: this.registry });
  }
}
