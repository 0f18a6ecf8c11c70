// Character classes of RFC 9110/9112 as lookup tables, and the few byte helpers the parsers share.
import { Buffer } from "node:buffer";

const CR = 13;
const LF = 10;

/** tchar (RFC 9110 §5.6.2): what a method, a field name or a transfer coding may contain. */
export const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

/** field-vchar / SP / HTAB (RFC 9110 §5.5): VCHAR, obs-text, space and tab. No other control byte. */
export const FIELD_CHAR = new Uint8Array(256);
for (let c = 0x20; c <= 0x7e; c++) FIELD_CHAR[c] = 1;
for (let c = 0x80; c <= 0xff; c++) FIELD_CHAR[c] = 1;
FIELD_CHAR[9] = 1;

/** What a request target may hold: visible ASCII only (RFC 3986 plus the bytes browsers send unescaped). */
export const TARGET_CHAR = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) TARGET_CHAR[c] = 1;

export const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[0x41 + c] = 10 + c;
  HEX[0x61 + c] = 10 + c;
}

/** scanHead: the head is not complete yet; scanning may go on from scanResume(from, end) when more bytes come. */
export const HEAD_MORE = -1;
/** scanHead: a LF not preceded by CR: HTTP/1.1 requires CRLF, and a lone LF is where parsers disagree. */
export const HEAD_BARE_LF = -2;

/**
 * Find the end of a message head (the first CRLF CRLF) in buf[from, end), refusing a lone LF on the way:
 * the offset just after its empty line, or HEAD_MORE, or HEAD_BARE_LF (a number, not an object: this
 * runs for every head in both directions). `from` is where the previous call stopped, so a head
 * arriving byte by byte is scanned once; `start` is where this head begins (a pipelined one may begin
 * mid-buffer). Leading empty lines (CRLF) before a request line are allowed (RFC 9112 §2.2) and passed
 * over by the parser.
 */
export function scanHead(buf: Uint8Array, from: number, end: number, start = 0): number {
  // A loop over the bytes, not indexOf per line: heads are short, and each indexOf is a call into the runtime.
  for (let lf = from; lf < end; lf++) {
    if (buf[lf] !== LF) continue;
    if (lf === 0 || buf[lf - 1] !== CR) return HEAD_BARE_LF;
    // CRLF at lf-1; the head ends if the line before it was empty (…CRLF CRLF) and not a leading empty line.
    if (lf >= start + 3 && buf[lf - 2] === LF && buf[lf - 3] === CR && !onlyEmptyLines(buf, start, lf - 3)) return lf + 1;
  }
  return HEAD_MORE;
}

/** After HEAD_MORE for buf[from, end): where the next scan starts (the last 3 bytes may begin the CRLF CRLF). */
export function scanResume(from: number, end: number): number {
  return Math.max(from, end - 3);
}

/** True when buf[start, upto) is nothing but CRLF pairs (empty lines before the request line). */
function onlyEmptyLines(buf: Uint8Array, start: number, upto: number): boolean {
  for (let i = start; i < upto; i += 2) if (buf[i] !== CR || buf[i + 1] !== LF) return false;
  return (upto - start) % 2 === 0;
}

/** ASCII case-insensitive comparison of s[start, end) with a lower-case literal. */
export function equalsLower(s: string, start: number, end: number, lower: string): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    let c = s.charCodeAt(start + i);
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** ASCII case-insensitive comparison of s[a, b) with s[c, d). */
export function equalsIgnoreCase(s: string, a: number, b: number, c: number, d: number): boolean {
  if (b - a !== d - c) return false;
  for (let i = 0; i < b - a; i++) {
    let x = s.charCodeAt(a + i);
    let y = s.charCodeAt(c + i);
    if (x >= 0x41 && x <= 0x5a) x |= 0x20;
    if (y >= 0x41 && y <= 0x5a) y |= 0x20;
    if (x !== y) return false;
  }
  return true;
}

const latin1Slice = (Buffer.prototype as unknown as { latin1Slice(this: Uint8Array, s: number, e: number): string }).latin1Slice;

/** Bytes → string, one char per byte (ISO-8859-1, not windows-1252), so string offsets are byte offsets. */
export function bytesToLatin1(buf: Uint8Array, start: number, end: number): string {
  // Buffer's latin1 is a true 1:1 mapping; TextDecoder("latin1") is windows-1252 and remaps 0x80-0x9F.
  return latin1Slice.call(buf, start, end);
}
