import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProxyError, ProxyErrorCodes } from './codes.js';
import { RegistryError, RegistryErrors, registryErrorBody, writeRegistryError } from './errors.js';

describe('registry errors', () => {
  it('has the distribution-spec codes with their statuses', () => {
    expect(RegistryErrors.MANIFEST_UNKNOWN.status).toBe(404);
    expect(RegistryErrors.UNAUTHORIZED.status).toBe(401);
    expect(RegistryErrors.DENIED.status).toBe(403);
    expect(RegistryErrors.TOOMANYREQUESTS.status).toBe(429);
    expect(RegistryErrors.NAME_INVALID.status).toBe(400);
  });
  it('keeps each status in its descriptor: a row with a spec code of its own for a status the spec lacks', () => {
    expect(new RegistryError('BODY_TOO_LARGE')).toMatchObject({ code: 'SIZE_INVALID', status: 413 });
    expect(new RegistryError('UPSTREAM_TIMEOUT')).toMatchObject({ code: 'UNAVAILABLE', status: 504 });
    expect(new RegistryError('REQUEST_INVALID')).toMatchObject({ code: 'UNSUPPORTED', status: 400 });
    // No way around the table: an options object cannot carry a status.
    expect(new RegistryError('UNAUTHORIZED', { status: 400 } as never).status).toBe(401);
  });
  it('writes the {"errors":[...]} body with detail only when given', () => {
    expect(JSON.parse(registryErrorBody(new RegistryError('NAME_UNKNOWN')))).toEqual({ errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' }] });
    expect(JSON.parse(registryErrorBody(new RegistryError('DENIED', { detail: { x: 1 } }))).errors[0].detail).toEqual({ x: 1 });
  });
  it('sets status and headers', () => {
    const headers: Record<string, string | number> = {};
    let body: string | undefined;
    const res = { statusCode: 0, headersSent: false, setHeader: (k: string, v: string | number) => (headers[k] = v), end: (b?: string) => (body = b) };
    writeRegistryError(res, new RegistryError('TOOMANYREQUESTS', { headers: { 'Retry-After': '3' } }));
    expect(res.statusCode).toBe(429);
    expect(headers['Retry-After']).toBe('3');
    expect(headers['Content-Length']).toBe(Buffer.byteLength(body ?? ''));
  });
});

describe('docs/errors.md lists exactly what clients can receive', () => {
  const doc = readFileSync(join(__dirname, '../../../docs/errors.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Registry protocol errors'), doc.indexOf('## Configuration and programming errors'));
  // One row per (code, status) pair: that pair is all a client can tell two descriptors apart by.
  const documented = [...section.matchAll(/^\| `([A-Z_]+)` +\| (\d{3}) +\| (.+?) *\|$/gm)].map((m) => ({ pair: `${m[1]} ${m[2]}`, when: m[3] as string }));
  const pairs = Object.values(RegistryErrors).map((d) => `${d.code} ${d.status}`);
  it('has the section and its table', () => {
    expect(section.length).toBeGreaterThan(0);
    expect(documented.length).toBeGreaterThan(0);
  });
  it('no two descriptors send the same code with the same status', () => {
    expect(new Set(pairs).size).toBe(pairs.length);
  });
  it('every descriptor is documented, with when a client gets it', () => {
    const rows = new Set(documented.map((d) => d.pair));
    for (const p of pairs) expect(rows.has(p) ? p : `undocumented: ${p}`).toBe(p);
    for (const d of documented) expect(d.when.trim().length).toBeGreaterThan(10);
  });
  it('documents nothing the table does not have, and nothing twice', () => {
    const have = new Set(pairs);
    for (const d of documented) expect(have.has(d.pair) ? d.pair : `not in the table: ${d.pair}`).toBe(d.pair);
    expect(new Set(documented.map((d) => d.pair)).size).toBe(documented.length);
  });
});

describe('RP_ERR codes', () => {
  const doc = readFileSync(join(__dirname, '../../../docs/errors.md'), 'utf8');
  it('every code is documented', () => {
    for (const code of Object.keys(ProxyErrorCodes)) expect(doc).toContain(`\`${code}\``);
  });
  it('the document names no code that does not exist, and none twice', () => {
    const named = [...doc.matchAll(/^\| `(RP_ERR_[A-Z_]+)`/gm)].map((m) => m[1]);
    expect(new Set(named).size).toBe(named.length);
    expect(named.sort()).toEqual(Object.keys(ProxyErrorCodes).sort());
  });
  it('puts the code in the message and keeps the cause', () => {
    const cause = new Error('x');
    const e = new ProxyError('RP_ERR_CONFIG_INVALID', 'listen.port: bad', { cause });
    expect(e.message).toBe('RP_ERR_CONFIG_INVALID: listen.port: bad');
    expect(e.cause).toBe(cause);
  });
});
