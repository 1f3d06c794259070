import { encodeHeaders, HpackDecoder } from './hpack.js';
import { huffmanDecode } from './huffman.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const pairs = (fields: { name: string; value: string }[]) => fields.map((f) => [f.name, f.value]);

describe('HPACK decoding (RFC 7541 Appendix C)', () => {
  it('decodes Huffman strings, and refuses EOS or bad padding', () => {
    expect(huffmanDecode(hex('f1e3 c2e5 f23a 6ba0 ab90 f4ff'))).toBe('www.example.com');
    expect(huffmanDecode(hex('a8eb 1064 9cbf'))).toBe('no-cache');
    expect(huffmanDecode(hex('25a8 49e9 5bb8 e8b4 bf'))).toBe('custom-value');
    expect(() => huffmanDecode(hex('ffff ffff'))).toThrow(/EOS|Huffman/);
    expect(() => huffmanDecode(hex('f1e3 c2e5 f23a 6ba0 ab90 f400'))).toThrow(/padding/);
  });

  it('keeps the dynamic table across the blocks of a connection (C.3, raw strings)', () => {
    const d = new HpackDecoder();
    expect(pairs(d.decode(hex('8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d')))).toEqual([
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
    ]);
    expect(pairs(d.decode(hex('8286 84be 5808 6e6f 2d63 6163 6865')))).toEqual([
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
      ['cache-control', 'no-cache'],
    ]);
    expect(pairs(d.decode(hex('8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65')))).toEqual([
      [':method', 'GET'],
      [':scheme', 'https'],
      [':path', '/index.html'],
      [':authority', 'www.example.com'],
      ['custom-key', 'custom-value'],
    ]);
  });

  it('the same with Huffman strings (C.4)', () => {
    const d = new HpackDecoder();
    expect(pairs(d.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff')))[3]).toEqual([':authority', 'www.example.com']);
    expect(pairs(d.decode(hex('8286 84be 5886 a8eb 1064 9cbf')))[4]).toEqual(['cache-control', 'no-cache']);
    expect(pairs(d.decode(hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf')))[4]).toEqual(['custom-key', 'custom-value']);
  });

  it('evicts the oldest entries when a size update shrinks the table, and refuses a missing index', () => {
    const d = new HpackDecoder();
    d.decode(hex('4003 6161 6101 31')); // aaa: 1 (35 octets)
    d.decode(hex('4003 6262 6201 32')); // bbb: 2, now index 62; aaa is 63
    expect(pairs(d.decode(hex('bebf')))).toEqual([
      ['bbb', '2'],
      ['aaa', '1'],
    ]);
    d.decode(hex('3f05')); // size update to 36 (5-bit prefix: 31 + 5): only the newest fits
    expect(pairs(d.decode(hex('be')))).toEqual([['bbb', '2']]);
    expect(() => d.decode(hex('bf'))).toThrow(/no table entry 63/);
    expect(() => d.decode(hex('41'))).toThrow(/truncated/);
  });

  it('writes literals without indexing that decode to the same fields, never-indexed kept', () => {
    const fields = [
      { name: ':authority', value: 'localhost', neverIndexed: false },
      { name: 'x-custom', value: 'v'.repeat(200), neverIndexed: false },
      { name: 'authorization', value: 'secret', neverIndexed: true },
    ];
    const block = encodeHeaders(fields);
    expect(block[0]).toBe(0x01); // literal without indexing, static name 1
    const d = new HpackDecoder();
    expect(d.decode(block)).toEqual(fields);
    expect(d.decode(hex(''))).toEqual([]);
  });
});
