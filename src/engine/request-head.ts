// Strict request head parser (RFC 9112 §3, §6; RFC 9110 §7.2): one pass over the head, framing decided once, refusals as values.
import { TARGET_CHAR, TCHAR } from "./chars.ts";
import { applyConnection, CHUNKED, CONN_CLOSE, CONN_KEEP_ALIVE, CONN_UPGRADE, contentLength, type Fields, type Framing, Kind, newFields, NO_BODY, parseFields, TE_CHUNKED, TE_MALFORMED, TE_OTHER, TE_PRESENT, transferCodings } from "./fields.ts";
import { isParseError, type ParseError, parseError as refuse } from "./parse-error.ts";

export interface RequestLimits {
  maxHeaders: number;
  maxTargetBytes: number;
}

export interface RequestHead {
  method: string;
  /** The request target exactly as written. */
  target: string;
  /** What goes upstream: the target itself (origin-form, "*") or the path and query of an absolute-form target. */
  path: string;
  /** The request target was origin-form: the request line can be copied as it is. */
  originForm: boolean;
  /** HTTP/1.<minor>: 0 or 1. */
  minor: number;
  /** Offset of the request line (after any leading empty lines) and just past its CRLF. */
  lineStart: number;
  lineNext: number;
  fields: Fields;
  /** Index of the Host field, -1 when absent (HTTP/1.0). */
  host: number;
  framing: Framing;
  /** The client wants the connection kept after this exchange (RFC 9112 §9.3). */
  keepAlive: boolean;
  /** An HTTP/1.1 request with Upgrade and "Connection: upgrade": may become a tunnel after a 101. */
  upgrade: boolean;
}

const HTTP_SLASH = "HTTP/";

/**
 * Parse the head in `s` (latin1, one char per byte) that ends at `end` (just past CRLF CRLF). A request
 * the proxy will not forward is a ParseError: answered with its status, and the connection closed.
 * `protectedNames`: lower-case names only the proxy may set for this tenant. `into`: a head to fill
 * (newRequestHead), its field table included.
 */
export function parseRequestHead(s: string, end: number, limits: RequestLimits, protectedNames: ReadonlySet<string>, into?: RequestHead): RequestHead | ParseError {
  let p = 0;
  while (s.charCodeAt(p) === 0x0d && s.charCodeAt(p + 1) === 0x0a) p += 2; // RFC 9112 §2.2: empty lines before the request line
  const lineStart = p;

  // method SP request-target SP HTTP-version CRLF, single spaces (RFC 9112 §3).
  while (TCHAR[s.charCodeAt(p)]) p++;
  if (p === lineStart) return refuse(400, "invalid method", p);
  const method = methodAt(s, lineStart, p);
  if (s.charCodeAt(p) !== 0x20) return refuse(400, "invalid character in the method", p);
  const ts = ++p;
  while (TARGET_CHAR[s.charCodeAt(p)]) p++;
  if (p === ts) return refuse(400, "empty request target", p);
  if (s.charCodeAt(p) !== 0x20) return refuse(400, s.charCodeAt(p) === 0x0d ? "no HTTP version in the request line" : "invalid character in the request target", p);
  if (p - ts > limits.maxTargetBytes) return refuse(414, `request target longer than ${limits.maxTargetBytes} bytes`, ts);
  const target = s.slice(ts, p);
  // A fragment is never part of a request target (RFC 9112 §3.2); parsers disagree on where it ends.
  if (target.includes("#")) return refuse(400, "fragment (#) in the request target", ts + target.indexOf("#"));
  p++;
  if (!s.startsWith(HTTP_SLASH, p)) return refuse(400, "invalid HTTP version", p);
  const major = s.charCodeAt(p + 5) - 0x30;
  const minor = s.charCodeAt(p + 7) - 0x30;
  if (!(major >= 0 && major <= 9 && s.charCodeAt(p + 6) === 0x2e && minor >= 0 && minor <= 9)) return refuse(400, "invalid HTTP version", p);
  if (s.charCodeAt(p + 8) !== 0x0d || s.charCodeAt(p + 9) !== 0x0a) return refuse(400, "invalid character after the HTTP version", p + 8);
  if (major !== 1 || minor > 1) return refuse(505, `HTTP/${major}.${minor} is not supported`, p);
  const lineNext = p + 10;

  const fields = parseFields(s, lineNext, end, limits.maxHeaders, protectedNames, into?.fields);
  if (isParseError(fields)) return fields;

  // Host: exactly one on HTTP/1.1, at most one on 1.0, and a valid uri-host[:port] (RFC 9112 §3.2).
  let host = -1;
  for (let i = 0; i < fields.count; i++) {
    if (fields.kind[i] !== Kind.Host) continue;
    if (host >= 0) return refuse(400, "more than one Host field", fields.line[i]!);
    host = i;
  }
  if (host < 0 && minor === 1) return refuse(400, "no Host field in an HTTP/1.1 request", lineNext);
  if (host >= 0 && !validHost(s, fields.vs[host]!, fields.ve[host]!)) return refuse(400, "invalid Host field value", fields.vs[host]!);

  const framing = requestFraming(s, fields, minor, lineNext);
  if (isParseError(framing)) return framing;

  // Target forms (RFC 9112 §3.2): origin-form; absolute-form (its path goes upstream); "*" for OPTIONS.
  // CONNECT (authority-form) opens a tunnel the proxy does not offer: 405.
  if (method === "CONNECT") return refuse(405, "CONNECT is not supported", lineStart);
  let path = target;
  let originForm = true;
  if (target.charCodeAt(0) !== 0x2f /* / */) {
    if (target === "*") {
      if (method !== "OPTIONS") return refuse(400, "asterisk-form target for a method other than OPTIONS", ts);
    } else {
      const abs = absoluteForm(target);
      if (abs === undefined) return refuse(400, "request target is not origin-form or absolute-form", ts);
      // RFC 9112 §3.2.2: the target's authority is the host. Rather than rewrite Host, nsproxy forwards
      // only requests where the two agree, so the upstream and the proxy cannot see different hosts.
      if (abs.authority.includes("@")) return refuse(400, "userinfo in the request target", ts);
      if (host < 0 || s.slice(fields.vs[host]!, fields.ve[host]!).toLowerCase() !== abs.authority.toLowerCase()) {
        return refuse(400, "Host does not match the authority of an absolute-form target", ts);
      }
      path = abs.path;
      originForm = false;
    }
  }

  const conn = applyConnection(s, fields);
  const keepAlive = (conn & CONN_CLOSE) === 0 && (minor === 1 || (conn & CONN_KEEP_ALIVE) !== 0);
  // An Upgrade in HTTP/1.0 must be ignored (RFC 9110 §7.8); without "Connection: upgrade" it is hop-by-hop only.
  let upgrade = false;
  if (minor === 1 && (conn & CONN_UPGRADE) !== 0) for (let i = 0; i < fields.count; i++) if (fields.kind[i] === Kind.Upgrade) upgrade = true;

  const h = into ?? newRequestHead(fields);
  h.method = method;
  h.target = target;
  h.path = path;
  h.originForm = originForm;
  h.minor = minor;
  h.lineStart = lineStart;
  h.lineNext = lineNext;
  h.host = host;
  h.framing = framing;
  h.keepAlive = keepAlive;
  h.upgrade = upgrade;
  return h;
}

/** A RequestHead to parse into, head after head: a connection handles one request at a time. */
export function newRequestHead(fields = newFields()): RequestHead {
  return { method: "", target: "", path: "", originForm: true, minor: 1, lineStart: 0, lineNext: 0, fields, host: -1, framing: NO_BODY, keepAlive: false, upgrade: false };
}

/** Framing (RFC 9112 §6.1-6.3): anything two parsers could read two ways is refused (at the field section, `lineNext`). */
function requestFraming(s: string, fields: Fields, minor: number, lineNext: number): Framing | ParseError {
  const te = transferCodings(s, fields);
  const cl = contentLength(s, fields, false);
  if (te & TE_PRESENT) {
    if (minor === 0) return refuse(400, "Transfer-Encoding in an HTTP/1.0 request", lineNext);
    if (cl !== undefined) return refuse(400, "both Content-Length and Transfer-Encoding", lineNext);
    if ((te & TE_MALFORMED) !== 0 || (te & TE_CHUNKED) === 0) return refuse(400, "Transfer-Encoding other than a final chunked", lineNext);
    if (te & TE_OTHER) return refuse(501, "transfer coding other than chunked", lineNext);
    return CHUNKED;
  }
  if (cl === undefined) return NO_BODY;
  if (cl === -2) return refuse(400, "several or different Content-Length values", lineNext);
  if (cl < 0) return refuse(400, "invalid Content-Length", lineNext);
  return cl > 0 ? { body: "length", contentLength: cl } : NO_BODY;
}

const ABSOLUTE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/;

/** An absolute-form target's authority and its path and query ("http://h:1/p?q" → "h:1", "/p?q"; "http://h?q" → "h", "/?q"). */
function absoluteForm(target: string): { authority: string; path: string } | undefined {
  const m = ABSOLUTE.exec(target);
  if (!m) return undefined;
  const authority = m[0].slice(m[0].indexOf("//") + 2);
  const rest = target.slice(m[0].length);
  return { authority, path: rest.startsWith("/") ? rest : `/${rest}` };
}

const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|\[v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?$/;

/** The last Host value found valid: keep-alive clients send the same one on every request (compared in place). */
let lastValidHost = "";

/** uri-host [ ":" port ] (RFC 3986 §3.2.2): no spaces, no "@", no "/", no second colon outside brackets. */
function validHost(s: string, a: number, b: number): boolean {
  if (b - a === lastValidHost.length && s.startsWith(lastValidHost, a)) return true;
  const host = s.slice(a, b);
  if (!HOST.test(host)) return false;
  lastValidHost = host;
  return true;
}

/** The usual methods, returned as these strings rather than a new slice per request (methods are case-sensitive). */
const METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"];

function methodAt(s: string, a: number, b: number): string {
  for (let i = 0; i < METHODS.length; i++) {
    const m = METHODS[i]!;
    if (m.length === b - a && s.startsWith(m, a)) return m;
  }
  return s.slice(a, b);
}
