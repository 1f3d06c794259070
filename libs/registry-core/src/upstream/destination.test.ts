import { isGlobalAddress, vetRedirect } from './destination.js';

describe('isGlobalAddress', () => {
  it.each([
    '127.0.0.1',
    '127.255.255.254',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '100.127.255.255',
    '0.0.0.0',
    '192.0.2.1',
    '198.18.0.1',
    '224.0.0.1',
    '255.255.255.255',
    '::1',
    '::',
    'fe80::1',
    'fc00::1',
    'fd12:3456::1',
    'ff02::1',
    '2001:db8::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:169.254.169.254',
    '64:ff9b::a9fe:a9fe',
    '2002:7f00:1::',
    '2002:c0a8:101::1',
    '::127.0.0.1',
    'not-an-ip',
  ])('refuses %s', (ip) => expect(isGlobalAddress(ip)).toBe(false));
  it.each(['1.1.1.1', '8.8.8.8', '172.32.0.1', '100.128.0.1', '172.15.255.255', '2606:4700:4700::1111', '2a00:1450:4001::200e', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1'])(
    'allows %s',
    (ip) => expect(isGlobalAddress(ip)).toBe(true),
  );
});

describe('vetRedirect (issue 11 defect 3: redirects reach internal addresses)', () => {
  const none = new Set<string>();
  const resolving = (map: Record<string, string[]>) => async (host: string) => (map[host] ?? []).map((address) => ({ address }));
  it('follows only http(s)', async () => {
    for (const to of ['file:///etc/passwd', 'gopher://x/', 'ftp://example.com/', 'data:text/plain,x']) {
      await expect(vetRedirect('up', new URL('http://reg.example'), new URL(to), none, resolving({}))).rejects.toMatchObject({ kind: 'redirect' });
    }
  });
  it('never goes from https down to http, even to a listed host', async () => {
    await expect(vetRedirect('up', new URL('https://reg.example'), new URL('http://cdn.example/b'), new Set(['cdn.example']), resolving({ 'cdn.example': ['8.8.8.8'] }))).rejects.toThrow(
      /https to http/,
    );
  });
  it('refuses a name with any non-public address, and connects to the address it checked', async () => {
    const lookup = resolving({ 'cdn.example': ['8.8.4.4'], 'rebind.example': ['8.8.8.8', '169.254.169.254'], 'meta.example': ['fd00::1'] });
    expect(await vetRedirect('up', new URL('https://reg.example'), new URL('https://cdn.example/b'), none, lookup)).toBe('8.8.4.4');
    await expect(vetRedirect('up', new URL('https://reg.example'), new URL('https://rebind.example/b'), none, lookup)).rejects.toThrow(/169\.254\.169\.254/);
    await expect(vetRedirect('up', new URL('https://reg.example'), new URL('https://meta.example/b'), none, lookup)).rejects.toThrow(/redirectHosts/);
    await expect(vetRedirect('up', new URL('http://reg.example'), new URL('http://[::1]:8080/'), none, lookup)).rejects.toMatchObject({ kind: 'redirect' });
    await expect(vetRedirect('up', new URL('http://reg.example'), new URL('http://nowhere.example/'), none, lookup)).rejects.toMatchObject({ kind: 'redirect' });
    await expect(vetRedirect('up', new URL('http://reg.example'), new URL('http://err.example/'), none, async () => Promise.reject(new Error('ENOTFOUND')))).rejects.toMatchObject({
      kind: 'connection',
    });
  });
  it('lets the operator allow a host by name or address', async () => {
    const lookup = resolving({ 'storage.internal': ['10.0.0.7'] });
    expect(await vetRedirect('up', new URL('http://reg'), new URL('http://storage.internal/b'), new Set(['storage.internal']), lookup)).toBe('10.0.0.7');
    expect(await vetRedirect('up', new URL('http://reg'), new URL('http://[::1]:9/b'), new Set(['::1']), lookup)).toBe('::1');
  });
});
