// Parsers and checks for single configuration values, shared by the config file and the command-line flags.
import { isIP } from "node:net";
import { posix } from "node:path";
import { normalizePattern } from "../engine/host-router.ts";
import type { IngressListen, ListenAddr, Upstream } from "./types.ts";

const TENANT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
// RFC 9110 section 5.6.2: token = 1*tchar.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// RFC 9110 section 5.5: visible ASCII, space, tab and obs-text (0x80-0xFF); anything above 0xFF cannot go on the wire.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
// sun_path is 108 bytes including the terminating NUL; a longer path fails only at connect time, so catch it here.
const MAX_UNIX_PATH = 107;
// setTimeout fires at once for delays above 2^31-1 ms instead of waiting, which would turn a long timeout into none.
const MAX_DURATION_MS = 2 ** 31 - 1;

/** Tenant names travel as header values and become file names, hence the narrow alphabet. */
export function isValidTenantName(s: string): boolean {
  return TENANT_NAME.test(s);
}

export function isValidHeaderName(s: string): boolean {
  return TOKEN.test(s);
}

export function isValidHeaderValue(s: string): boolean {
  return FIELD_VALUE.test(s);
}

/**
 * `127.0.0.1:8080`, `[::1]:8080`, `http://ADDR` (the same) or `https://ADDR` (TLS with the tenant's
 * tls_cert); with a scheme the port may be left out (80, 443). Hostnames are refused: a listener binds
 * one address, and DNS inside a tenant is not ours to trust. `schemes`: false where only plain
 * host:port makes sense (the metrics listener).
 */
export function parseListen(text: string, schemes = true): ListenAddr {
  const example = schemes ? 'like "127.0.0.1:8080", "[::1]:8080" or "https://169.254.169.254:443"' : 'like "127.0.0.1:8080" or "[::1]:8080"';
  const scheme = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(text);
  let rest = text;
  let tls = false;
  if (scheme) {
    const s = scheme[1]!.toLowerCase();
    if (!schemes || (s !== "http" && s !== "https")) {
      throw new Error(`listen address ${JSON.stringify(text)}: ${schemes ? `scheme "${scheme[1]}://" is not http:// or https://` : "takes no scheme"}; write it ${example}`);
    }
    tls = s === "https";
    rest = scheme[2]!.replace(/\/$/, "");
    if (rest.includes("/")) throw new Error(`listen address ${JSON.stringify(text)} has a path; a listener takes only an address, ${example}`);
    // The scheme's own port when none is written.
    if (/^[^:[\]]*$/.test(rest) || /^\[[^\]]*\]$/.test(rest)) rest = `${rest}:${tls ? 443 : 80}`;
  }
  const bracketed = /^\[([^\]]*)\]:([^:]*)$/.exec(rest);
  const plain = /^([^:[\]]*):([^:]*)$/.exec(rest);
  const m = bracketed ?? plain;
  if (!m) {
    const hint = isIP(rest) === 6 || rest.split(":").length > 2 ? "; put IPv6 addresses in brackets" : "";
    throw new Error(`listen address ${JSON.stringify(text)} is not HOST:PORT${hint}; write it ${example}`);
  }
  const host = m[1] ?? "";
  const family = bracketed ? 6 : 4;
  if (isIP(host) !== family) {
    const what = family === 6 ? "an IPv6 literal" : "an IPv4 literal (or [IPv6] in brackets)";
    throw new Error(`listen address ${JSON.stringify(text)}: host ${JSON.stringify(host)} is not ${what}; write it ${example}`);
  }
  const out: ListenAddr = { host, port: parsePort(m[2] ?? "", `listen address ${JSON.stringify(text)}`, example), text };
  if (tls) out.tls = true;
  return out;
}

function parsePort(s: string, what: string, example: string): number {
  const port = /^\d{1,5}$/.test(s) ? Number(s) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw new Error(`${what}: port ${JSON.stringify(s)} is not an integer from 1 to 65535; write it ${example}`);
  }
  return port;
}

/** `http://host:port[/prefix]`, `https://host[:port][/prefix]`, `unix:/abs/path.sock[:/prefix]` or `tcp://host:port` (TCP mode). */
export function parseUpstream(text: string): Upstream {
  if (text.startsWith("unix:")) return parseUnixUpstream(text);
  if (/^tcp:\/\//i.test(text)) return parseTcpUpstream(text);
  const example = 'like "http://127.0.0.1:9000", "https://api.internal/v1" or "unix:/run/app.sock:/v1"';
  const bad = (why: string) => new Error(`upstream ${JSON.stringify(text)} ${why}; write it ${example}`);
  // Checked on the raw text because URL() quietly repairs input such as "http:///x" or "http:\\x".
  const m = /^(https?):\/\/([^/?#]*)(.*)$/i.exec(text);
  if (!m) throw bad("is not an http://, https:// or unix: address");
  const authority = m[2] ?? "";
  const rest = m[3] ?? "";
  if (authority.includes("@")) throw bad("contains user information; put credentials in a static header instead");
  if (rest.includes("?") || rest.includes("#")) throw bad("has a query string or fragment, which cannot be a path prefix");
  const hp = /^(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(authority);
  const host = hp?.[1] ?? "";
  if (host === "" || host === "[]") throw bad("has no host");
  if (hp?.[2] !== undefined) parsePort(hp[2], `upstream ${JSON.stringify(text)}`, example);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad("is not a valid URL");
  }
  return { origin: url.origin, prefix: trimPrefix(url.pathname), text };
}

/** `tcp://host:port` (host a name or IP literal, IPv6 in brackets); no path: bytes have no URL. */
function parseTcpUpstream(text: string): Upstream {
  const example = 'like "tcp://127.0.0.1:5432" or "tcp://[::1]:6379"';
  const bad = (why: string) => new Error(`upstream ${JSON.stringify(text)} ${why}; write it ${example}`);
  const m = /^tcp:\/\/(\[[^\]]*\]|[^:/[\]]+):([^/]*)\/?$/i.exec(text);
  if (!m) throw bad("is not tcp://HOST:PORT");
  const host = m[1]!;
  const inner = host.startsWith("[") ? host.slice(1, -1) : host;
  if (host.startsWith("[") && isIP(inner) !== 6) throw bad(`has ${host}, which is not an IPv6 literal`);
  if (!host.startsWith("[") && !/^[A-Za-z0-9.-]+$/.test(host)) throw bad(`has host ${JSON.stringify(host)}, which is neither a name nor an IP address`);
  const port = parsePort(m[2]!, `upstream ${JSON.stringify(text)}`, example);
  return { origin: `tcp://${host.toLowerCase()}:${port}`, prefix: "", text };
}

function parseUnixUpstream(text: string): Upstream {
  const example = 'like "unix:/run/app.sock" or "unix:/run/app.sock:/v1"';
  const bad = (why: string) => new Error(`upstream ${JSON.stringify(text)} ${why}; write it ${example}`);
  const rest = text.slice("unix:".length);
  if (!rest.startsWith("/")) throw bad("needs an absolute socket path after \"unix:\"");
  // nginx's spelling: the prefix starts at the last ":/" after the socket path.
  const cut = rest.lastIndexOf(":/");
  const socket = cut > 0 ? rest.slice(0, cut) : rest;
  const prefix = cut > 0 ? rest.slice(cut + 1) : "";
  if (socket === "/" || socket.endsWith("/")) throw bad("names a directory, not a socket file");
  if (socket.includes("\0")) throw bad("contains a NUL byte");
  if (Buffer.byteLength(socket) > MAX_UNIX_PATH) {
    throw bad(`has a socket path longer than ${MAX_UNIX_PATH} bytes, which the kernel cannot connect to`);
  }
  if (prefix.includes("?") || prefix.includes("#")) throw bad("has a query string or fragment, which cannot be a path prefix");
  return { origin: "http://localhost", prefix: trimPrefix(prefix), unix: socket, text };
}

function trimPrefix(path: string): string {
  return path.replace(/\/+$/, "");
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A number is seconds (TOML `upstream_timeout = 30`); a string carries a unit: "500ms", "1.5s", "2m", "1h". Returns ms. */
export function parseDuration(v: unknown): number {
  const example = 'like 30, "500ms", "1.5s", "2m" or "1h"';
  let ms: number;
  if (typeof v === "number") {
    if (!Number.isFinite(v) || v < 0) throw new Error(`duration ${v} is not a non-negative number of seconds; write it ${example}`);
    ms = v * 1000;
  } else if (typeof v === "string") {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v.trim());
    if (!m) throw new Error(`duration ${JSON.stringify(v)} is not a number with a unit (ms, s, m, h); write it ${example}`);
    ms = Number(m[1]) * (UNIT_MS[m[2] ?? ""] ?? NaN);
  } else {
    throw new Error(`duration ${describe(v)} is neither seconds nor a string with a unit; write it ${example}`);
  }
  ms = Math.round(ms);
  if (ms > MAX_DURATION_MS) throw new Error(`duration ${JSON.stringify(v)} is longer than the maximum of about 24 days (${MAX_DURATION_MS} ms)`);
  return ms;
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return "(an array)";
  if (v !== null && typeof v === "object") return "(a table)";
  return String(v);
}

/**
 * The namespace file a REF names: a bare name is an `ip netns` name under /run/netns; otherwise an absolute path.
 * Only /proc/PID/ns/net is accepted under /proc: other entries are not network namespaces, and /proc/self would be
 * the daemon's own.
 */
export function netnsPath(ref: string): string {
  const example = 'like "acme", "/run/netns/acme" or "/proc/1234/ns/net"';
  if (ref === "") throw new Error(`netns is empty; write it ${example}`);
  if (ref.includes("\0")) throw new Error(`netns ${JSON.stringify(ref)} contains a NUL byte`);
  if (!ref.startsWith("/")) {
    if (ref.includes("/")) throw new Error(`netns ${JSON.stringify(ref)} is a relative path; use an absolute path or a bare name, ${example}`);
    if (ref === "." || ref === "..") throw new Error(`netns ${JSON.stringify(ref)} is not a namespace name; write it ${example}`);
    return `/run/netns/${ref}`;
  }
  const path = posix.normalize(ref);
  if (path === "/" || ref.endsWith("/")) throw new Error(`netns ${JSON.stringify(ref)} names a directory, not a namespace file; write it ${example}`);
  if (path.startsWith("/proc/") && !/^\/proc\/[1-9]\d*\/ns\/net$/.test(path)) {
    throw new Error(`netns ${JSON.stringify(ref)}: only /proc/PID/ns/net is supported under /proc, ${example}`);
  }
  return path;
}

/** A --netns REF: NAME, /abs/path, /proc/PID/ns/net, or TENANT=REF to choose the tenant's name. */
export function parseNetnsRef(ref: string): { name: string; netns: string } {
  const eq = ref.startsWith("/") ? -1 : ref.indexOf("=");
  if (eq >= 0) {
    const name = ref.slice(0, eq);
    const inner = ref.slice(eq + 1);
    if (!isValidTenantName(name)) throw new Error(badTenantName(name, `in ${JSON.stringify(ref)}`));
    if (inner.startsWith("/") || !inner.includes("=")) return { name, netns: netnsPath(inner) };
    throw new Error(`netns ${JSON.stringify(ref)} has more than one "="; write it like "acme=/run/netns/acme"`);
  }
  const netns = netnsPath(ref);
  if (!ref.startsWith("/")) {
    if (!isValidTenantName(ref)) throw new Error(badTenantName(ref, `(from --netns ${JSON.stringify(ref)})`));
    return { name: ref, netns };
  }
  const pid = /^\/proc\/(\d+)\/ns\/net$/.exec(netns);
  const name = pid ? `pid-${pid[1]}` : posix.basename(netns);
  if (!isValidTenantName(name)) {
    throw new Error(`${badTenantName(name, `(the last part of ${JSON.stringify(ref)})`)}; name the tenant yourself: "acme=${ref}"`);
  }
  return { name, netns };
}

/** Shared wording for a rejected tenant name. */
export function badTenantName(name: string, context: string): string {
  return (
    `tenant name ${JSON.stringify(name)} ${context} is not valid: use 1-64 letters, digits, ".", "_" or "-", ` +
    `starting with a letter or digit, like "acme" or "team-1"`
  );
}

// Fields only the proxy may set, compared as a header key (below). Hop-by-hop fields (RFC 9110 section 7.6.1) are
// stripped on the way and framing is computed per message, so a static one would be lost or corrupt the request;
// the rest the proxy writes itself, and a second copy beside its own is one the upstream may believe.
const MANAGED = new Map<string, string>([
  ["host", "the client's own Host is forwarded and the upstream routes on it; a second one is a request smuggled past it"],
  ["content-length", "it frames the message and is computed per request"],
  ["transfer-encoding", "it frames the message and is computed per request"],
  ["connection", "it is hop-by-hop: the proxy sets it per connection"],
  ["keep-alive", "it is hop-by-hop: the proxy sets it per connection"],
  ["te", "it is hop-by-hop: the proxy sets it per connection"],
  ["trailer", "it is hop-by-hop: the proxy sets it per connection"],
  ["upgrade", "it is hop-by-hop: the proxy sets it per connection"],
  ["forwarded", "the proxy sets forwarding fields from the connection itself"],
]);
const MANAGED_PREFIXES: [prefix: string, why: string][] = [
  ["proxy-", "Proxy-* fields are hop-by-hop: the proxy strips them"],
  ["x-forwarded-", "the proxy sets X-Forwarded-* from the connection itself"],
];
/** Bytes of one tenant's static header lines ("Name: value\r\n" each): they go on every request, inside the upstream's own head limit. */
export const MAX_STATIC_HEADER_BYTES = 8192;

/**
 * A header name as an upstream may read it: any case, and "_" as "-" (CGI and WSGI turn both X-A and X_A into
 * HTTP_X_A, so the second is a look-alike of the first). Two names with one key are one header to such an upstream.
 */
export function headerKey(name: string): string {
  return name.toLowerCase().replaceAll("_", "-");
}

/** Why the proxy keeps a header key to itself, or undefined when a tenant may set it. */
function managedWhy(key: string): string | undefined {
  return MANAGED.get(key) ?? MANAGED_PREFIXES.find(([p]) => key.startsWith(p))?.[1];
}

/**
 * Checks a header name set in the config or an admin request: a token, and neither a field the proxy manages
 * (Host, framing, hop-by-hop, Forwarded, X-Forwarded-*) nor a look-alike of one. Whether a static header collides with
 * the tenant header is checked once both are known (config/load.ts).
 */
export function checkHeaderName(name: string, role: "tenant_header" | "static header"): string {
  if (!isValidHeaderName(name)) {
    throw new Error(`${role} ${JSON.stringify(name)} is not a valid header name (letters, digits and !#$%&'*+-.^_\`|~), like "X-Nsproxy-Tenant"`);
  }
  const key = headerKey(name);
  const why = managedWhy(key);
  if (why !== undefined) {
    const alike = key !== name.toLowerCase() ? ` (an upstream reads "_" as "-": it is ${JSON.stringify(key)})` : "";
    throw new Error(`${role} ${JSON.stringify(name)}${alike} is a header the proxy manages itself: ${why}; choose another name, like ${role === "tenant_header" ? '"X-Nsproxy-Tenant"' : '"X-Plan"'}`);
  }
  return name;
}

/** An ingress listener: `ADDR` or `http://ADDR` (HTTP routed by Host), `sni://ADDR` (TLS routed by SNI, not terminated). */
export function parseIngressListen(text: string): IngressListen {
  const sni = /^sni:\/\//i.exec(text);
  if (sni) {
    const rest = text.slice(sni[0].length);
    const addr = parseListen(rest, false);
    return { ...addr, text, kind: "sni" };
  }
  if (/^https:\/\//i.test(text)) {
    throw new Error(`ingress listener ${JSON.stringify(text)}: ingress does not terminate TLS; use "sni://ADDR" to route TLS by server name to the tenant's own TLS service`);
  }
  const addr = parseListen(text);
  return { host: addr.host, port: addr.port, text, kind: "http" };
}

/** ingress_backend / ingress_tls_backend: an IP literal and port inside the tenant's namespace. */
export function parseBackend(text: string, key: string): ListenAddr {
  if (/^[a-z]+:\/\//i.test(text)) throw new Error(`${key} ${JSON.stringify(text)} takes an address inside the tenant's namespace, like "127.0.0.1:3000", without a scheme`);
  const a = parseListen(text, false);
  return { host: a.host, port: a.port, text };
}

/** mode = "http" (default) or "tcp". */
export function parseMode(v: unknown): "http" | "tcp" {
  if (v === "http" || v === "tcp") return v;
  throw new Error(`mode ${JSON.stringify(v)} is not "http" or "tcp"`);
}

/** upstream_proxy_protocol = "v2" (or "none", to turn off what [defaults] turned on). */
export function parseProxyProtocol(v: unknown): "v2" | "none" {
  if (v === "v2" || v === "none") return v;
  const hint = v === "v1" || v === 1 ? " (the text version 1 is not offered: v2 carries the namespace TLV)" : "";
  throw new Error(`upstream_proxy_protocol ${JSON.stringify(v)} is not "v2" or "none"${hint}`);
}

/**
 * A certificate, key or CA file: an absolute path; `{tenant}` stands for the tenant's name (so one line
 * serves every tenant). `key` names the setting in messages.
 */
export function parseTlsPath(v: unknown, key: string, template: boolean): string {
  const example = template ? '"/etc/nsproxy/certs/{tenant}.crt"' : '"/etc/nsproxy/ca.pem"';
  if (typeof v !== "string") throw new Error(`${key} must be a file path, like ${example}`);
  if (!v.startsWith("/")) throw new Error(`${key} ${JSON.stringify(v)} must be an absolute path, like ${example}`);
  if (v.includes("\0")) throw new Error(`${key} ${JSON.stringify(v)} contains a NUL byte`);
  const braces = v.replaceAll("{tenant}", "");
  if (braces.includes("{") || braces.includes("}")) {
    throw new Error(`${key} ${JSON.stringify(v)}: ${template ? "the only placeholder is {tenant}" : "takes no placeholder"}, like ${example}`);
  }
  if (!template && v.includes("{tenant}")) throw new Error(`${key} ${JSON.stringify(v)} takes no placeholder, like ${example}`);
  return v;
}

/** Worker threads: an integer 1..256, from TOML (number) or a flag (string). */
export function parseWorkers(v: unknown): number {
  return parseInteger(v, "workers", 1, 256, 4);
}

/** An integer min..max, from TOML (number) or a flag (string of digits); `what` and `example` are for the message. */
export function parseInteger(v: unknown, what: string, min: number, max: number, example: number): number {
  const n = typeof v === "string" && /^\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${what} ${JSON.stringify(v)} is not an integer from ${min} to ${max}, like ${example}`);
  }
  return n;
}

export function parseLogFormat(v: unknown): "text" | "json" {
  if (v === "text" || v === "json") return v;
  throw new Error(`log format ${JSON.stringify(v)} is not "text" or "json"`);
}

/** The Docker Engine API socket `--discover docker` names (Podman's `podman system service` serves the same API). */
export const DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock";

/** `docker` or `docker:PATH`: the Engine API socket to follow containers through; undefined for anything else (a directory). */
export function dockerSocketOf(v: string): string | undefined {
  if (v === "docker") return DEFAULT_DOCKER_SOCKET;
  if (!v.startsWith("docker:")) return undefined;
  const path = v.slice("docker:".length).replace(/^unix:\/\//, "");
  if (!path.startsWith("/")) throw new Error(`discover ${JSON.stringify(v)}: the socket must be an absolute path, like docker:/run/podman/podman.sock`);
  return path;
}

/** `DIR[=GLOB]` or (dir, glob): an absolute directory and a file-name glob (`*`, `?`, `[…]`; no "/"). */
export function parseDiscover(dir: string, glob?: string): { dir: string; glob: string } {
  let d = dir;
  let g = glob;
  if (g === undefined) {
    const eq = dir.indexOf("=");
    if (eq >= 0) {
      d = dir.slice(0, eq);
      g = dir.slice(eq + 1);
    }
  }
  g = g === undefined || g === "" ? "*" : g;
  if (!d.startsWith("/")) throw new Error(`discover directory ${JSON.stringify(d)} must be an absolute path, like /run/netns`);
  if (g.includes("/")) throw new Error(`discover glob ${JSON.stringify(g)} matches file names, so it cannot contain "/"`);
  return { dir: d.length > 1 ? d.replace(/\/+$/, "") : d, glob: g };
}

/** ingress_hosts: each a DNS name or "*." + DNS name, lower-cased, no duplicates. */
export function parseIngressHosts(list: string[]): string[] {
  const out: string[] = [];
  for (const h of list) {
    // "{tenant}" stands for the tenant's name ([defaults] ingress_hosts = ["{tenant}.example.com"]); checked
    // here with a stand-in, and again with the real name when the tenant is resolved.
    const n = h.includes("{tenant}") ? (normalizePattern(h.replaceAll("{tenant}", "x")), h.toLowerCase()) : normalizePattern(h);
    if (out.includes(n)) throw new Error(`ingress host ${JSON.stringify(h)} is listed twice`);
    out.push(n);
  }
  return out;
}
