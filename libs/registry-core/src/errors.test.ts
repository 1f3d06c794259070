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
