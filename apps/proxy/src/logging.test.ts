import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { destination, symbols, type DestinationStream, type Logger } from 'pino';
import { createLogger, PlainLines, REDACT_PATHS, stdoutLines, type LineFields } from './logging.js';

/** A logger at `level` whose lines are kept, parsed, without `time` (which differs between two writes). */
function capture(level = 'info') {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) {
        raw.push(l);
        const line = JSON.parse(l) as Record<string, unknown>;
        delete line['time'];
        lines.push(line);
      }
      done();
    },
  });
  return { logger: createLogger(level, stream), lines, raw };
}

// The lines written for every request, as the request log and the token endpoint write them.
const requestLine: LineFields = { req_id: 'r1', method: 'GET', path: '/token', route: 'token', status: 200, ms: 1.25, subject: 'alice', repository: undefined, upstream: undefined, aborted: false };
const auditLine: LineFields = {
  audit: 'token',
  grant: 'password',
  form: true,
  subject: 'alice',
  method: 'htpasswd',
  client: '127.0.0.1',
  requested: ['repository:team/app:pull,push'],
  granted: ['repository:team/app:pull'],
  outcome: 'issued',
  reason: undefined,
};
const limitedLine: LineFields = { audit: 'token', outcome: 'limited', limit: 'client for this account', client: '::1', subject: 'bob' };

describe('logging', () => {
  it('redacts every listed path on the root logger', () => {
    const { logger, lines, raw } = capture();
    logger.info({ token: 'SECRET1', password: 'SECRET2', headers: { authorization: 'SECRET3', cookie: 'SECRET4' }, req: { headers: { authorization: 'SECRET5' }, refresh_token: 'SECRET6' } }, 'x');
    expect(raw.join('')).not.toMatch(/SECRET/);
    expect(lines[0]).toMatchObject({ token: '[redacted]', password: '[redacted]', headers: { authorization: '[redacted]', cookie: '[redacted]' } });
    expect(REDACT_PATHS).toContain('*.access_token');
  });

  // Token endpoint bench, 2026-12-03: the redaction pass was two thirds of the cost of a token's
  // two log lines. PlainLines skips it for lines whose shape it cannot change.
  it('writes the per-request lines exactly as the redacting logger does', () => {
    const a = capture();
    const b = capture();
    const plain = new PlainLines(b.logger);
    for (const [fields, msg] of [
      [requestLine, 'request'],
      [auditLine, 'token request'],
    ] as const) {
      a.logger.info(fields, msg);
      plain.info(fields, msg);
    }
    a.logger.warn(limitedLine, 'token request rate-limited');
    plain.warn(limitedLine, 'token request rate-limited');
    expect(b.lines).toEqual(a.lines);
    expect(b.lines).toHaveLength(3);
    expect(b.lines[1]).toMatchObject({ app: 'registry-proxy', level: 30, audit: 'token', granted: ['repository:team/app:pull'], msg: 'token request' });
    // ...and without the pass: no field stringifier (the root logger has one for every key, `*.` paths).
    const fieldStringifiers = (l: Logger) => Reflect.ownKeys((l as unknown as Record<symbol, object>)[symbols.stringifiersSym] ?? {}).filter((k) => k !== symbols.redactFmtSym);
    expect(fieldStringifiers(a.logger)).toContain(symbols.wildcardFirstSym);
    expect(fieldStringifiers(plain['out'])).toEqual([]);
  });

  it('leaves the root logger redacting after a PlainLines is made from it', () => {
    const { logger, raw } = capture();
    new PlainLines(logger).info(requestLine, 'request');
    logger.info({ err: { token: 'SECRET' } }, 'x');
    expect(raw).toHaveLength(2);
    expect(raw[1]).not.toContain('SECRET');
  });

  it('follows the level of the logger it is made from', () => {
    const { logger, lines } = capture('warn');
    const plain = new PlainLines(logger);
    expect(plain.enabled('info')).toBe(false);
    expect(plain.enabled('warn')).toBe(true);
    plain.info(requestLine, 'request');
    plain.warn(limitedLine, 'limited');
    expect(lines.map((l) => l['msg'])).toEqual(['limited']);
  });

  it('admits no field a redaction path names, and no value with properties (checked by tsc)', () => {
    // @ts-expect-error a key every redaction path starting with it would censor
    const a: LineFields = { password: 'x' };
    // @ts-expect-error nor a key a `*.` path could reach into
    const b: LineFields = { token: 'x' };
    // @ts-expect-error an object value, which a `*.password` path reaches into
    const c: LineFields = { req: { password: 'x' } };
    const d: LineFields = { subject: 's', n: 1, ok: true, list: ['a'] };
    expect([a, b, c, d]).toHaveLength(4);
    // Every top-level key a path starts with is one LineFields refuses (the type's list is complete).
    const firsts = new Set(REDACT_PATHS.map((p) => p.split('.')[0]).filter((k) => k !== '*'));
    expect([...firsts].sort()).toEqual(['access_token', 'authorization', 'headers', 'password', 'refresh_token', 'token']);
  });

  it("stdoutLines writes the bytes that pino's default output writes, in order, multi-byte text included", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rp-lines-'));
    try {
      const write = async (make: (fd: number) => DestinationStream, name: string) => {
        const fd = openSync(join(dir, name), 'w');
        const out = make(fd);
        const lines = new PlainLines(createLogger('info', out));
        // Many lines at once, so most are queued behind a write in flight and written in batches.
        for (let i = 0; i < 2000; i++) lines.info({ ...auditLine, subject: `ålice-${i}-\u{1F433}`, requested: [`repository:tëam/app${i}:pull`] }, 'token request');
        // Written asynchronously: wait for the last line.
        for (let t = 0; readFileSync(join(dir, name), 'utf8').split('\n').length < 2001 && t < 500; t++) await new Promise((r) => setTimeout(r, 10));
        closeSync(fd);
        return readFileSync(join(dir, name), 'utf8').replace(/"time":\d+,/g, '');
      };
      const ours = await write((fd) => stdoutLines(fd), 'ours');
      const pinos = await write((fd) => destination({ dest: fd, sync: false }), 'pino');
      expect(ours.split('\n')).toHaveLength(2001);
      expect(ours).toContain('"subject":"ålice-1999-\u{1F433}"');
      expect(ours).toBe(pinos);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
