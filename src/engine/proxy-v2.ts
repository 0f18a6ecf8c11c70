// PROXY protocol version 2 (HAProxy doc/proxy-protocol.txt §2.2): the binary header nsproxy writes first on every
// upstream connection of a tenant with `upstream_proxy_protocol = "v2"`. Pure: no runtime imports. (The tests'
// parser for it is test/helpers/proxy-v2-decode.ts.)
//
// What nsproxy sends, byte for byte:
//   12  signature            0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A
//    1  version | command    0x21 (version 2, PROXY): always PROXY, never LOCAL (every upstream connection relays one
//                            client connection)
//    1  family | protocol    0x11 TCP over IPv4, or 0x21 TCP over IPv6
//    2  length               bytes after these 16, big-endian
//   12|36  addresses         src addr, dst addr (4 or 16 bytes each), src port, dst port (2 bytes each, big-endian)
//   TLVs, in HAProxy's own order (it emits SSL before NETNS):
//    PP2_TYPE_SSL (0x20), TLS listeners only: client = PP2_CLIENT_SSL (0x01), verify = 0 (uint32; no client
//                         certificate is asked for), then the sub-TLV PP2_SUBTYPE_SSL_VERSION (0x21) = "TLSv1.3"
//    PP2_TYPE_NETNS (0x30): the tenant name, US-ASCII (§2.2.7)
// No PP2_TYPE_CRC32C (the connection is loopback or a trusted network; TCP already checksums) and no NOOP padding.
//
// Address families: both addresses IPv4, or IPv4-mapped IPv6 (`::ffff:10.0.0.5`, as a dual-stack socket reports an
// IPv4 peer), or one of each → the IPv4 block. Otherwise (a real IPv6 address on either end) → the IPv6 block, an
// IPv4 address on the other end written IPv4-mapped, as HAProxy does (v4tov6). A zone id (`fe80::1%lo`) is dropped:
// the header has no room for it. An address that is not an IPv4 or IPv6 literal, a port outside 0..65535, an empty
// or non-ASCII tenant name throw a ProxyV2Error: the caller must refuse that client connection (never send a LOCAL
// header or no header instead: the upstream would take nsproxy's own address for the client's).

/** The 12-byte signature that opens every v2 header. */
export const PP2_SIGNATURE = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);
export const PP2_HEADER_LEN = 16;
export const PP2_VERSION = 0x20;
export const PP2_CMD_LOCAL = 0x00;
export const PP2_CMD_PROXY = 0x01;
export const PP2_FAM_TCP4 = 0x11;
export const PP2_FAM_TCP6 = 0x21;

export const PP2_TYPE_ALPN = 0x01;
export const PP2_TYPE_AUTHORITY = 0x02;
export const PP2_TYPE_CRC32C = 0x03;
export const PP2_TYPE_NOOP = 0x04;
export const PP2_TYPE_UNIQUE_ID = 0x05;
export const PP2_TYPE_SSL = 0x20;
export const PP2_SUBTYPE_SSL_VERSION = 0x21;
export const PP2_SUBTYPE_SSL_CN = 0x22;
export const PP2_SUBTYPE_SSL_CIPHER = 0x23;
export const PP2_SUBTYPE_SSL_SIG_ALG = 0x24;
export const PP2_SUBTYPE_SSL_KEY_ALG = 0x25;
export const PP2_TYPE_NETNS = 0x30;

export const PP2_CLIENT_SSL = 0x01;
export const PP2_CLIENT_CERT_CONN = 0x02;
export const PP2_CLIENT_CERT_SESS = 0x04;

/** Information the encoder cannot put in a header (and, in the tests' parser, malformed input). */
export class ProxyV2Error extends Error {
  override name = "ProxyV2Error";
}

export interface ProxyV2Info {
  /** The client's address as seen inside its namespace (the accepted socket's remote address). */
  srcAddr: string;
  srcPort: number;
  /** The listener's address and port (the accepted socket's local address). */
  dstAddr: string;
  dstPort: number;
  /** The tenant name, sent as PP2_TYPE_NETNS. */
  netns: string;
  /** "TLSv1.3": present only for TLS listeners; adds PP2_TYPE_SSL. An empty string counts as absent. */
  tlsVersion?: string;
}

// ------------------------------------------------------------------ encoder

/** The first 14 bytes (signature, version|command, family) for each family, copied in one set(). */
const PREFIX4 = new Uint8Array(14);
const PREFIX6 = new Uint8Array(14);
PREFIX4.set(PP2_SIGNATURE);
PREFIX6.set(PP2_SIGNATURE);
PREFIX4[12] = PREFIX6[12] = PP2_VERSION | PP2_CMD_PROXY;
PREFIX4[13] = PP2_FAM_TCP4;
PREFIX6[13] = PP2_FAM_TCP6;

/** Scratch for the two addresses, as IPv6 (IPv4 mapped): parsed into, then copied out. */
const SRC = new Uint8Array(16);
const DST = new Uint8Array(16);

/** The TLV block for one (tenant, TLS version): the same for every connection of a listener, so built once. */
const tails = new Map<string, Uint8Array>();
const MAX_TAILS = 16384;

/**
 * The PROXY v2 header for one upstream connection (a fresh buffer, the caller's to keep). Write it before anything
 * else and in a single write (spec: "the sender must ensure that all the protocol header is sent at once").
 * Throws ProxyV2Error when an address is not an IP literal, a port is out of range, or the tenant name or TLS version
 * is empty, not ASCII or too long: refuse the client connection then.
 */
export function proxyV2Header(info: ProxyV2Info): Uint8Array {
  if (!parseIp(info.srcAddr, SRC)) throw new ProxyV2Error(`PROXY v2: source address ${JSON.stringify(info.srcAddr)} is not an IPv4 or IPv6 address`);
  if (!parseIp(info.dstAddr, DST)) throw new ProxyV2Error(`PROXY v2: destination address ${JSON.stringify(info.dstAddr)} is not an IPv4 or IPv6 address`);
  const sp = info.srcPort;
  const dp = info.dstPort;
  if (!(Number.isInteger(sp) && sp >= 0 && sp <= 0xffff)) throw new ProxyV2Error(`PROXY v2: source port ${sp} is not in 0..65535`);
  if (!(Number.isInteger(dp) && dp >= 0 && dp <= 0xffff)) throw new ProxyV2Error(`PROXY v2: destination port ${dp} is not in 0..65535`);
  const tail = tlvTail(info.netns, info.tlsVersion || undefined);
  const v4 = isMappedV4(SRC) && isMappedV4(DST);
  const addrLen = v4 ? 12 : 36;
  const out = new Uint8Array(PP2_HEADER_LEN + addrLen + tail.length);
  out.set(v4 ? PREFIX4 : PREFIX6);
  const len = addrLen + tail.length;
  out[14] = len >>> 8;
  out[15] = len & 0xff;
  let o = PP2_HEADER_LEN;
  if (v4) {
    out.set(SRC.subarray(12), o);
    out.set(DST.subarray(12), o + 4);
    o += 8;
  } else {
    out.set(SRC, o);
    out.set(DST, o + 16);
    o += 32;
  }
  out[o] = sp >>> 8;
  out[o + 1] = sp & 0xff;
  out[o + 2] = dp >>> 8;
  out[o + 3] = dp & 0xff;
  out.set(tail, o + 4);
  return out;
}

/** The largest TLV block that still fits the 16-bit length with an IPv6 address block. */
const MAX_TAIL = 0xffff - 36;

function tlvTail(netns: string, tlsVersion: string | undefined): Uint8Array {
  // NUL never passes checkAscii, so no key of a valid pair can be the key of another input (checked on a miss only).
  const key = tlsVersion === undefined ? `\0${netns}` : `${netns}\0${tlsVersion}`;
  const hit = tails.get(key);
  if (hit) return hit;
  checkAscii("tenant name (NETNS TLV)", netns);
  if (tlsVersion !== undefined) checkAscii("TLS version", tlsVersion);
  // SSL: type, length(2), client(1), verify(4), sub-TLV type, length(2), version.
  const sslLen = tlsVersion === undefined ? 0 : 3 + 5 + 3 + tlsVersion.length;
  const size = sslLen + 3 + netns.length;
  if (size > MAX_TAIL) throw new ProxyV2Error(`PROXY v2: tenant name and TLS version too long for a header (${size} bytes of TLVs)`);
  const t = new Uint8Array(size);
  let o = 0;
  if (tlsVersion !== undefined) {
    t[o] = PP2_TYPE_SSL;
    t[o + 1] = (sslLen - 3) >>> 8;
    t[o + 2] = (sslLen - 3) & 0xff;
    t[o + 3] = PP2_CLIENT_SSL;
    // t[o + 4 .. o + 7]: verify = 0, already zero.
    t[o + 8] = PP2_SUBTYPE_SSL_VERSION;
    t[o + 9] = tlsVersion.length >>> 8;
    t[o + 10] = tlsVersion.length & 0xff;
    o += 11;
    for (let i = 0; i < tlsVersion.length; i++) t[o++] = tlsVersion.charCodeAt(i);
  }
  t[o] = PP2_TYPE_NETNS;
  t[o + 1] = netns.length >>> 8;
  t[o + 2] = netns.length & 0xff;
  o += 3;
  for (let i = 0; i < netns.length; i++) t[o++] = netns.charCodeAt(i);
  if (tails.size >= MAX_TAILS) tails.clear();
  tails.set(key, t);
  return t;
}

/** Visible ASCII and space, at least one character: what §2.2.6/§2.2.7 call a US-ASCII string. */
function checkAscii(what: string, s: string): void {
  if (s.length === 0) throw new ProxyV2Error(`PROXY v2: empty ${what}`);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) throw new ProxyV2Error(`PROXY v2: ${what} ${JSON.stringify(s)} is not printable US-ASCII`);
  }
}

/** ::ffff:a.b.c.d (what an IPv4 address becomes in parseIp). */
export function isMappedV4(a: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false;
  return a[10] === 0xff && a[11] === 0xff;
}

// ------------------------------------------------------------------ IP literals

/**
 * Parse an IPv4 or IPv6 literal into 16 bytes (IPv4 as ::ffff:a.b.c.d). A zone id (`%lo`) is ignored. Strict as
 * inet_pton: IPv4 is four decimal parts 0..255 without leading zeros; IPv6 at most one `::`, groups of 1..4 hex
 * digits, an IPv4 tail in the last 32 bits only. No brackets, no port.
 */
export function parseIp(s: string, out: Uint8Array): boolean {
  let end = s.indexOf("%");
  if (end < 0) end = s.length;
  else if (end === s.length - 1) return false;
  if (s.indexOf(":") < 0) {
    if (end !== s.length) return false; // zone ids belong to IPv6 only
    out.fill(0, 0, 10);
    out[10] = out[11] = 0xff;
    return parseV4(s, 0, end, out, 12);
  }
  return parseV6(s, end, out);
}

function parseV4(s: string, start: number, end: number, out: Uint8Array, at: number): boolean {
  let part = 0;
  let i = start;
  while (part < 4) {
    const first = i;
    let v = 0;
    while (i < end) {
      const c = s.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      v = v * 10 + c;
      i++;
    }
    const digits = i - first;
    if (digits === 0 || digits > 3 || v > 255 || (digits > 1 && s.charCodeAt(first) === 48)) return false;
    out[at + part++] = v;
    if (part < 4) {
      if (i >= end || s.charCodeAt(i) !== 46) return false;
      i++;
    }
  }
  return i === end;
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

const GROUPS = new Uint16Array(8);
const V4TAIL = new Uint8Array(4);

function parseV6(s: string, end: number, out: Uint8Array): boolean {
  let n = 0; // groups parsed
  let gap = -1; // index in GROUPS where `::` stands
  let i = 0;
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return false;
    gap = 0;
    i = 2;
  }
  while (i < end) {
    if (n === 8) return false;
    const first = i;
    let v = 0;
    while (i < end) {
      const h = hexVal(s.charCodeAt(i));
      if (h < 0) break;
      v = (v << 4) | h;
      i++;
    }
    if (i < end && s.charCodeAt(i) === 46) {
      // a dotted IPv4 tail: the last 32 bits
      if (n > 6 || !parseV4(s, first, end, V4TAIL, 0)) return false;
      GROUPS[n++] = (V4TAIL[0]! << 8) | V4TAIL[1]!;
      GROUPS[n++] = (V4TAIL[2]! << 8) | V4TAIL[3]!;
      break;
    }
    const digits = i - first;
    if (digits === 0 || digits > 4) return false;
    GROUPS[n++] = v;
    if (i === end) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (s.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = n;
      i++;
    } else if (i === end) return false; // a trailing single ':'
  }
  if (gap < 0 ? n !== 8 : n > 7) return false;
  const zeros = 8 - n;
  let g = 0;
  for (let k = 0; k < 8; k++) {
    let v: number;
    if (gap >= 0 && k >= gap && k < gap + zeros) v = 0;
    else v = GROUPS[g++]!;
    out[2 * k] = v >>> 8;
    out[2 * k + 1] = v & 0xff;
  }
  return true;
}
