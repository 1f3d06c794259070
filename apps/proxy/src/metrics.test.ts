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

it('shows requests counted between reads at the next read, in the order their label sets first came, through get() too', async () => {
  const m = new Metrics(false);
  m.countRequest('manifest', 'HEAD', 200);
  m.countRequest('token', 'GET', 200);
  m.countRequest('manifest', 'HEAD', 404);
  m.countRequest('manifest', 'HEAD', 200);
  const lines = (text: string) => text.split('\n').filter((l) => l.startsWith('registry_proxy_requests_total{'));
  expect(lines(await m.registry.metrics())).toEqual([
    'registry_proxy_requests_total{route="manifest",method="HEAD",status="200"} 2',
    'registry_proxy_requests_total{route="token",method="GET",status="200"} 1',
    'registry_proxy_requests_total{route="manifest",method="HEAD",status="404"} 1',
  ]);
  m.countRequest('blob', 'GET', 200);
  m.countRequest('manifest', 'HEAD', 200);
  expect(lines(await m.registry.metrics())).toEqual([
    'registry_proxy_requests_total{route="manifest",method="HEAD",status="200"} 3',
    'registry_proxy_requests_total{route="token",method="GET",status="200"} 1',
    'registry_proxy_requests_total{route="manifest",method="HEAD",status="404"} 1',
    'registry_proxy_requests_total{route="blob",method="GET",status="200"} 1',
  ]);
  m.countRequest('token', 'GET', 200);
  const values = (await m.requests.get()).values;
  expect(values.find((v) => v.labels.route === 'token')?.value).toBe(2);
});
