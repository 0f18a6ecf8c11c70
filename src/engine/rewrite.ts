// The only changes the proxy makes to a message head: the request line and fields are copied byte for byte, minus hop-by-hop and protected fields, plus the stamp.
import { Kind } from "./fields.ts";
import type { RequestHead } from "./request-head.ts";
import type { ResponseHead } from "./response-head.ts";

/** One tenant's fixed part of every upstream request, prepared once per tenant spec. */
export interface Stamp {
  /** "<tenant header>: <name>\r\n" + static headers + "X-Forwarded-Proto: http\r\n", as bytes. */
  block: Uint8Array;
  /** Lower-case names of the fields the proxy alone sets for this tenant. */
  protectedNames: ReadonlySet<string>;
  /** Upstream path prefix ("" for none): "/x?q" goes to "/prefix/x?q". */
  prefix: string;
}

export function makeStamp(tenantHeader: string, tenant: string, headers: Record<string, string>, prefix: string, proto = "http"): Stamp {
  let text = "";
  const names = new Set<string>([tenantHeader.toLowerCase()]);
  for (const [k, v] of Object.entries(headers)) {
    text += `${k}: ${v}\r\n`;
    names.add(k.toLowerCase());
  }
  text += `${tenantHeader}: ${tenant}\r\nX-Forwarded-Proto: ${proto}\r\n`;
  return { block: latin1(text), protectedNames: names, prefix };
}

function latin1(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

function put(out: Uint8Array, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) out[at + i] = text.charCodeAt(i);
  return at + text.length;
}

/** Copies the runs of kept fields; returns the new write offset. */
function copyFields(out: Uint8Array, at: number, buf: Uint8Array, line: number[], next: number[], keep: boolean[]): number {
  let i = 0;
  const n = keep.length;
  while (i < n) {
    if (!keep[i]) {
      i++;
      continue;
    }
    const from = line[i]!;
    while (i + 1 < n && keep[i + 1]) i++;
    const to = next[i]!;
    out.set(buf.subarray(from, to), at);
    at += to - from;
    i++;
  }
  return at;
}

function keptLength(line: number[], next: number[], keep: boolean[]): number {
  let n = 0;
  for (let i = 0; i < keep.length; i++) if (keep[i]) n += next[i]! - line[i]!;
  return n;
}

/**
 * The upstream request head: request line (copied, or rebuilt with the path when the target was
 * absolute-form or the upstream has a prefix), the client's fields in order minus Connection, the
 * fields it names, Keep-Alive, TE, Proxy-*, Upgrade (unless upgrading) and every protected field and
 * look-alike; then the stamp, X-Forwarded-For and X-Forwarded-Host.
 */
export function upstreamRequestHead(buf: Uint8Array, head: RequestHead, stamp: Stamp, clientAddress: string): Uint8Array {
  const f = head.fields;
  const keep: boolean[] = new Array(f.count);
  for (let i = 0; i < f.count; i++) {
    const k = f.kind[i];
    keep[i] = k === Kind.Other || k === Kind.Host || k === Kind.ContentLength || k === Kind.TransferEncoding || (k === Kind.Upgrade && head.upgrade);
  }
  const line = head.originForm && stamp.prefix === "" ? undefined : `${head.method} ${stamp.prefix}${head.path === "*" && stamp.prefix ? "" : head.path} HTTP/1.${head.minor}\r\n`;
  const lineLength = line === undefined ? head.lineNext - head.lineStart : line.length;
  const conn = head.upgrade ? "Connection: upgrade\r\n" : "";
  const xff = `X-Forwarded-For: ${clientAddress}\r\n`;
  const hostLen = head.host >= 0 ? f.ve[head.host]! - f.vs[head.host]! : -1;
  const total = lineLength + keptLength(f.line, f.next, keep) + conn.length + stamp.block.length + xff.length + (hostLen >= 0 ? 20 + hostLen : 0) + 2;
  const out = new Uint8Array(total);
  let at = 0;
  if (line === undefined) {
    out.set(buf.subarray(head.lineStart, head.lineNext), 0);
    at = lineLength;
  } else at = put(out, 0, line);
  at = copyFields(out, at, buf, f.line, f.next, keep);
  at = put(out, at, conn);
  out.set(stamp.block, at);
  at += stamp.block.length;
  at = put(out, at, xff);
  if (hostLen >= 0) {
    at = put(out, at, "X-Forwarded-Host: ");
    out.set(buf.subarray(f.vs[head.host]!, f.ve[head.host]!), at);
    at = put(out, at + hostLen, "\r\n");
  }
  put(out, at, "\r\n");
  return out;
}

/**
 * The head sent to the client: status line and fields as received, minus hop-by-hop fields (and a
 * Content-Length beside Transfer-Encoding), plus the proxy's own Connection field (`connection`,
 * "" for none) describing the client connection.
 */
export function clientResponseHead(buf: Uint8Array, head: ResponseHead, connection: string): Uint8Array {
  const f = head.fields;
  const keep: boolean[] = new Array(f.count);
  for (let i = 0; i < f.count; i++) {
    const k = f.kind[i];
    keep[i] =
      k === Kind.Other ||
      k === Kind.Protected ||
      k === Kind.Host ||
      k === Kind.TransferEncoding ||
      (k === Kind.ContentLength && !head.dropLength) ||
      (k === Kind.Upgrade && head.status === 101);
  }
  const extra = connection ? `Connection: ${connection}\r\n` : "";
  const out = new Uint8Array(head.lineNext + keptLength(f.line, f.next, keep) + extra.length + 2);
  out.set(buf.subarray(0, head.lineNext), 0);
  let at = copyFields(out, head.lineNext, buf, f.line, f.next, keep);
  at = put(out, at, extra);
  put(out, at, "\r\n");
  return out;
}

/** A response nsproxy writes itself: short plain text, never runtime internals, and the connection closes. */
export function plainResponse(status: number, text: string, minor = 1): Uint8Array {
  const body = `${text}\n`;
  return latin1(
    `HTTP/1.${minor} ${status} ${REASONS[status] ?? "Error"}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
}

const REASONS: Record<number, string> = {
  400: "Bad Request",
  405: "Method Not Allowed",
  408: "Request Timeout",
  414: "URI Too Long",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};
