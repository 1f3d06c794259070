import type { IncomingMessage } from 'node:http';
import { requestId } from './request-log.js';

const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

describe('requestId', () => {
  it("is the client's X-Request-Id, cut to 64 characters", () => {
    expect(requestId(req({ 'x-request-id': 'abc' }))).toBe('abc');
    expect(requestId(req({ 'x-request-id': 'x'.repeat(100) }))).toBe('x'.repeat(64));
  });

  it("else this process's random prefix and a count: every id new, the prefix the same", () => {
    const ids = Array.from({ length: 10_000 }, () => requestId(req({ 'x-request-id': '' })));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{12}-[0-9a-z]+$/);
    expect(new Set(ids.map((id) => id.slice(0, 12))).size).toBe(1);
  });
});
