/** The per-request counters keep one prom-client child per label set; the exposition must be what plain inc()/observe() would give. */
import { Metrics } from './metrics.js';

it('countRequest and observeUpstream count per label set, as labelled inc() and observe() do', async () => {
  const m = new Metrics(false);
  for (let i = 0; i < 3; i++) m.countRequest('manifest', 'HEAD', 200);
  m.countRequest('manifest', 'HEAD', 404);
  m.countRequest('token', 'GET', 200);
  const t = process.hrtime.bigint();
  m.observeUpstream('up', 200, t);
  m.observeUpstream('up', 200, t);
  m.observeUpstream('other', 503, t);
  const text = await m.registry.metrics();
  expect(text).toContain('registry_proxy_requests_total{route="manifest",method="HEAD",status="200"} 3');
  expect(text).toContain('registry_proxy_requests_total{route="manifest",method="HEAD",status="404"} 1');
  expect(text).toContain('registry_proxy_requests_total{route="token",method="GET",status="200"} 1');
  expect(text).toContain('registry_proxy_upstream_response_seconds_count{upstream="up",status="200"} 2');
  expect(text).toContain('registry_proxy_upstream_response_seconds_count{upstream="other",status="503"} 1');
});
