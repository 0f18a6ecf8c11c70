// A strict PROXY v2 parser (HAProxy doc/proxy-protocol.txt §2.2) for the tests and the test upstreams: it reads what
// nsproxy's encoder (src/engine/proxy-v2.ts) writes, and what HAProxy writes, and refuses anything malformed.
import {
  isMappedV4,
  PP2_CMD_PROXY,
  PP2_HEADER_LEN,
  PP2_SIGNATURE,
  PP2_SUBTYPE_SSL_VERSION,
  PP2_TYPE_CRC32C,
  PP2_TYPE_NETNS,
  PP2_TYPE_SSL,
  PP2_VERSION,
  ProxyV2Error,
} from "../../src/engine/proxy-v2.ts";

/** Text form of 4 or 16 address bytes: dotted IPv4; RFC 5952 IPv6 (lower case, longest zero run as `::`, mapped IPv4 dotted). */
export function formatIp(a: Uint8Array): string {
  if (a.length === 4) return `${a[0]}.${a[1]}.${a[2]}.${a[3]}`;
  if (isMappedV4(a)) return `::ffff:${a[12]}.${a[13]}.${a[14]}.${a[15]}`;
  const g: number[] = [];
  for (let k = 0; k < 8; k++) g.push((a[2 * k]! << 8) | a[2 * k + 1]!);
  let bestAt = -1;
  let bestLen = 1; // a single zero group is not compressed (RFC 5952 §4.2.2)
  for (let k = 0; k < 8; ) {
    if (g[k] !== 0) {
      k++;
      continue;
    }
    let e = k;
    while (e < 8 && g[e] === 0) e++;
    if (e - k > bestLen) {
      bestAt = k;
      bestLen = e - k;
    }
    k = e;
  }
  const hex = (from: number, to: number) => g.slice(from, to).map((x) => x.toString(16)).join(":");
  if (bestAt < 0) return hex(0, 8);
  return `${hex(0, bestAt)}::${hex(bestAt + bestLen, 8)}`;
}

export interface ProxyV2Tlv {
  type: number;
  /** A copy: the input buffer may be reused. */
  value: Uint8Array;
}

export interface ProxyV2Ssl {
  /** Bit field: PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS. */
  client: number;
  /** 0 when a client certificate was verified (or, as HAProxy sends it, none was presented). */
  verify: number;
  /** The sub-TLVs in order. */
  subTlvs: ProxyV2Tlv[];
  /** PP2_SUBTYPE_SSL_VERSION as text, when present. */
  version?: string;
}

export type ProxyV2Family = "UNSPEC" | "TCP4" | "UDP4" | "TCP6" | "UDP6" | "UNIX_STREAM" | "UNIX_DGRAM";

export interface ProxyV2Parsed {
  command: "LOCAL" | "PROXY";
  family: ProxyV2Family;
  /** Addresses and ports: PROXY command with an IP family only (UNIX: addresses are paths, no ports). */
  srcAddr?: string;
  srcPort?: number;
  dstAddr?: string;
  dstPort?: number;
  /** Every TLV in order (PROXY command with a known family only: for LOCAL and UNSPEC the block is skipped). */
  tlvs: ProxyV2Tlv[];
  /** PP2_TYPE_NETNS as text. */
  netns?: string;
  /** PP2_TYPE_SSL decoded. */
  ssl?: ProxyV2Ssl;
  /** PP2_TYPE_CRC32C, verified against the header. */
  crc32c?: number;
  /** Bytes the header takes at the start of the input (16 + its length field): the payload starts there. */
  headerLength: number;
}

const FAMILIES: Record<number, { name: ProxyV2Family; addrLen: number }> = {
  0x00: { name: "UNSPEC", addrLen: 0 },
  0x11: { name: "TCP4", addrLen: 12 },
  0x12: { name: "UDP4", addrLen: 12 },
  0x21: { name: "TCP6", addrLen: 36 },
  0x22: { name: "UDP6", addrLen: 36 },
  0x31: { name: "UNIX_STREAM", addrLen: 216 },
  0x32: { name: "UNIX_DGRAM", addrLen: 216 },
};

function bad(why: string): never {
  throw new ProxyV2Error(`malformed PROXY v2 header: ${why}`);
}

/**
 * Parse a PROXY v2 header at the start of buf. Returns undefined while the input is a correct but incomplete prefix
 * (read more and call again); throws ProxyV2Error when it cannot become a valid header: wrong signature or version,
 * unassigned command or family, a length too short for the family's addresses, a TLV running past the header, an SSL
 * TLV shorter than its 5 fixed bytes or with sub-TLVs running past it, a duplicate NETNS, SSL, CRC32C or SSL
 * version, a non-ASCII NETNS, a CRC32C that does not match. Version 1 (text) headers are not accepted.
 */
export function parseProxyV2(buf: Uint8Array): ProxyV2Parsed | undefined {
  const have = Math.min(buf.length, 12);
  for (let i = 0; i < have; i++) if (buf[i] !== PP2_SIGNATURE[i]) bad("no v2 signature");
  if (buf.length >= 13 && (buf[12]! & 0xf0) !== PP2_VERSION) bad(`version ${buf[12]! >> 4}, not 2`);
  if (buf.length >= 13 && (buf[12]! & 0x0f) > PP2_CMD_PROXY) bad(`unassigned command ${buf[12]! & 0x0f}`);
  if (buf.length >= 14 && !FAMILIES[buf[13]!]) bad(`unassigned family/protocol 0x${buf[13]!.toString(16).padStart(2, "0")}`);
  if (buf.length < PP2_HEADER_LEN) return undefined;
  const len = (buf[14]! << 8) | buf[15]!;
  const total = PP2_HEADER_LEN + len;
  const fam = FAMILIES[buf[13]!]!;
  const command = (buf[12]! & 0x0f) === PP2_CMD_PROXY ? "PROXY" : "LOCAL";
  // LOCAL: any length (receivers "must not assume zero is presented"), the family is ignored.
  if (command === "PROXY" && len < fam.addrLen) bad(`length ${len} is shorter than the ${fam.addrLen} address bytes of ${fam.name}`);
  if (buf.length < total) return undefined;
  const out: ProxyV2Parsed = { command, family: fam.name, tlvs: [], headerLength: total };
  // LOCAL: "the receiver must ... discard the protocol block including the family". UNSPEC: addresses unknown.
  if (command === "LOCAL" || fam.addrLen === 0) return out;
  let o = PP2_HEADER_LEN;
  if (fam.addrLen === 12) {
    out.srcAddr = formatIp(buf.subarray(o, o + 4));
    out.dstAddr = formatIp(buf.subarray(o + 4, o + 8));
    out.srcPort = (buf[o + 8]! << 8) | buf[o + 9]!;
    out.dstPort = (buf[o + 10]! << 8) | buf[o + 11]!;
  } else if (fam.addrLen === 36) {
    out.srcAddr = formatIp(buf.subarray(o, o + 16));
    out.dstAddr = formatIp(buf.subarray(o + 16, o + 32));
    out.srcPort = (buf[o + 32]! << 8) | buf[o + 33]!;
    out.dstPort = (buf[o + 34]! << 8) | buf[o + 35]!;
  } else {
    out.srcAddr = cString(buf.subarray(o, o + 108));
    out.dstAddr = cString(buf.subarray(o + 108, o + 216));
  }
  o += fam.addrLen;
  let crcAt = -1;
  out.tlvs = readTlvs(buf, o, total, "TLV");
  for (const t of out.tlvs) {
    if (t.type === PP2_TYPE_NETNS) {
      if (out.netns !== undefined) bad("two NETNS TLVs");
      out.netns = ascii(t.value, "NETNS TLV");
    } else if (t.type === PP2_TYPE_SSL) {
      if (out.ssl) bad("two SSL TLVs");
      out.ssl = readSsl(t.value);
    } else if (t.type === PP2_TYPE_CRC32C) {
      if (crcAt >= 0) bad("two CRC32C TLVs");
      if (t.value.length !== 4) bad(`CRC32C TLV of ${t.value.length} bytes, not 4`);
      crcAt = tlvOffset(buf, o, total, PP2_TYPE_CRC32C) + 3;
      out.crc32c = ((t.value[0]! << 24) | (t.value[1]! << 16) | (t.value[2]! << 8) | t.value[3]!) >>> 0;
    }
  }
  if (crcAt >= 0) {
    const copy = buf.slice(0, total);
    copy.fill(0, crcAt, crcAt + 4);
    const got = crc32c(copy);
    if (got !== out.crc32c) bad(`CRC32C 0x${out.crc32c!.toString(16)} does not match the header's 0x${got.toString(16)}`);
  }
  return out;
}

function readTlvs(buf: Uint8Array, from: number, to: number, what: string): ProxyV2Tlv[] {
  const tlvs: ProxyV2Tlv[] = [];
  let o = from;
  while (o < to) {
    if (o + 3 > to) bad(`${to - o} stray byte(s) where a ${what} header (3 bytes) should be`);
    const l = (buf[o + 1]! << 8) | buf[o + 2]!;
    if (o + 3 + l > to) bad(`${what} 0x${buf[o]!.toString(16).padStart(2, "0")} of ${l} bytes runs ${o + 3 + l - to} byte(s) past its block`);
    tlvs.push({ type: buf[o]!, value: buf.slice(o + 3, o + 3 + l) });
    o += 3 + l;
  }
  return tlvs;
}

function tlvOffset(buf: Uint8Array, from: number, to: number, type: number): number {
  for (let o = from; o < to; o += 3 + ((buf[o + 1]! << 8) | buf[o + 2]!)) if (buf[o] === type) return o;
  return -1;
}

function readSsl(v: Uint8Array): ProxyV2Ssl {
  if (v.length < 5) bad(`SSL TLV of ${v.length} bytes, shorter than its 5 fixed bytes`);
  const ssl: ProxyV2Ssl = {
    client: v[0]!,
    verify: ((v[1]! << 24) | (v[2]! << 16) | (v[3]! << 8) | v[4]!) >>> 0,
    subTlvs: readTlvs(v, 5, v.length, "SSL sub-TLV"),
  };
  for (const t of ssl.subTlvs) {
    if (t.type !== PP2_SUBTYPE_SSL_VERSION) continue;
    if (ssl.version !== undefined) bad("two SSL version sub-TLVs");
    ssl.version = ascii(t.value, "SSL version sub-TLV");
  }
  return ssl;
}

function ascii(v: Uint8Array, what: string): string {
  let s = "";
  for (const c of v) {
    if (c > 0x7f) bad(`${what} is not US-ASCII`);
    s += String.fromCharCode(c);
  }
  return s;
}

function cString(v: Uint8Array): string {
  const nul = v.indexOf(0);
  let s = "";
  for (const c of nul < 0 ? v : v.subarray(0, nul)) s += String.fromCharCode(c);
  return s;
}

// ------------------------------------------------------------------ CRC32C (RFC 4960 appendix B)

const CRC32C_TABLE = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  CRC32C_TABLE[n] = c >>> 0;
}

/** CRC32C (Castagnoli) of bytes, as PP2_TYPE_CRC32C carries it. */
export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC32C_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
