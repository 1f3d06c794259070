import { huffmanDecode } from './huffman.js';

/**
 * Just enough HPACK (RFC 7541) to read a client's header blocks and write them back: a decoder
 * that keeps the client's dynamic table, and an encoder that writes every field as a literal
 * without indexing, so the receiver's dynamic table is never touched by what it writes.
 * Names and values are latin1 strings (one char per octet), so lengths are octet counts.
 */

/** How a field was sent: "never indexed" must stay so when it is forwarded (section 6.2.3). */
export interface HeaderField {
  readonly name: string;
  readonly value: string;
  readonly neverIndexed: boolean;
}

// RFC 7541 Appendix A; index 1 is STATIC[0].
const STATIC: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];
const STATIC_NAME = new Map<string, number>();
STATIC.forEach(([name], i) => {
  if (!STATIC_NAME.has(name)) STATIC_NAME.set(name, i + 1);
});

/** A dynamic table larger than this is refused: the peer's encoder may not exceed our setting. */
const MAX_TABLE_SIZE = 65_536;

/** Decodes header blocks of one connection direction, keeping its dynamic table across blocks. */
export class HpackDecoder {
  private table: (readonly [string, string])[] = []; // newest first
  private size = 0;
  private maxSize = 4096; // SETTINGS_HEADER_TABLE_SIZE's initial value

  decode(block: Uint8Array): HeaderField[] {
    const fields: HeaderField[] = [];
    const r = { buf: block, pos: 0 };
    while (r.pos < block.length) {
      const b = block[r.pos] as number;
      if (b & 0x80) {
        const [name, value] = this.entry(readInt(r, 7));
        fields.push({ name, value, neverIndexed: false });
      } else if (b & 0x40) {
        const f = this.literal(r, 6, false);
        this.add(f.name, f.value);
        fields.push(f);
      } else if (b & 0x20) {
        const size = readInt(r, 5);
        if (size > MAX_TABLE_SIZE) throw new Error(`HPACK: dynamic table size ${size} is too large`);
        this.maxSize = size;
        this.evict(0);
      } else fields.push(this.literal(r, 4, (b & 0x10) !== 0));
    }
    return fields;
  }

  private literal(r: Reader, prefix: number, neverIndexed: boolean): HeaderField {
    const index = readInt(r, prefix);
    const name = index === 0 ? readString(r) : this.entry(index)[0];
    return { name, value: readString(r), neverIndexed };
  }

  private entry(index: number): readonly [string, string] {
    const e = index === 0 ? undefined : index <= STATIC.length ? STATIC[index - 1] : this.table[index - STATIC.length - 1];
    if (!e) throw new Error(`HPACK: no table entry ${index}`);
    return e;
  }

  private add(name: string, value: string): void {
    const size = name.length + value.length + 32;
    this.evict(size);
    // An entry larger than the table empties it and is not added (section 4.4).
    if (size <= this.maxSize) {
      this.table.unshift([name, value]);
      this.size += size;
    }
  }

  private evict(room: number): void {
    while (this.size + room > this.maxSize && this.table.length > 0) {
      const [n, v] = this.table.pop() as readonly [string, string];
      this.size -= n.length + v.length + 32;
    }
  }
}

/** Writes fields as literals without indexing (never indexed where they came so), raw strings. */
export function encodeHeaders(fields: readonly HeaderField[]): Buffer {
  const out: number[] = [];
  for (const f of fields) {
    const index = STATIC_NAME.get(f.name) ?? 0;
    writeInt(out, f.neverIndexed ? 0x10 : 0x00, 4, index);
    if (index === 0) writeString(out, f.name);
    writeString(out, f.value);
  }
  return Buffer.from(out);
}

interface Reader {
  readonly buf: Uint8Array;
  pos: number;
}

function readInt(r: Reader, prefix: number): number {
  if (r.pos >= r.buf.length) throw new Error('HPACK: truncated integer');
  const mask = (1 << prefix) - 1;
  let value = (r.buf[r.pos++] as number) & mask;
  if (value < mask) return value;
  for (let shift = 0; ; shift += 7) {
    if (r.pos >= r.buf.length) throw new Error('HPACK: truncated integer');
    if (shift > 21) throw new Error('HPACK: integer too large');
    const b = r.buf[r.pos++] as number;
    value += (b & 0x7f) * 2 ** shift;
    if (!(b & 0x80)) return value;
  }
}

function readString(r: Reader): string {
  if (r.pos >= r.buf.length) throw new Error('HPACK: truncated string');
  const huffman = ((r.buf[r.pos] as number) & 0x80) !== 0;
  const length = readInt(r, 7);
  if (r.pos + length > r.buf.length) throw new Error('HPACK: truncated string');
  const bytes = r.buf.subarray(r.pos, r.pos + length);
  r.pos += length;
  return huffman ? huffmanDecode(bytes) : Buffer.from(bytes).toString('latin1');
}

function writeInt(out: number[], flags: number, prefix: number, value: number): void {
  const mask = (1 << prefix) - 1;
  if (value < mask) {
    out.push(flags | value);
    return;
  }
  out.push(flags | mask);
  let rest = value - mask;
  while (rest >= 0x80) {
    out.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
}

function writeString(out: number[], s: string): void {
  writeInt(out, 0x00, 7, s.length);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
}
