// The server name a TLS client asks for, read from its ClientHello without terminating TLS: what an sni:// ingress
// listener routes by. Strict and pure: every length is checked against its container, nothing is read out of
// bounds, nothing throws. No runtime imports.
//
// What is read (RFC 8446 §5.1, §4.1.2, §4.2; RFC 5246 §7.4.1.2; RFC 6066 §3):
//   records       type 22 (handshake), version 0x03xx, length 1..2^14; the ClientHello may span several consecutive
//                 records (even its 4-byte handshake header) and must end exactly where its last record ends
//                 (RFC 8446 §5.1: a ClientHello is aligned with a record boundary). Bytes after that record (early
//                 data, a ChangeCipherSpec) are not looked at.
//   handshake     type 1 (client_hello), 24-bit length
//   ClientHello   legacy_version 0x03xx, random (32), session id (≤ 32), cipher suites (even, non-empty),
//                 compression methods (non-empty), then either nothing (no extensions: "none") or an extensions block
//                 that fills the message exactly; every extension within it, no extension type twice (RFC 8446 §4.2)
//   server_name   a non-empty ServerNameList filling the extension exactly; entries are name_type + 16-bit length
//                 (RFC 6066's only type, host_name = 0, and the RFC 3546 encoding for any other type, which is
//                 skipped); at most one host_name. No host_name entry → "none".
//   host_name     a DNS name (hostNameProblem: letters, digits, "-", ".", labels 1..63, ≤ 253 bytes), lower-cased.
//                 One trailing dot, which RFC 6066 forbids but a few clients have sent, is dropped: the name routes
//                 as the Host header "acme.example.com." does.
//
// An IP literal in host_name is "invalid", not "none": RFC 6066 §3 forbids it, clients that follow the RFC send no
// server_name at all when they connect to an address (openssl s_client and curl both do), and no ingress pattern can
// name an address, so such a hello could never be routed anyway.
import { join } from "./bytes.ts";
import { hostNameProblem } from "./host-router.ts";
import { type ParseError, parseError } from "./parse-error.ts";

export type SniResult =
  /** Not enough bytes yet: call again with the whole buffer once more has arrived. */
  | { kind: "more" }
  /** The host_name, lower case, no trailing dot. */
  | { kind: "found"; name: string }
  /** A valid ClientHello without server_name, or with only non-host_name entries. */
  | { kind: "none" }
  /** Not TLS, not a ClientHello, malformed, SSLv2, a bad name, or no complete ClientHello within maxBytes (status 400). */
  | Invalid;

export type Invalid = { kind: "invalid" } & ParseError;

const REC_HEADER = 5;
const HS_HEADER = 4;
const MAX_FRAGMENT = 1 << 14;
const HANDSHAKE = 22;
const CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const HOST_NAME = 0;

const MORE: SniResult = Object.freeze({ kind: "more" });
const NONE: SniResult = Object.freeze({ kind: "none" });
/** `offset`: into the buffer given to sniOf (parseClientHello's are into the message, and moved there by sniOf). */
const invalid = (reason: string, offset: number): Invalid => ({ kind: "invalid", ...parseError(400, reason, offset) });
const hex2 = (b: number) => `0x${b.toString(16).padStart(2, "0")}`;
const u16 = (b: Uint8Array, i: number) => (b[i]! << 8) | b[i + 1]!;

/**
 * The server name in the ClientHello at the start of `buf`, which holds every byte received on the connection so far.
 * Only the first `maxBytes` bytes are looked at: a ClientHello not complete within them is invalid (the caller buffers
 * at most that much), and one whose declared length cannot fit is invalid as soon as its header is seen.
 */
export function sniOf(buf: Uint8Array, maxBytes = 16384): SniResult {
  const end = Math.min(buf.length, maxBytes);
  const incomplete = () => (buf.length >= maxBytes ? invalid(`no complete ClientHello in the first ${maxBytes} bytes`, end) : MORE);
  if (end === 0) return incomplete();
  const b0 = buf[0]!;
  if (b0 & 0x80) return invalid("an SSLv2-style record header (SSLv2 and SSLv2-compatible hellos are not supported)", 0);
  if (b0 !== HANDSHAKE) {
    const text = b0 >= 0x41 && b0 <= 0x5a ? ` (${JSON.stringify(String.fromCharCode(b0))}: plain text, HTTP on a TLS listener?)` : "";
    return invalid(`first byte ${hex2(b0)}${text} is not a TLS handshake record (0x16)`, 0);
  }

  // Walk the records, gathering the handshake bytes. Usually the ClientHello fits in the first record and is parsed in
  // place; when it spans records its fragments are joined once it is complete.
  const frags: Uint8Array[] = [];
  let have = 0; // handshake bytes gathered
  let need = -1; // HS_HEADER + message length, once the header is known
  for (let off = 0; ; ) {
    if (off >= end) return incomplete();
    const type = buf[off]!;
    if (type !== HANDSHAKE) return invalid(`record type ${type} at byte ${off} inside the ClientHello (only handshake records, 22)`, off);
    if (off + 1 < end && buf[off + 1] !== 3) return invalid(`record version ${hex2(buf[off + 1]!)}.. at byte ${off} is not TLS (0x03..)`, off + 1);
    if (off + REC_HEADER > end) return incomplete();
    const len = u16(buf, off + 3);
    if (len === 0) return invalid(`empty handshake record at byte ${off}`, off + 3);
    if (len > MAX_FRAGMENT) return invalid(`record length ${len} at byte ${off} is over ${MAX_FRAGMENT}`, off + 3);
    const start = off + REC_HEADER;
    const recEnd = start + len;
    const got = Math.min(recEnd, end) - start;
    frags.push(buf.subarray(start, start + got));
    have += got;

    if (need < 0 && have >= 1 && hsByte(frags, 0) !== CLIENT_HELLO) return invalid(`handshake type ${hsByte(frags, 0)} is not a ClientHello (1)`, REC_HEADER);
    if (need < 0 && have >= HS_HEADER) {
      need = HS_HEADER + ((hsByte(frags, 1) << 16) | (hsByte(frags, 2) << 8) | hsByte(frags, 3));
      if (REC_HEADER + need > maxBytes) return invalid(`ClientHello of ${need - HS_HEADER} bytes cannot fit in ${maxBytes}`, REC_HEADER + 1);
    }
    if (need >= 0 && have >= need) {
      if (have > need || recEnd > start + got) return invalid(`the ClientHello ends before its record does (RFC 8446 §5.1)`, start + need - (have - got));
      const msg = frags.length === 1 ? frags[0]!.subarray(HS_HEADER, need) : join(frags, need).subarray(HS_HEADER);
      const r = parseClientHello(msg);
      if (r.kind === "invalid") r.offset = bufferOffset(buf, frags, HS_HEADER + r.offset);
      return r;
    }
    if (recEnd > end) return incomplete();
    off = recEnd;
  }
}

/** Byte `i` of the handshake stream split into `frags`. */
function hsByte(frags: Uint8Array[], i: number): number {
  for (const f of frags) {
    if (i < f.length) return f[i]!;
    i -= f.length;
  }
  return -1;
}

/** Where byte `i` of the handshake stream split into `frags` (views of `buf`) is in `buf`. */
function bufferOffset(buf: Uint8Array, frags: Uint8Array[], i: number): number {
  let f = frags[0]!;
  for (f of frags) {
    if (i < f.length) break;
    i -= f.length;
  }
  return f.byteOffset - buf.byteOffset + i;
}

/** The ClientHello body (after the 4-byte handshake header), complete. */
function parseClientHello(m: Uint8Array): SniResult {
  const n = m.length;
  if (n < 2 + 32 + 1) return invalid(`ClientHello of ${n} bytes is shorter than its version, random and session id`, n);
  if (m[0] !== 3) return invalid(`ClientHello version ${hex2(m[0]!)}${hex2(m[1]!).slice(2)} is not TLS (0x03..)`, 0);
  let p = 34;
  const sid = m[p++]!;
  if (sid > 32) return invalid(`session id length ${sid} is over 32`, 34);
  p += sid;
  if (p + 2 > n) return invalid("ClientHello ends before its cipher suites", n);
  const cs = u16(m, p);
  p += 2;
  if (cs === 0 || cs % 2 !== 0) return invalid(`cipher suites length ${cs} is not a non-zero even number`, p - 2);
  if (p + cs > n) return invalid(`cipher suites length ${cs} runs past the ClientHello`, p - 2);
  p += cs;
  if (p + 1 > n) return invalid("ClientHello ends before its compression methods", n);
  const cm = m[p++]!;
  if (cm === 0) return invalid("no compression methods", p - 1);
  if (p + cm > n) return invalid(`compression methods length ${cm} runs past the ClientHello`, p - 1);
  p += cm;
  if (p === n) return NONE; // no extensions at all (TLS 1.2 and older allow it)
  if (p + 2 > n) return invalid("one stray byte where the extensions length belongs", p);
  const total = u16(m, p);
  p += 2;
  if (p + total !== n) return invalid(`extensions length ${total}, but ${n - p} bytes follow in the ClientHello`, p - 2);

  const seen = new Set<number>();
  let result = NONE;
  while (p < n) {
    if (p + 4 > n) return invalid("an extension header cut short by the end of the extensions", p);
    const type = u16(m, p);
    const len = u16(m, p + 2);
    p += 4;
    if (p + len > n) return invalid(`extension ${type} length ${len} runs past the extensions`, p - 2);
    if (seen.has(type)) return invalid(`extension ${type} appears twice`, p - 4);
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      result = serverName(m, p, p + len);
      if (result.kind === "invalid") return result;
    }
    p += len;
  }
  return result;
}

/** The server_name extension's data, m[p, end). */
function serverName(m: Uint8Array, p: number, end: number): SniResult {
  if (end - p < 2) return invalid("server_name extension too short for its list length", p);
  const list = u16(m, p);
  p += 2;
  if (list === 0) return invalid("empty server_name list", p - 2);
  if (p + list !== end) return invalid(`server_name list length ${list}, but the extension holds ${end - p} bytes`, p - 2);
  let found: SniResult = NONE;
  while (p < end) {
    if (p + 3 > end) return invalid("a server_name entry cut short by the end of its list", p);
    const type = m[p]!;
    const len = u16(m, p + 1);
    p += 3;
    if (p + len > end) return invalid(`server_name entry length ${len} runs past its list`, p - 2);
    if (type === HOST_NAME) {
      if (found.kind === "found") return invalid("two host_name entries in server_name", p - 3);
      found = hostName(m, p, len);
      if (found.kind === "invalid") return found;
    }
    p += len;
  }
  return found;
}

function hostName(m: Uint8Array, p: number, len: number): SniResult {
  if (len === 0) return invalid("empty host_name", p);
  if (len > 254) return invalid(`host_name of ${len} bytes is longer than 253`, p);
  let name = "";
  for (let i = 0; i < len; i++) name += String.fromCharCode(m[p + i]!);
  const shown = JSON.stringify(name);
  if (name.endsWith(".")) name = name.slice(0, -1);
  const problem = hostNameProblem(name);
  if (problem !== undefined) return invalid(`server name ${shown}: ${problem}`, p);
  return { kind: "found", name: name.toLowerCase() };
}
