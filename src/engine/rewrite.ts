// The only changes the proxy makes to a message head: the request line and fields are copied byte for byte, minus hop-by-hop and protected fields, plus the stamp.
import { Buffer } from "node:buffer";
import type { ByteWriter } from "./bytes.ts";
import { Kind } from "./fields.ts";
import type { RequestHead } from "./request-head.ts";
import type { ResponseHead } from "./response-head.ts";

/** One tenant's fixed part of every upstream request, prepared once per tenant spec. */
export interface Stamp {
  /** "<static headers><tenant header>: <name>\r\nX-Forwarded-Proto: http\r\n", encoded once (latin1: one byte per char). */
  bytes: Uint8Array;
  /** Lower-case names of the fields the proxy alone sets for this tenant. */
  protectedNames: ReadonlySet<string>;
  /** Upstream path prefix ("" for none): "/x?q" goes to "/prefix/x?q". */
  prefix: string;
}

/** Sets of protected names by content: thousands of tenants with the same header settings share one. */
const namesByContent = new Map<string, ReadonlySet<string>>();

export function makeStamp(tenantHeader: string, tenant: string, headers: Record<string, string>, prefix: string, proto = "http"): Stamp {
  let text = "";
  // A name with "_" is protected in its dashed spelling too: classify() only reads "_" as "-" one way, and a
  // client's X-Plan beside a static X_Plan is one variable to a CGI/WSGI upstream.
  const list: string[] = [];
  for (const k of [tenantHeader, ...Object.keys(headers)]) {
    const lower = k.toLowerCase();
    list.push(lower);
    if (lower.includes("_")) list.push(lower.replaceAll("_", "-"));
  }
  for (const [k, v] of Object.entries(headers)) text += `${k}: ${v}\r\n`;
  text += `${tenantHeader}: ${tenant}\r\nX-Forwarded-Proto: ${proto}\r\n`;
  const key = list.sort().join("\n");
  let names = namesByContent.get(key);
  if (!names) namesByContent.set(key, (names = new Set(list)));
  return { bytes: latin1(text), protectedNames: names, prefix };
}

/** Text the proxy writes itself, as bytes (one per char: heads are read and written as latin1). */
export function latin1(text: string): Uint8Array {
  return Buffer.from(text, "latin1");
}

const CRLF = latin1("\r\n");
const CONNECTION_UPGRADE = latin1("Connection: upgrade\r\n");
const X_FORWARDED_HOST = latin1("X-Forwarded-Host: ");

function keepInRequest(k: Kind | undefined, upgrade: boolean): boolean {
  return k === Kind.Other || k === Kind.Host || k === Kind.ContentLength || k === Kind.TransferEncoding || (k === Kind.Upgrade && upgrade);
}

/**
 * The upstream request head, written with `w` (begun by the caller) and returned as its view: the request
 * line (copied, or rebuilt with the path when the target was absolute-form or the upstream has a prefix),
 * the client's fields in order minus Connection, the fields it names, Keep-Alive, TE, Proxy-*, Upgrade
 * (unless upgrading) and every protected field and look-alike; then the stamp, X-Forwarded-For (`xff`,
 * the whole line, made once per connection) and X-Forwarded-Host. What is kept is copied from the
 * received bytes, head[0] being received[base], in runs of consecutive kept lines.
 */
export function upstreamRequestHead(w: ByteWriter, received: Uint8Array, base: number, head: RequestHead, stamp: Stamp, xff: Uint8Array): Uint8Array {
  const f = head.fields;
  // The run of received bytes not written yet: [from, to).
  let from = head.lineStart;
  let to = head.lineNext;
  if (!head.originForm || stamp.prefix !== "") {
    w.latin1(`${head.method} ${stamp.prefix}${head.path === "*" && stamp.prefix ? "" : head.path} HTTP/1.${head.minor}\r\n`);
    from = to;
  }
  for (let i = 0; i < f.count; i++) {
    if (!keepInRequest(f.kind[i], head.upgrade)) continue;
    if (f.line[i] !== to) {
      if (to > from) w.bytes(received, base + from, base + to);
      from = f.line[i]!;
    }
    to = f.next[i]!;
  }
  if (to > from) w.bytes(received, base + from, base + to);
  if (head.upgrade) w.bytes(CONNECTION_UPGRADE);
  w.bytes(stamp.bytes);
  w.bytes(xff);
  if (head.host >= 0) {
    w.bytes(X_FORWARDED_HOST);
    w.bytes(received, base + f.vs[head.host]!, base + f.ve[head.host]!);
    w.bytes(CRLF);
  }
  w.bytes(CRLF);
  return w.done();
}

function keepInResponse(k: Kind | undefined, head: ResponseHead, http10: boolean): boolean {
  return (
    k === Kind.Other ||
    k === Kind.Protected ||
    k === Kind.Host ||
    (k === Kind.TransferEncoding && !http10) ||
    (k === Kind.ContentLength && !head.dropLength) ||
    (k === Kind.Upgrade && head.status === 101)
  );
}

/**
 * clientResponseHead would send the head as received: nothing to drop, nothing to add. The connection
 * then sends it with the body bytes of the same read, as they came (one write, no view, no join).
 */
export function unchangedResponseHead(head: ResponseHead, connection: string, http10 = false, length = -1): boolean {
  if (connection !== "" || length >= 0) return false;
  const f = head.fields;
  for (let i = 0; i < f.count; i++) if (!keepInResponse(f.kind[i], head, http10)) return false;
  return true;
}

/**
 * The head sent to the client: status line and fields as received, minus hop-by-hop fields (and a
 * Content-Length beside Transfer-Encoding), plus the proxy's own Connection field (`connection`,
 * "" for none) describing the client connection. `received` holds the head's bytes from offset 0, and
 * `s` is that head as latin1.
 *
 * `http10`: the client speaks HTTP/1.0, which has no transfer codings: Transfer-Encoding is never sent
 * to it (RFC 9112 §6.1), and a body the upstream chunked goes de-chunked, with `length` as its
 * Content-Length when known whole (-1: to the close).
 */
export function clientResponseHead(received: Uint8Array, s: string, head: ResponseHead, connection: string, http10 = false, length = -1): Uint8Array {
  const f = head.fields;
  // Nothing to drop and nothing to add: the head goes as it came, a view of the received bytes (no copy).
  if (unchangedResponseHead(head, connection, http10, length)) return received.subarray(0, s.length);
  let out = s.slice(0, head.lineNext);
  let i = 0;
  while (i < f.count) {
    if (!keepInResponse(f.kind[i], head, http10)) {
      i++;
      continue;
    }
    const from = f.line[i]!;
    while (i + 1 < f.count && keepInResponse(f.kind[i + 1], head, http10)) i++;
    out += s.slice(from, f.next[i]!);
    i++;
  }
  if (length >= 0) out += `Content-Length: ${length}\r\n`;
  if (connection) out += `Connection: ${connection}\r\n`;
  return latin1(`${out}\r\n`);
}

/**
 * A response nsproxy writes itself: short plain text, never runtime internals. The connection closes
 * after it, unless `keep` (an upstream failure the client connection is still well framed after).
 */
export function plainResponse(status: number, text: string, minor = 1, keep = false): Uint8Array {
  const body = `${text}\n`;
  const connection = !keep ? "Connection: close\r\n" : minor === 0 ? "Connection: keep-alive\r\n" : "";
  return latin1(
    `HTTP/1.${minor} ${status} ${REASONS[status] ?? "Error"}\r\n${status === 405 ? ALLOW : ""}Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n${connection}\r\n${body}`,
  );
}

/** A 405 must say what is allowed (RFC 9110 §15.5.6): every method but CONNECT goes upstream. */
const ALLOW = "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH\r\n";

const REASONS: Record<number, string> = {
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  414: "URI Too Long",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};
