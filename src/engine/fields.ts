// Field lines of a message head (RFC 9110 §5, RFC 9112 §5): parsed in place, each one classified by what the proxy must do with it.
import { equalsIgnoreCase, equalsLower, FIELD_CHAR, TCHAR } from "./chars.ts";
import { type ParseError, parseError } from "./parse-error.ts";

/** What a field means to the proxy. */
export const enum Kind {
  Other = 0,
  Host,
  ContentLength,
  TransferEncoding,
  Connection,
  Upgrade,
  /** Hop-by-hop (RFC 9110 §7.6.1): Keep-Alive, TE, Proxy-Connection, every Proxy-*: never forwarded. */
  HopByHop,
  /** Set by the proxy alone (the stamp, static headers, X-Forwarded-*, Forwarded), and their look-alikes. */
  Protected,
}

const KINDS = new Map<string, Kind>([
  ["host", Kind.Host],
  ["content-length", Kind.ContentLength],
  ["transfer-encoding", Kind.TransferEncoding],
  ["connection", Kind.Connection],
  ["upgrade", Kind.Upgrade],
  ["keep-alive", Kind.HopByHop],
  ["te", Kind.HopByHop],
  ["forwarded", Kind.Protected],
  ["x-forwarded-for", Kind.Protected],
  ["x-forwarded-proto", Kind.Protected],
  ["x-forwarded-host", Kind.Protected],
]);

/** Lower-case names the proxy sets on every request, whatever the tenant: their look-alikes are removed too. */
export const ALWAYS_PROTECTED = ["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];

export function classify(lowerName: string, protectedNames: ReadonlySet<string>): Kind {
  const k = KINDS.get(lowerName);
  if (k !== undefined) return k;
  if (lowerName.startsWith("proxy-")) return Kind.HopByHop;
  if (protectedNames.has(lowerName)) return Kind.Protected;
  // A look-alike: X_Nsproxy_Tenant reads as X-Nsproxy-Tenant to CGI/WSGI-style upstreams (HTTP_X_NSPROXY_TENANT).
  if (lowerName.includes("_")) {
    const dashed = lowerName.replaceAll("_", "-");
    if (protectedNames.has(dashed) || ALWAYS_PROTECTED.includes(dashed)) return Kind.Protected;
  }
  return Kind.Other;
}

/**
 * The fields of a head, as offsets into the head's latin1 string (= byte offsets). Field i occupies
 * [line[i], next[i]) with its value at [vs[i], ve[i]) (OWS trimmed).
 */
export interface Fields {
  count: number;
  line: number[];
  vs: number[];
  ve: number[];
  next: number[];
  kind: Kind[];
  /** Offset of each name's colon. */
  colon: number[];
}

/** A reusable Fields: a connection parses one head at a time, so its arrays need not be made per request. */
export function newFields(): Fields {
  return { count: 0, line: [], vs: [], ve: [], next: [], kind: [], colon: [] };
}

/** A special name and its kind, lower case. */
type Special = readonly [lowerName: string, kind: Kind];

/**
 * The special names of one set of protected names, by length: a field name is classified in place by
 * comparing its bytes with the few names of its length (no lower-case copy per field). Tenants mostly
 * share one set (makeStamp makes one per distinct content), so one table per set.
 */
const specialsCache = new WeakMap<ReadonlySet<string>, Special[][]>();

function specialsByLength(protectedNames: ReadonlySet<string>): Special[][] {
  let t = specialsCache.get(protectedNames);
  if (!t) {
    t = [];
    for (const name of [...KINDS.keys(), ...protectedNames]) {
      const list = (t[name.length] ??= []);
      if (!list.some(([n]) => n === name)) list.push([name, classify(name, protectedNames)]);
    }
    specialsCache.set(protectedNames, t);
  }
  return t;
}

/** The kind of the field name s[p, q), read in place; `underscore`: the name holds a "_" (a possible look-alike). */
function classifyAt(s: string, p: number, q: number, underscore: boolean, specials: Special[][], protectedNames: ReadonlySet<string>): Kind {
  const n = q - p;
  if (n > 6 && equalsLower(s, p, p + 6, "proxy-")) return Kind.HopByHop;
  // Rare: a look-alike is compared in its dashed spelling.
  if (underscore) return classify(s.slice(p, q).toLowerCase(), protectedNames);
  const list = specials[n];
  if (list !== undefined) {
    for (let j = 0; j < list.length; j++) {
      const special = list[j]!;
      if (equalsLower(s, p, q, special[0])) return special[1];
    }
  }
  return Kind.Other;
}

/**
 * Parse field lines from `p` to the empty line that ends the head (the caller found it: `end` is just
 * after it). Every line ends in CRLF (a lone LF was refused by scanHead). Refuses: obs-fold,
 * whitespace before the colon, an empty name, a non-token name, a control byte or lone CR in a value
 * (400), more than `maxFields` fields (431).
 */
export function parseFields(s: string, p: number, end: number, maxFields: number, protectedNames: ReadonlySet<string>, into?: Fields): Fields | ParseError {
  const f: Fields = into ?? newFields();
  f.count = 0;
  const specials = specialsByLength(protectedNames);
  const last = end - 2; // offset of the final empty line's CR
  while (p < last) {
    const c0 = s.charCodeAt(p);
    if (c0 === 0x20 || c0 === 0x09) return parseError(400, "obs-fold or whitespace at the start of a field line", p);
    let q = p;
    let underscore = false;
    for (let c = c0; TCHAR[c]; c = s.charCodeAt(++q)) if (c === 0x5f) underscore = true;
    const cq = s.charCodeAt(q);
    if (cq !== 0x3a /* : */) {
      if (cq === 0x20 || cq === 0x09) return parseError(400, "whitespace between a field name and its colon", q);
      return parseError(400, q === p ? "field line without a name" : "invalid character in a field name", q);
    }
    if (q === p) return parseError(400, "empty field name", q);
    if (f.count === maxFields) return parseError(431, `more than ${maxFields} fields`, p);
    let v = q + 1;
    while (s.charCodeAt(v) === 0x20 || s.charCodeAt(v) === 0x09) v++;
    let e = v;
    let c = s.charCodeAt(e);
    while (FIELD_CHAR[c]) c = s.charCodeAt(++e);
    // The line must end here with CRLF: anything else is a control byte (NUL, lone CR, DEL…).
    if (c !== 0x0d || s.charCodeAt(e + 1) !== 0x0a) return parseError(400, "control character in a field value", e);
    let ve = e;
    while (ve > v && (s.charCodeAt(ve - 1) === 0x20 || s.charCodeAt(ve - 1) === 0x09)) ve--;
    const i = f.count++;
    f.line[i] = p;
    f.vs[i] = v;
    f.ve[i] = ve;
    f.next[i] = e + 2;
    f.colon[i] = q;
    f.kind[i] = classifyAt(s, p, q, underscore, specials, protectedNames);
    p = e + 2;
  }
  return f;
}

// List values (RFC 9110 §5.6.1) are walked in place, element by element, with no callback and no copy:
// `for (let a = vs; a <= ve; a = comma + 1)`, the element being s[owsEnd(s, a, comma), owsStart(s, …, comma))
// with comma = listComma(s, a, ve). Empty elements are visited too ("a,,b" has three).

/** Offset of the first comma in s[a, end), or `end`. */
function listComma(s: string, a: number, end: number): number {
  while (a < end && s.charCodeAt(a) !== 0x2c) a++;
  return a;
}

/** Past the OWS that begins s[a, b). */
function owsEnd(s: string, a: number, b: number): number {
  while (a < b && (s.charCodeAt(a) === 0x20 || s.charCodeAt(a) === 0x09)) a++;
  return a;
}

/** Where the OWS that ends s[a, b) begins. */
function owsStart(s: string, a: number, b: number): number {
  while (b > a && (s.charCodeAt(b - 1) === 0x20 || s.charCodeAt(b - 1) === 0x09)) b--;
  return b;
}

/** Connection options (RFC 9110 §7.6.1), as bits. */
export const CONN_CLOSE = 1;
export const CONN_KEEP_ALIVE = 2;
export const CONN_UPGRADE = 4;

/**
 * Read every Connection field: returns its close / keep-alive / upgrade options as CONN_* bits, and marks
 * the fields named by its other options hop-by-hop, except those that frame the message or route it
 * (Host, Content-Length, Transfer-Encoding): "Connection: Content-Length" must never make the proxy drop
 * the length the upstream needs to find the end of the body.
 */
export function applyConnection(s: string, f: Fields): number {
  let options = 0;
  for (let i = 0; i < f.count; i++) {
    if (f.kind[i] !== Kind.Connection) continue;
    const ve = f.ve[i]!;
    for (let a = f.vs[i]!, comma = 0; a <= ve; a = comma + 1) {
      comma = listComma(s, a, ve);
      const x = owsEnd(s, a, comma);
      const y = owsStart(s, x, comma);
      if (x === y) continue;
      if (equalsLower(s, x, y, "close")) options |= CONN_CLOSE;
      else if (equalsLower(s, x, y, "keep-alive")) options |= CONN_KEEP_ALIVE;
      else if (equalsLower(s, x, y, "upgrade")) options |= CONN_UPGRADE;
      else markNamed(s, f, x, y);
    }
  }
  return options;
}

/** Mark hop-by-hop the fields whose name is s[a, b) in any case (but never Host, Content-Length, Transfer-Encoding). */
function markNamed(s: string, f: Fields, a: number, b: number): void {
  for (let i = 0; i < f.count; i++) {
    const k = f.kind[i]!;
    if (k === Kind.Host || k === Kind.ContentLength || k === Kind.TransferEncoding) continue;
    if (equalsIgnoreCase(s, f.line[i]!, f.colon[i]!, a, b)) f.kind[i] = Kind.HopByHop;
  }
}

export interface Framing {
  /** "none": no body; "length": contentLength bytes; "chunked": chunked coding to its last chunk; "close": until the connection closes (responses only). */
  readonly body: "none" | "length" | "chunked" | "close";
  readonly contentLength: number;
}

// The framings with no length of their own, made once rather than per message.
export const NO_BODY: Framing = { body: "none", contentLength: 0 };
export const CHUNKED: Framing = { body: "chunked", contentLength: -1 };
export const TO_CLOSE: Framing = { body: "close", contentLength: -1 };

// What the Transfer-Encoding fields say, as bits (transferCodings).
/** There is a Transfer-Encoding field. */
export const TE_PRESENT = 1;
/** chunked is the final coding, and listed once: it frames the body. */
export const TE_CHUNKED = 2;
/** chunked appears somewhere. */
export const TE_HAS_CHUNKED = 4;
/** A coding other than chunked (the proxy cannot undo it for an HTTP/1.0 client; a request with one is refused: the upstream may not know it, and read the body as the next request). */
export const TE_OTHER = 8;
/** An empty element, a coding that is not a token, or chunked twice. */
export const TE_MALFORMED = 16;

/** The Transfer-Encoding fields' codings, as TE_* bits. */
export function transferCodings(s: string, f: Fields): number {
  let bits = 0;
  let lastChunked = false;
  let chunkedSeen = false;
  for (let i = 0; i < f.count; i++) {
    if (f.kind[i] !== Kind.TransferEncoding) continue;
    bits |= TE_PRESENT;
    const ve = f.ve[i]!;
    for (let a = f.vs[i]!, comma = 0; a <= ve; a = comma + 1) {
      comma = listComma(s, a, ve);
      const x = owsEnd(s, a, comma);
      const y = owsStart(s, x, comma);
      if (x === y) {
        bits |= TE_MALFORMED;
        continue;
      }
      for (let j = x; j < y; j++) if (!TCHAR[s.charCodeAt(j)]) bits |= TE_MALFORMED;
      lastChunked = equalsLower(s, x, y, "chunked");
      if (!lastChunked) bits |= TE_OTHER;
      else if (chunkedSeen) bits |= TE_MALFORMED;
      else chunkedSeen = true;
    }
  }
  if (chunkedSeen) bits |= TE_HAS_CHUNKED;
  if (lastChunked) bits |= TE_CHUNKED;
  return bits;
}

/** Content-Length values: undefined when absent; -1 when invalid (not digits, too large); -2 when several fields or a list. */
export function contentLength(s: string, f: Fields, allowEqualDuplicates: boolean): number | undefined {
  let value: number | undefined;
  for (let i = 0; i < f.count; i++) {
    if (f.kind[i] !== Kind.ContentLength) continue;
    let bad = false;
    let elements = 0;
    const ve = f.ve[i]!;
    for (let a = f.vs[i]!, comma = 0; a <= ve; a = comma + 1) {
      comma = listComma(s, a, ve);
      const x = owsEnd(s, a, comma);
      elements++;
      const n = digits(s, x, owsStart(s, x, comma));
      if (n < 0) bad = true;
      else if (value === undefined) value = n;
      else if (value !== n || !allowEqualDuplicates) bad = true;
    }
    if (bad) return value === undefined ? -1 : -2;
    if (elements > 1 && !allowEqualDuplicates) return -2;
  }
  return value;
}

/** A non-negative decimal of 1..15 digits, else -1 (15 digits stay exact in a double). */
function digits(s: string, a: number, b: number): number {
  if (a === b || b - a > 15) return -1;
  let n = 0;
  for (let i = a; i < b; i++) {
    const d = s.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}
