// Checks a parsed TOML document against the config schema and turns it into layers; every failure names its key path.
import { at, emptyLayer, Invalid, type Layer } from "./layer.ts";
import { suggest } from "./suggest.ts";
import { normalizePattern } from "../engine/host-router.ts";
import {
  badTenantName,
  checkHeaderName,
  isValidHeaderValue,
  isValidTenantName,
  netnsPath,
  parseDuration,
  parseListen,
  parseLogFormat,
  parseUpstream,
  parseDiscover,
  parseInteger,
  parseBackend,
  parseIngressListen,
  parseMode,
  parseProxyProtocol,
  parseTlsPath,
  parseWorkers,
} from "./values.ts";
import type { DiscoverSpec, IngressListen, ListenAddr } from "./types.ts";

export interface DaemonSettings {
  workers?: number;
  shutdownGraceMs?: number;
  logFormat?: "text" | "json";
  accessLog?: boolean;
  tenantsDir?: string;
  adminSocket?: string;
  requestTimeoutMs?: number;
  idleTimeoutMs?: number;
  connectTimeoutMs?: number;
  bodyTimeoutMs?: number;
  maxHeaderBytes?: number;
  maxHeaders?: number;
  maxTargetBytes?: number;
  metricsListen?: ListenAddr;
  metricsTenantLimit?: number;
  ingressListen?: IngressListen[];
}

/** The engine's [daemon] timeouts: key, DaemonSettings field, FlagOverrides field, and an example (the default). */
export const ENGINE_DURATIONS = [
  ["request_timeout", "requestTimeoutMs", "requestTimeout", "10s"],
  ["idle_timeout", "idleTimeoutMs", "idleTimeout", "60s"],
  ["connect_timeout", "connectTimeoutMs", "connectTimeout", "5s"],
  ["body_timeout", "bodyTimeoutMs", "bodyTimeout", "60s"],
] as const;

/** The engine's [daemon] size limits: key, DaemonSettings field, FlagOverrides field, allowed range, example (the default). */
export const ENGINE_LIMITS = [
  ["max_header_size", "maxHeaderBytes", "maxHeaderSize", 1024, 1_048_576, 16_384],
  ["max_headers", "maxHeaders", "maxHeaders", 8, 10_000, 100],
  // At most max_header_size too (the target is part of the head): checked once the file and the flags are merged.
  ["max_url_length", "maxTargetBytes", "maxUrlLength", 64, 1_048_576, 8192],
] as const;

/** [daemon] metrics_tenant_limit: the allowed range and the built-in default (0: always aggregate). */
export const METRICS_TENANT_LIMIT = { min: 0, max: 1_000_000, default: 1000 } as const;

/** Per-tenant max_connections: the allowed range and the built-in default. */
export const MAX_CONNECTIONS = { min: 1, max: 1_000_000, default: 1000 } as const;

export interface FileTenant {
  name: string;
  netns: string;
  layer: Layer;
}

export interface FileConfig {
  daemon: DaemonSettings;
  defaults: Layer;
  tenants: FileTenant[];
  discover: DiscoverSpec[];
}

type Table = Record<string, unknown>;

const TOP_KEYS = ["daemon", "defaults", "tenants", "discover"];
const DAEMON_KEYS: string[] = [
  "workers",
  "shutdown_grace",
  "log_format",
  "access_log",
  "tenants_dir",
  "admin_socket",
  ...ENGINE_DURATIONS.map(([key]) => key),
  ...ENGINE_LIMITS.map(([key]) => key),
  "metrics_listen",
  "metrics_tenant_limit",
  "ingress_listen",
];
const DISCOVER_KEYS = ["dir", "glob"];
const LAYER_KEYS = [
  "listen",
  "upstream",
  "mode",
  "tenant_header",
  "upstream_timeout",
  "max_connections",
  "tls_cert",
  "tls_key",
  "upstream_proxy_protocol",
  "upstream_ca",
  "upstream_insecure",
  "ingress_hosts",
  "ingress_backend",
  "ingress_tls_backend",
  "headers",
];
/** The keys of a [tenants.NAME] table, in the order a stored tenant file lists them. */
export const TENANT_KEYS: readonly string[] = ["netns", ...LAYER_KEYS];

export function readDocument(doc: Table): FileConfig {
  checkKeys(doc, [], TOP_KEYS);
  const daemon = optionalTable(doc, "daemon");
  const defaults = optionalTable(doc, "defaults");
  const tenants = optionalTable(doc, "tenants", "a table of tenants, like [tenants.acme]");
  if (daemon) checkKeys(daemon, ["daemon"], DAEMON_KEYS);
  if (defaults) checkKeys(defaults, ["defaults"], LAYER_KEYS);
  return {
    daemon: daemon ? readDaemon(daemon) : {},
    defaults: defaults ? readLayer(defaults, ["defaults"]) : emptyLayer(),
    tenants: Object.entries(tenants ?? {}).map(([name, t]) => readTenant(name, t)),
    discover: readDiscoverList(doc.discover),
  };
}

/** [[discover]] tables: { dir = "/run/netns", glob = "*" }. */
function readDiscoverList(v: unknown): DiscoverSpec[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw wrongType(v, ["discover"], 'an array of tables, like [[discover]] with dir = "/run/netns"');
  return v.map((t, i) => {
    const path = ["discover", String(i)];
    if (!isTable(t)) throw wrongType(t, ["discover"], "a table, like [[discover]]");
    checkKeys(t, ["discover"], DISCOVER_KEYS);
    if (typeof t.dir !== "string") throw new Invalid('[[discover]] needs dir = "/run/netns" (an absolute directory)', [...path, "dir"]);
    if (t.glob !== undefined && typeof t.glob !== "string") throw wrongType(t.glob, [...path, "glob"], 'a string, like "tenant-*"');
    return at([...path, "dir"], () => parseDiscover(t.dir as string, (t.glob as string | undefined) ?? "*"));
  });
}

function readDaemon(t: Table): DaemonSettings {
  const path = (k: string) => ["daemon", k];
  const out: DaemonSettings = {};
  if (t.workers !== undefined) {
    if (typeof t.workers !== "number") throw wrongType(t.workers, path("workers"), "an integer");
    out.workers = at(path("workers"), () => parseWorkers(t.workers));
  }
  if (t.shutdown_grace !== undefined) {
    out.shutdownGraceMs = at(path("shutdown_grace"), () => parseDuration(t.shutdown_grace));
  }
  if (t.log_format !== undefined) out.logFormat = at(path("log_format"), () => parseLogFormat(t.log_format));
  for (const [key, field] of [["tenants_dir", "tenantsDir"], ["admin_socket", "adminSocket"]] as const) {
    const v = t[key];
    if (v === undefined) continue;
    if (typeof v !== "string" || !v.startsWith("/")) throw wrongType(v, path(key), "an absolute path");
    out[field] = v;
  }
  if (t.access_log !== undefined) {
    if (typeof t.access_log !== "boolean") throw wrongType(t.access_log, path("access_log"), "true or false");
    out.accessLog = t.access_log;
  }
  for (const [key, field, , example] of ENGINE_DURATIONS) {
    if (t[key] === undefined) continue;
    const ms = at(path(key), () => parseDuration(t[key]));
    // Zero would cut every connection (or request) at once.
    if (ms === 0) throw new Invalid(`${key} must be longer than 0, like "${example}"`, path(key));
    out[field] = ms;
  }
  for (const [key, field, , min, max, example] of ENGINE_LIMITS) {
    const v = t[key];
    if (v === undefined) continue;
    if (typeof v !== "number") throw wrongType(v, path(key), "an integer");
    out[field] = at(path(key), () => parseInteger(v, key, min, max, example));
  }
  if (t.metrics_listen !== undefined) {
    const s = t.metrics_listen;
    if (typeof s !== "string") throw wrongType(s, path("metrics_listen"), 'a string, like "127.0.0.1:9464"');
    out.metricsListen = at(path("metrics_listen"), () => parseListen(s, false));
  }
  if (t.metrics_tenant_limit !== undefined) {
    const v = t.metrics_tenant_limit;
    if (typeof v !== "number") throw wrongType(v, path("metrics_tenant_limit"), "an integer");
    const { min, max, default: example } = METRICS_TENANT_LIMIT;
    out.metricsTenantLimit = at(path("metrics_tenant_limit"), () => parseInteger(v, "metrics_tenant_limit", min, max, example));
  }
  if (t.ingress_listen !== undefined) {
    const v = t.ingress_listen;
    const list = typeof v === "string" ? [v] : v;
    if (!Array.isArray(list) || !list.every((x) => typeof x === "string")) {
      throw wrongType(v, path("ingress_listen"), 'a string or an array of strings, like ["0.0.0.0:80", "sni://0.0.0.0:443"]');
    }
    out.ingressListen = list.map((s) => at(path("ingress_listen"), () => parseIngressListen(s)));
  }
  return out;
}

export function readTenant(name: string, t: unknown): FileTenant {
  const path = ["tenants", name];
  if (!isValidTenantName(name)) throw new Invalid(badTenantName(name, "(a [tenants] table name)"), path);
  if (!isTable(t) && TENANT_KEYS.includes(name)) {
    throw new Invalid(`'${name}' directly under [tenants] would be a tenant; put it in [tenants.NAME] or [defaults]`, path);
  }
  if (!isTable(t)) throw wrongType(t, path, `a table, like [tenants.${name}]`);
  checkKeys(t, path, TENANT_KEYS);
  if (t.netns === undefined) {
    throw new Invalid(`tenant '${name}' has no netns; add netns = "${name}" (a name under /run/netns) or an absolute path`, [...path, "netns"]);
  }
  if (typeof t.netns !== "string") throw wrongType(t.netns, [...path, "netns"], "a string");
  const ref = t.netns;
  // TENANT=REF exists only because a flag has no table name to take the tenant's name from.
  if (/^[^/]*=/.test(ref)) {
    throw new Invalid(`netns ${JSON.stringify(ref)}: the NAME=REF form is for --netns; here the table name [tenants.${name}] is the tenant name`, [...path, "netns"]);
  }
  const netns = at([...path, "netns"], () => netnsPath(ref));
  return { name, netns, layer: readLayer(t, path) };
}

/** The settings shared by [defaults] and [tenants.NAME]; unknown keys were checked by the caller. */
function readLayer(t: Table, path: string[]): Layer {
  const layer = emptyLayer();
  const key = (k: string) => [...path, k];
  if (t.listen !== undefined) {
    const list = typeof t.listen === "string" ? [t.listen] : t.listen;
    if (!Array.isArray(list) || list.length === 0 || !list.every((x) => typeof x === "string")) {
      throw wrongType(t.listen, key("listen"), 'a string or a non-empty array of strings, like "127.0.0.1:8080" or "https://169.254.169.254"');
    }
    layer.listen = list.map((s) => at(key("listen"), () => parseListen(s)));
    layer.at.listen = key("listen");
  }
  if (t.upstream !== undefined) {
    const s = t.upstream;
    if (typeof s !== "string") throw wrongType(s, key("upstream"), 'a string, like "http://127.0.0.1:9000"');
    layer.upstream = at(key("upstream"), () => parseUpstream(s));
    layer.at.upstream = key("upstream");
  }
  if (t.tenant_header !== undefined) {
    const s = t.tenant_header;
    if (typeof s !== "string") throw wrongType(s, key("tenant_header"), 'a string, like "X-Nsproxy-Tenant"');
    layer.tenantHeader = at(key("tenant_header"), () => checkHeaderName(s, "tenant_header"));
    layer.at.tenantHeader = key("tenant_header");
  }
  if (t.upstream_timeout !== undefined) {
    layer.upstreamTimeoutMs = at(key("upstream_timeout"), () => parseDuration(t.upstream_timeout));
    // Zero would answer every request with 504 before the upstream could reply.
    if (layer.upstreamTimeoutMs === 0) throw new Invalid("upstream_timeout must be longer than 0, like \"30s\"", key("upstream_timeout"));
    layer.at.upstreamTimeoutMs = key("upstream_timeout");
  }
  if (t.max_connections !== undefined) {
    const v = t.max_connections;
    if (typeof v !== "number") throw wrongType(v, key("max_connections"), "an integer");
    layer.maxConnections = at(key("max_connections"), () => parseInteger(v, "max_connections", MAX_CONNECTIONS.min, MAX_CONNECTIONS.max, MAX_CONNECTIONS.default));
    layer.at.maxConnections = key("max_connections");
  }
  for (const [k, field] of [["tls_cert", "tlsCert"], ["tls_key", "tlsKey"]] as const) {
    if (t[k] === undefined) continue;
    layer[field] = at(key(k), () => parseTlsPath(t[k], k, true));
    layer.at[field] = key(k);
  }
  if (t.upstream_ca !== undefined) {
    layer.upstreamCa = at(key("upstream_ca"), () => parseTlsPath(t.upstream_ca, "upstream_ca", false));
    layer.at.upstreamCa = key("upstream_ca");
  }
  if (t.upstream_insecure !== undefined) {
    if (typeof t.upstream_insecure !== "boolean") throw wrongType(t.upstream_insecure, key("upstream_insecure"), "true or false");
    layer.upstreamInsecure = t.upstream_insecure;
    layer.at.upstreamInsecure = key("upstream_insecure");
  }
  if (t.mode !== undefined) {
    layer.mode = at(key("mode"), () => parseMode(t.mode));
    layer.at.mode = key("mode");
  }
  if (t.upstream_proxy_protocol !== undefined) {
    layer.proxyProtocol = at(key("upstream_proxy_protocol"), () => parseProxyProtocol(t.upstream_proxy_protocol));
    layer.at.proxyProtocol = key("upstream_proxy_protocol");
  }
  if (t.ingress_hosts !== undefined) {
    const v = t.ingress_hosts;
    const list = typeof v === "string" ? [v] : v;
    if (!Array.isArray(list) || !list.every((x) => typeof x === "string")) {
      throw wrongType(v, key("ingress_hosts"), 'an array of host names, like ["acme.example.com", "*.acme.example.com"]');
    }
    layer.ingressHosts = at(key("ingress_hosts"), () => parseIngressHosts(list as string[]));
    layer.at.ingressHosts = key("ingress_hosts");
  }
  for (const [k, field] of [["ingress_backend", "ingressBackend"], ["ingress_tls_backend", "ingressTlsBackend"]] as const) {
    const v = t[k];
    if (v === undefined) continue;
    if (typeof v !== "string") throw wrongType(v, key(k), 'a string, like "127.0.0.1:3000"');
    layer[field] = at(key(k), () => parseBackend(v, k));
    layer.at[field] = key(k);
  }
  if (t.headers !== undefined) readHeaders(t.headers, layer, key("headers"));
  return layer;
}

function readHeaders(v: unknown, layer: Layer, path: string[]): void {
  if (!isTable(v)) throw wrongType(v, path, 'a table of name = "value", like { "X-Env" = "prod" }');
  for (const [name, value] of Object.entries(v)) {
    const where = [...path, name];
    at(where, () => checkHeaderName(name, "static header"));
    if (typeof value !== "string") throw wrongType(value, where, "a string");
    if (!isValidHeaderValue(value)) {
      throw new Invalid(`header ${name} value ${JSON.stringify(value)} has a control character or non-Latin-1 text`, where);
    }
    const lower = name.toLowerCase();
    const twin = layer.headers.get(lower);
    if (twin) throw new Invalid(`header '${name}' is set twice (also as '${twin.name}'); header names ignore case`, where);
    layer.headers.set(lower, { name, value, at: where });
  }
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

/** Reads an optional sub-table, rejecting [[arrays]] and plain values where a table belongs. */
function optionalTable(t: Table, key: string, what = `a table, like [${key}]`): Table | undefined {
  const v = t[key];
  if (v === undefined) return undefined;
  if (!isTable(v)) throw wrongType(v, [key], what);
  return v;
}

function checkKeys(t: Table, path: string[], allowed: readonly string[]): void {
  for (const k of Object.keys(t)) {
    if (allowed.includes(k)) continue;
    const where = path.length === 0 ? "at the top level" : `in [${path.join(".")}]`;
    throw new Invalid(`unknown key '${k}' ${where}${hint(k, path, allowed)}`, [...path, k]);
  }
}

/** A likely typo, else the section the key belongs to. */
function hint(key: string, path: string[], allowed: readonly string[]): string {
  const near = suggest(key, allowed);
  if (near) return `; did you mean '${near}'?`;
  if (DAEMON_KEYS.includes(key)) return "; it belongs in [daemon]";
  if (key === "netns") return "; netns is set per tenant, in [tenants.NAME]";
  if (LAYER_KEYS.includes(key)) return "; it belongs in [defaults] or [tenants.NAME]";
  if (path.length === 0) return `; expected one of ${allowed.map((a) => `[${a}]`).join(", ")}`;
  return `; expected one of ${allowed.join(", ")}`;
}

export function isTable(v: unknown): v is Table {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function typeName(v: unknown): string {
  if (typeof v === "number") return Number.isInteger(v) ? `integer ${v}` : `float ${v}`;
  if (typeof v === "string") return `string ${JSON.stringify(v)}`;
  if (typeof v === "boolean") return `boolean ${v}`;
  if (Array.isArray(v)) return "an array";
  if (v instanceof Date) return "a date";
  return "a table";
}

function wrongType(v: unknown, path: string[], expected: string): Invalid {
  return new Invalid(`${path.at(-1)} must be ${expected}, not ${typeName(v)}`, path);
}
