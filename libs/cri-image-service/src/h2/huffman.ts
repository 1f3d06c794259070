/**
 * HPACK's Huffman code (RFC 7541 section 5.2, Appendix B), decode side only: the rewriter
 * re-encodes strings raw. The code is canonical (codes follow from the lengths: shorter codes
 * first, symbols in order within a length), so the table is just the 257 code lengths,
 * symbols 0..255 and EOS (256).
 */
const LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 0-31
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // ' '-'?'
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // '@'-'_'
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // '`'-127
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 128-159
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 160-191
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 192-223
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30, // 224-255, EOS
];
const EOS = 256;
const MAX_LEN = 30;

/** Per code length: the first canonical code, and the symbols of that length in code order. */
const byLength: { first: number; symbols: number[] }[] = (() => {
  const out = Array.from({ length: MAX_LEN + 1 }, () => ({ first: 0, symbols: [] as number[] }));
  for (let sym = 0; sym < LENGTHS.length; sym++) out[LENGTHS[sym] as number]?.symbols.push(sym);
  let code = 0;
  for (let len = 1; len <= MAX_LEN; len++) {
    const l = out[len] as { first: number; symbols: number[] };
    l.first = code;
    code = (code + l.symbols.length) * 2;
  }
  return out;
})();

/** Decodes a Huffman-coded HPACK string to its octets (as latin1); throws on a malformed one. */
export function huffmanDecode(data: Uint8Array): string {
  const out: number[] = [];
  let code = 0;
  let len = 0;
  for (const byte of data) {
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      len++;
      const l = byLength[len] as { first: number; symbols: number[] };
      const i = code - l.first;
      if (i >= 0 && i < l.symbols.length) {
        const sym = l.symbols[i] as number;
        if (sym === EOS) throw new Error('HPACK: EOS inside a Huffman string');
        out.push(sym);
        code = 0;
        len = 0;
      } else if (len >= MAX_LEN) throw new Error('HPACK: invalid Huffman code');
    }
  }
  // Padding: fewer than 8 bits, all ones (a prefix of EOS).
  if (len > 7 || code !== 2 ** len - 1) throw new Error('HPACK: invalid Huffman padding');
  return Buffer.from(out).toString('latin1');
}
