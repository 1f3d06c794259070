import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { UpstreamUnavailableError } from './errors.js';

/**
 * Where a followed redirect may lead. An upstream's redirect is the upstream's word, not the
 * operator's: followed blindly, `Location: http://169.254.169.254/latest/meta-data/` makes the
 * proxy fetch a node's cloud credentials for whoever asked. So a redirect goes only to http(s),
 * never from https down to http, and only to globally routable addresses, checked after DNS
 * resolution, and the connection then goes to exactly the address that was checked (a second
 * resolution could answer differently: DNS rebinding). Hosts the operator lists are exempt
 * from the address check (blob storage on a private network).
 */

/** Not globally routable (IANA special-purpose registries, RFC 6890 and successors). */
const LOCAL = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // RFC 1918
  ['100.64.0.0', 10], // CGNAT (RFC 6598)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, cloud metadata
  ['172.16.0.0', 12], // RFC 1918
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast (deprecated)
  ['192.168.0.0', 16], // RFC 1918
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const)
  LOCAL.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard-only
  ['2001::', 23], // IETF protocol assignments (Teredo, ORCHID, ...)
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique-local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const)
  LOCAL.addSubnet(net, bits, 'ipv6');

/** The IPv4 address embedded in an IPv4-mapped, NAT64 or 6to4 IPv6 address, which is where such a packet really goes. */
function embeddedV4(ip: string): string | undefined {
  const full = expand(ip);
  const hex = (i: number) => parseInt(full.slice(i * 4, i * 4 + 4), 16);
  const v4 = (a: number, b: number) => `${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
  if (full.startsWith('00000000000000000000ffff') || full.startsWith('0064ff9b0000000000000000')) return v4(hex(6), hex(7));
  if (full.startsWith('2002')) return v4(hex(1), hex(2));
  return undefined;
}

/** 32 hex digits of an IPv6 address. */
function expand(ip: string): string {
  let s = ip.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    s = `${s.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [left = '', right] = s.split('::');
  const l = left ? left.split(':') : [];
  const r = right !== undefined && right ? right.split(':') : [];
  const groups = right === undefined ? l : [...l, ...Array<string>(8 - l.length - r.length).fill('0'), ...r];
  return groups.map((g) => g.padStart(4, '0')).join('');
}

/** True for an address a redirect may lead to without the operator's say-so. */
export function isGlobalAddress(ip: string): boolean {
  const family = isIP(ip);
  if (family === 4) return !LOCAL.check(ip, 'ipv4');
  if (family !== 6) return false;
  if (LOCAL.check(ip, 'ipv6')) return false;
  const v4 = embeddedV4(ip);
  if (v4 !== undefined) return isGlobalAddress(v4);
  return parseInt(expand(ip).slice(0, 1), 16) >> 1 === 1; // only 2000::/3 is global unicast
}

export type Lookup = (host: string) => Promise<ReadonlyArray<{ address: string }>>;
const systemLookup: Lookup = (host) => dnsLookup(host, { all: true, verbatim: true });

/**
 * Checks a redirect from `from` to `to`; resolves to the address to connect to, or throws an
 * UpstreamUnavailableError of kind 'redirect'. `allowed` holds lower-case host names (or IP
 * literals) the operator allows whatever they resolve to.
 */
export async function vetRedirect(upstream: string, from: URL, to: URL, allowed: ReadonlySet<string>, lookup: Lookup = systemLookup): Promise<string> {
  const refuse = (why: string) => new UpstreamUnavailableError(upstream, 'redirect', `redirect refused: ${why}`);
  if (to.protocol !== 'http:' && to.protocol !== 'https:') throw refuse(`scheme ${to.protocol} is not http(s)`);
  if (from.protocol === 'https:' && to.protocol === 'http:') throw refuse('https to http');
  const host = to.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  let addresses: string[];
  if (isIP(host)) addresses = [host];
  else {
    try {
      addresses = (await lookup(host)).map((a) => a.address);
    } catch (cause) {
      throw new UpstreamUnavailableError(upstream, 'connection', `redirect target ${host} does not resolve`, { cause });
    }
  }
  const first = addresses[0];
  if (first === undefined) throw refuse(`${host} has no address`);
  // Every answer must pass, not just the one used: a name that also points inside is refused.
  if (!allowed.has(host)) {
    const inside = addresses.find((a) => !isGlobalAddress(a));
    if (inside !== undefined) throw refuse(`${host} resolves to ${inside}, which is not a public address; list the host in redirectHosts to allow it`);
  }
  return first;
}
