// Response head parser and framing (RFC 9112 §4, §6.3): what the upstream sends is checked as strictly as what the tenant sends.
import { applyConnection, CHUNKED, CONN_CLOSE, CONN_KEEP_ALIVE, contentLength, type Fields, type Framing, newFields, NO_BODY, parseFields, TE_CHUNKED, TE_HAS_CHUNKED, TE_MALFORMED, TE_PRESENT, TO_CLOSE, transferCodings } from "./fields.ts";
import { isParseError, type ParseError, parseError } from "./parse-error.ts";

export interface ResponseHead {
  status: number;
  minor: number;
  /** Just past the status line's CRLF. */
  lineNext: number;
  fields: Fields;
  framing: Framing;
  /** The framing of a Content-Length, this head's own: filled for each head parsed into it (no object per response). */
  lengthFraming: { body: "length"; contentLength: number };
  /** The upstream keeps the connection open after this response. */
  keepAlive: boolean;
  /** Both Transfer-Encoding and Content-Length: the length is dropped before forwarding (RFC 9112 §6.3). */
  dropLength: boolean;
}

const NO_PROTECTED: ReadonlySet<string> = new Set();

/** What the upstream sent is refused with 502: the client is answered by the proxy, or sees the cut. */
const bad = (reason: string, offset: number): ParseError => parseError(502, reason, offset);

/**
 * `method` of the request being answered decides the body (HEAD, 1xx, 204, 304, 101). A head that
 * cannot be forwarded is a ParseError with status 502. `into` (newResponseHead) is filled and returned
 * instead of a new head, its field table included.
 */
export function parseResponseHead(s: string, end: number, method: string, maxHeaders: number, into?: ResponseHead): ResponseHead | ParseError {
  // HTTP/1.x SP 3DIGIT SP reason CRLF; the reason may be empty (and its space is tolerated missing).
  if (!s.startsWith("HTTP/1.", 0)) return bad("invalid status line", 0);
  const minor = s.charCodeAt(7) - 0x30;
  if (minor !== 0 && minor !== 1) return bad("unsupported HTTP version in the status line", 7);
  if (s.charCodeAt(8) !== 0x20) return bad("invalid status line", 8);
  let status = 0;
  for (let i = 9; i < 12; i++) {
    const d = s.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return bad("invalid status code", i);
    status = status * 10 + d;
  }
  if (status < 100) return bad("invalid status code", 9);
  let p = 12;
  const c = s.charCodeAt(p);
  if (c === 0x20) {
    p++;
    for (let ch = s.charCodeAt(p); ch !== 0x0d; ch = s.charCodeAt(++p)) {
      if ((ch < 0x20 && ch !== 0x09) || ch === 0x7f) return bad("control character in the reason phrase", p);
    }
  } else if (c !== 0x0d) return bad("invalid status line", p);
  if (s.charCodeAt(p + 1) !== 0x0a) return bad("invalid status line", p + 1);
  const lineNext = p + 2;

  const fields = parseFields(s, lineNext, end, maxHeaders, NO_PROTECTED, into?.fields);
  if (isParseError(fields)) return bad(fields.reason, fields.offset);
  const conn = applyConnection(s, fields);

  const te = transferCodings(s, fields);
  // Several Content-Lengths, even equal, are refused as in requests (RFC 9112 §6.3 allows either).
  const cl = contentLength(s, fields, false);
  let framing: Framing;
  let dropLength = false;
  if (method === "HEAD" || status < 200 || status === 204 || status === 304) {
    framing = NO_BODY;
  } else if (te & TE_PRESENT) {
    // A final chunked frames the body; codings without chunked run to the close (RFC 9112 §6.3 rule 4);
    // chunked twice or not last is a framing no two parsers agree on.
    if ((te & TE_HAS_CHUNKED) !== 0 && ((te & TE_MALFORMED) !== 0 || (te & TE_CHUNKED) === 0)) return bad("invalid Transfer-Encoding", lineNext);
    framing = te & TE_CHUNKED ? CHUNKED : TO_CLOSE;
    dropLength = cl !== undefined;
  } else if (cl !== undefined) {
    if (cl < 0) return bad("invalid or several Content-Length values", lineNext);
    framing = cl === 0 ? NO_BODY : lengthFraming(into, cl);
  } else {
    framing = TO_CLOSE;
  }
  const keepAlive = framing.body !== "close" && (conn & CONN_CLOSE) === 0 && (minor === 1 || (conn & CONN_KEEP_ALIVE) !== 0);
  // A 1xx or 204 response has no Content-Length (RFC 9110 §8.6): drop one the upstream sent.
  if (status < 200 || status === 204) dropLength = true;
  const h = into ?? newResponseHead(fields);
  h.status = status;
  h.minor = minor;
  h.lineNext = lineNext;
  h.framing = framing;
  h.keepAlive = keepAlive;
  h.dropLength = dropLength;
  return h;
}

/** Content-Length framing of `cl` bytes: the one `into` owns, set to `cl`, else a new one. */
function lengthFraming(into: ResponseHead | undefined, cl: number): Framing {
  if (into === undefined) return { body: "length", contentLength: cl };
  into.lengthFraming.contentLength = cl;
  return into.lengthFraming;
}

/** A ResponseHead to parse into, head after head: a connection reads one response head at a time. */
export function newResponseHead(fields = newFields()): ResponseHead {
  return { status: 0, minor: 1, lineNext: 0, fields, framing: NO_BODY, lengthFraming: { body: "length", contentLength: 0 }, keepAlive: false, dropLength: false };
}
