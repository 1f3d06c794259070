import { classifyPullFailure } from './backend.js';

describe('classifyPullFailure (issue 13 defect 10: a missing tag was "denied" when the registry port held 403)', () => {
  it('does not read the echoed reference: ports, tags and repository names decide nothing', () => {
    // Docker Engine 20.10's own words (dockerode prefixes the HTTP code), from the e2e runs.
    for (const port of ['40312', '14035', '44010', '5000']) {
      expect(classifyPullFailure(`(HTTP code 404) unexpected - manifest for 127.0.0.1:${port}/nodes/app:no-such-tag not found: manifest unknown: manifest unknown`)).toBe('not_found');
      expect(
        classifyPullFailure(
          `(HTTP code 404) unexpected - pull access denied for 127.0.0.1:${port}/secret/app, repository does not exist or may require 'docker login': denied: requested access to the resource is denied`,
        ),
      ).toBe('denied');
      expect(classifyPullFailure(`(HTTP code 500) server error - Head "http://127.0.0.1:${port}/v2/nodes/app/manifests/no-such-tag": unauthorized`)).toBe('unauthenticated');
      // containerd's wording through its CRI
      expect(
        classifyPullFailure(
          `failed to pull and unpack image "127.0.0.1:${port}/nodes/app:v403": failed to resolve reference "127.0.0.1:${port}/nodes/app:v403": 127.0.0.1:${port}/nodes/app:v403: not found`,
        ),
      ).toBe('not_found');
    }
    expect(classifyPullFailure('manifest for registry.example.com/team/forbidden-app:401 not found: manifest unknown')).toBe('not_found');
  });

  it("takes Docker's folded 'may require docker login' sentence by the registry's cause", () => {
    const folded = (cause: string) => `pull access denied for r.example/app, repository does not exist or may require 'docker login': ${cause}`;
    expect(classifyPullFailure(folded('denied: requested access to the resource is denied'))).toBe('denied');
    expect(classifyPullFailure(folded('manifest unknown: manifest unknown'))).toBe('not_found');
    expect(classifyPullFailure(folded('name unknown: repository name not known to registry'))).toBe('not_found');
  });

  it('still reads status codes and words that stand alone', () => {
    expect(classifyPullFailure('pulling from host r.example failed with status code [manifests v1]: 401 Unauthorized')).toBe('unauthenticated');
    expect(classifyPullFailure('unexpected status: 403 Forbidden')).toBe('denied');
    expect(classifyPullFailure('dial tcp 127.0.0.1:5000: connect: connection refused')).toBe('unavailable');
    expect(classifyPullFailure('unexpected status code 503 Service Unavailable')).toBe('unavailable');
    expect(classifyPullFailure('something else')).toBe('internal');
  });
});
