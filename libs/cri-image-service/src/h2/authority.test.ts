import { AuthorityRewriter, isValidAuthority } from './authority.js';
import { HpackDecoder } from './hpack.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const frame = (type: number, flags: number, stream: number, payload: Buffer) => {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
};
const raw = (s: string) => Buffer.concat([Buffer.from([s.length]), Buffer.from(s, 'latin1')]);
const SETTINGS = frame(0x4, 0, 0, Buffer.alloc(0));
const DATA = frame(0x0, 0x1, 1, Buffer.from('00000000 00'.replace(/\s/g, ''), 'hex'));
/** POST /runtime.v1.ImageService/ImageFsInfo with the given :authority, indexed (0x41) as grpc-go does. */
const request = (authority: string) => Buffer.concat([Buffer.from([0x83, 0x86, 0x44]), raw('/runtime.v1.ImageService/ImageFsInfo'), Buffer.from([0x41]), raw(authority)]);
/** The next request, reusing the dynamic table entries of the first (62 = :authority, 63 = :path). */
const again = Buffer.from([0x83, 0x86, 0xbf, 0xbe]);

/** Splits the output into frames and decodes their header blocks as a fresh receiver would. */
function receive(out: Buffer): { types: number[]; headers: [string, string][][] } {
  const d = new HpackDecoder();
  const types: number[] = [];
  const headers: [string, string][][] = [];
  let b = out.subarray(PREFACE.length);
  expect(out.subarray(0, PREFACE.length)).toEqual(PREFACE);
  while (b.length) {
    const len = b.readUIntBE(0, 3);
    types.push(b[3] as number);
    if (b[3] === 0x1) headers.push(d.decode(b.subarray(9, 9 + len)).map((f) => [f.name, f.value]));
    b = b.subarray(9 + len);
  }
  return { types, headers };
}

function run(input: Buffer, chunk = input.length): { out: Buffer; rewrites: string[] } {
  const rewrites: string[] = [];
  const r = new AuthorityRewriter((a) => rewrites.push(a));
  const parts: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunk) parts.push(...r.push(input.subarray(i, i + chunk)));
  return { out: Buffer.concat(parts), rewrites };
}

describe('the HTTP/2 :authority rewriter (issue 13 defect 0: kubelet sent the socket path)', () => {
  it('knows what nghttp2 refuses', () => {
    expect(isValidAuthority('localhost')).toBe(true);
    expect(isValidAuthority('127.0.0.1:50051')).toBe(true);
    expect(isValidAuthority('[::1]:80')).toBe(true);
    expect(isValidAuthority('/run/registry-proxy/image-service.sock')).toBe(false);
    expect(isValidAuthority('a b')).toBe(false);
  });

  it('passes a connection with a valid authority through byte for byte, however it is chunked', () => {
    const input = Buffer.concat([PREFACE, SETTINGS, frame(0x1, 0x4, 1, request('localhost')), DATA, frame(0x1, 0x4, 3, again), DATA]);
    for (const chunk of [input.length, 1, 7, 100]) expect(run(input, chunk)).toEqual({ out: input, rewrites: [] });
  });

  it('rewrites the socket path to localhost in every request of the connection, indexed ones too', () => {
    const input = Buffer.concat([PREFACE, SETTINGS, frame(0x1, 0x4, 1, request('/run/x/image.sock')), DATA, frame(0x1, 0x4, 3, again), DATA]);
    for (const chunk of [input.length, 1, 13]) {
      const { out, rewrites } = run(input, chunk);
      expect(rewrites).toEqual(['/run/x/image.sock']);
      const got = receive(out);
      expect(got.types).toEqual([0x4, 0x1, 0x0, 0x1, 0x0]);
      for (const h of got.headers)
        expect(h).toEqual([
          [':method', 'POST'],
          [':scheme', 'http'],
          [':path', '/runtime.v1.ImageService/ImageFsInfo'],
          [':authority', 'localhost'],
        ]);
    }
  });

  it('reassembles a block split over CONTINUATION frames, and keeps END_STREAM and priority', () => {
    const block = request('/tmp/s.sock');
    const prio = Buffer.from([0, 0, 0, 0, 15]);
    const input = Buffer.concat([PREFACE, frame(0x1, 0x20 | 0x1, 1, Buffer.concat([prio, block.subarray(0, 10)])), frame(0x9, 0x4, 1, block.subarray(10))]);
    const { out } = run(input);
    const f = out.subarray(PREFACE.length);
    expect([f[3], f[4]]).toEqual([0x1, 0x20 | 0x1 | 0x4]);
    expect(f.subarray(9, 14)).toEqual(prio);
    expect(new HpackDecoder().decode(f.subarray(14)).find((h) => h.name === ':authority')?.value).toBe('localhost');
  });

  it('leaves what it cannot parse to the HTTP/2 server, unchanged', () => {
    const garbage = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(run(garbage).out).toEqual(garbage);
    const badBlock = Buffer.concat([PREFACE, frame(0x1, 0x4, 1, Buffer.from([0xff, 0xff])), DATA]); // index far out of any table
    expect(run(badBlock).out).toEqual(badBlock);
    const interrupted = Buffer.concat([PREFACE, frame(0x1, 0x0, 1, request('localhost')), DATA]);
    expect(run(interrupted).out).toEqual(interrupted);
  });

  it('once it has rewritten, closes a connection whose later blocks it cannot read', () => {
    const r = new AuthorityRewriter();
    r.push(Buffer.concat([PREFACE, frame(0x1, 0x4, 1, request('/tmp/s.sock'))]));
    expect(() => r.push(frame(0x1, 0x4, 3, Buffer.from([0xff, 0xff])))).toThrow(/rewriter/);
  });
});
