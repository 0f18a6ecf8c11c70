// Header rules at the trust boundary: hop-by-hop removal (RFC 9110 §7.6.1) and the tenant stamp the tenant cannot forge.
import type { TenantSpec } from "../config/types.ts";

/** Hop-by-hop fields of RFC 9110 §7.6.1 plus the de-facto ones; Proxy-* are matched by prefix below. */
const HOP_BY_HOP = ["connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"];

const TOKEN = /^[!#$%&'*+\-.0-9A-Z^_`a-z|~]+$/;

/** Fields a Connection header may not remove: Host passes through unchanged whatever the client lists. */
const NOT_HOP_BY_HOP = new Set(["host"]);

/** Remove hop-by-hop fields, the fields the Connection header names, and every Proxy-* field. */
export function stripHopByHop(headers: Headers): void {
  const connection = headers.get("connection");
  if (connection) {
    for (const name of connection.split(",")) {
      const n = name.trim();
      if (TOKEN.test(n) && !NOT_HOP_BY_HOP.has(n.toLowerCase())) headers.delete(n);
    }
  }
  for (const name of HOP_BY_HOP) headers.delete(name);
  let proxyNames: string[] | undefined;
  for (const name of headers.keys()) {
    if (name.startsWith("proxy-")) (proxyNames ??= []).push(name);
  }
  if (proxyNames) for (const name of proxyNames) headers.delete(name);
}

export interface ClientInfo {
  /** The client's address as seen inside its namespace. */
  address: string;
}

/**
 * Turn the client's headers into the upstream request's, in place (the incoming request belongs to
 * the proxy; two Headers copies per request were measurable on the hot path). Every copy of the tenant
 * header and of the static headers that the client sent is replaced (Headers is case-insensitive, so
 * one set replaces every spelling). X-Forwarded-* and Forwarded are the proxy's alone: the tenant is
 * the first hop, so nothing it claims about earlier hops can be true.
 */
export function upstreamHeaders(headers: Headers, spec: TenantSpec, client: ClientInfo): Headers {
  const host = headers.get("host");
  stripHopByHop(headers);
  headers.delete("forwarded");
  for (const name in spec.headers) headers.set(name, spec.headers[name]!);
  headers.set(spec.tenantHeader, spec.name);
  headers.set("x-forwarded-for", client.address);
  headers.set("x-forwarded-proto", "http");
  if (host) headers.set("x-forwarded-host", host);
  else headers.delete("x-forwarded-host");
  return headers;
}
