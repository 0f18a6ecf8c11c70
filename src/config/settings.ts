// Every setting once: its TOML key, flag, field, value kind, scope and documentation. The schema, the flags of `run`
// and `tenant add`, the layer merge, --help and the README's option list are all read from this table.
import { absolutePath, boolean, checked, duration, integer, type Kind, list, text } from "./kinds.ts";
import {
  checkHeaderName,
  parseBackend,
  parseIngressHosts,
  parseIngressListen,
  parseListen,
  parseLogFormat,
  parseMode,
  parseProxyProtocol,
  parseTlsPath,
  parseUpstream,
} from "./values.ts";
import { parseUserSpec } from "../privilege/user.ts";

/** Where a key is written: [daemon] only, or [defaults] and [tenants.NAME] (and then also `tenant add`). */
export type Scope = "daemon" | "tenant";

export interface Setting<K extends string = string, F extends string = string, T = unknown, Stored = unknown, FlagValue = unknown, L extends string = string> {
  /** The TOML key. */
  key: K;
  /** The long flag without its dashes. */
  flag: L;
  alias?: string;
  /** The field of Layer (tenant) or DaemonSettings (daemon) that holds the parsed value. */
  field: F;
  kind: Kind<T, Stored, FlagValue>;
  scope: Scope;
  /** --help: the flag's description, and its value's name (none for a switch). */
  help: string;
  hint?: string;
  /** The README's config example: the value as TOML, and a comment for the line. */
  doc: { example: string; comment?: string };
}

/** A tenant setting's built-in value: a TenantSpec field holds it, whether or not any layer sets it. */
export interface Defaulted<T> {
  default: T;
}

function setting<K extends string, F extends string, T, Stored, FlagValue, L extends string>(s: Setting<K, F, T, Stored, FlagValue, L>): Setting<K, F, T, Stored, FlagValue, L>;
function setting<K extends string, F extends string, T, Stored, FlagValue, L extends string>(
  s: Setting<K, F, T, Stored, FlagValue, L> & Defaulted<T>,
): Setting<K, F, T, Stored, FlagValue, L> & Defaulted<T>;
function setting(s: Setting): Setting {
  return s;
}

/** Where the admin interface listens and runtime tenants are stored, when neither [daemon] nor a flag says. */
export const DEFAULT_ADMIN_SOCKET = "/run/nsproxy/admin.sock";
export const DEFAULT_TENANTS_DIR = "/etc/nsproxy/tenants.d";

/** [daemon]: one value for the whole process. */
export const DAEMON_SETTINGS = [
  setting({
    key: "workers", flag: "workers", alias: "w", field: "workers", kind: integer(1, 256, 4), scope: "daemon",
    help: "Worker threads holding the listeners (default: one per core)", hint: "N",
    doc: { example: "2", comment: "default: one per core" },
  }),
  setting({
    key: "shutdown_grace", flag: "shutdown-grace", field: "shutdownGraceMs", kind: duration(), scope: "daemon",
    help: "On SIGTERM/SIGINT, how long in-flight requests may finish (default 10s)", hint: "DURATION",
    doc: { example: '"10s"' },
  }),
  setting({
    key: "log_format", flag: "log-format", field: "logFormat", kind: checked(parseLogFormat), scope: "daemon",
    help: "Log and access-log format: text or json (default text)", hint: "FORMAT",
    doc: { example: '"text"', comment: 'or "json"' },
  }),
  setting({
    key: "access_log", flag: "access-log", field: "accessLog", kind: boolean(), scope: "daemon",
    help: "Log one line per request (default on; --no-access-log turns it off)",
    doc: { example: "true" },
  }),
  setting({
    key: "seccomp", flag: "seccomp", field: "seccomp", kind: boolean(), scope: "daemon",
    help: "Refuse the syscalls nsproxy never needs (mount, bpf, ptrace, new namespaces…) on every thread (default on; --no-seccomp turns it off)",
    doc: { example: "true", comment: "the syscall filter; false only to rule it out when something breaks" },
  }),
  setting({
    key: "tenants_dir", flag: "tenants-dir", field: "tenantsDir", kind: absolutePath(), scope: "daemon",
    help: "Directory of runtime-provisioned tenants, one NAME.toml each (default /etc/nsproxy/tenants.d)", hint: "DIR",
    doc: { example: '"/etc/nsproxy/tenants.d"' },
  }),
  setting({
    key: "admin_socket", flag: "admin-socket", field: "adminSocket", kind: absolutePath(), scope: "daemon",
    help: "Admin interface unix socket (default /run/nsproxy/admin.sock)", hint: "PATH",
    doc: { example: '"/run/nsproxy/admin.sock"' },
  }),
  setting({
    key: "request_timeout", flag: "request-timeout", field: "requestTimeoutMs", kind: duration({ positive: { example: "10s" } }), scope: "daemon",
    help: "Time a client has to send a complete request head before a 408 (default 10s)", hint: "DURATION",
    doc: { example: '"10s"', comment: "a client's whole request head must arrive within this, else 408" },
  }),
  setting({
    key: "idle_timeout", flag: "idle-timeout", field: "idleTimeoutMs", kind: duration({ positive: { example: "60s" } }), scope: "daemon",
    help: "Close a keep-alive connection idle this long between requests (default 60s)", hint: "DURATION",
    doc: { example: '"60s"', comment: "a keep-alive connection idle between requests is closed" },
  }),
  setting({
    key: "connect_timeout", flag: "connect-timeout", field: "connectTimeoutMs", kind: duration({ positive: { example: "5s" } }), scope: "daemon",
    help: "Time allowed to connect to the upstream before a 502 (default 5s)", hint: "DURATION",
    doc: { example: '"5s"', comment: "connecting to the upstream; then 502" },
  }),
  setting({
    key: "body_timeout", flag: "body-timeout", field: "bodyTimeoutMs", kind: duration({ positive: { example: "60s" } }), scope: "daemon",
    help: "Cut a request or response body, or a tunnel, that moves no byte for this long (default 60s)", hint: "DURATION",
    doc: { example: '"60s"', comment: "a body or tunnel that moves no byte for this long is cut" },
  }),
  setting({
    key: "max_header_size", flag: "max-header-size", field: "maxHeaderBytes", kind: integer(1024, 1_048_576, 16_384), scope: "daemon",
    help: "Largest request head (request line and header fields) in bytes, else 431 (default 16384)", hint: "BYTES",
    doc: { example: "16384", comment: "bytes of a request head (1024..1048576); more: 431" },
  }),
  setting({
    key: "max_headers", flag: "max-headers", field: "maxHeaders", kind: integer(8, 10_000, 100), scope: "daemon",
    help: "Most header fields in a request, else 431 (default 100)", hint: "N",
    doc: { example: "100", comment: "header fields in a request (8..10000); more: 431" },
  }),
  // At most max_header_size too (the target is part of the head): checked once the file and the flags are merged.
  setting({
    key: "max_url_length", flag: "max-url-length", field: "maxTargetBytes", kind: integer(64, 1_048_576, 8192), scope: "daemon",
    help: "Longest request target in bytes, else 414 (default 8192; at most --max-header-size)", hint: "BYTES",
    doc: { example: "8192", comment: "bytes of the request target (64..max_header_size); more: 414" },
  }),
  setting({
    key: "metrics_listen", flag: "metrics-listen", field: "metricsListen", kind: text((s) => parseListen(s, false), 'a string, like "127.0.0.1:9464"'), scope: "daemon",
    help: "Serve /metrics, /healthz and /readyz on this host address, host:port or [v6]:port (default off)", hint: "ADDR",
    doc: { example: '"127.0.0.1:9464"', comment: "/metrics, /healthz, /readyz on the host only; off by default" },
  }),
  setting({
    key: "metrics_tenant_limit", flag: "metrics-tenant-limit", field: "metricsTenantLimit", kind: integer(0, 1_000_000, 1000), scope: "daemon",
    help: "Per-tenant metric series up to this many tenants, then aggregated; 0 always aggregates (default 1000)", hint: "N",
    doc: { example: "1000", comment: "per-tenant series up to this many tenants, then aggregated" },
  }),
  setting({
    key: "ingress_listen", flag: "ingress-listen", field: "ingressListen",
    kind: list((items) => items.map(parseIngressListen), 'a string or an array of strings, like ["0.0.0.0:80", "sni://0.0.0.0:443"]'), scope: "daemon",
    help: "Ingress listener on the host: ADDR or http://ADDR (routed by Host), sni://ADDR (TLS routed by server name) (repeatable)", hint: "ADDR",
    doc: { example: '["0.0.0.0:80", "sni://0.0.0.0:443"]', comment: "ingress listeners on the host (default none)" },
  }),
  setting({
    key: "user", flag: "user", field: "user", kind: text(parseUserSpec, 'a string, like "nsproxy" or "65534:65534"'), scope: "daemon",
    help: "Started as root, run as this user (NAME or uid[:gid]) with only the capabilities the configuration needs (default: stay root)", hint: "USER",
    doc: { example: '"nsproxy"', comment: "run as this user with only the capabilities needed (default: stay root)" },
  }),
  setting({
    key: "lib_dir", flag: "lib-dir", field: "libDir", kind: absolutePath(), scope: "daemon",
    help: "Write the C library here and load it from here (default: $TMPDIR or /tmp; needs a writable mount without noexec)", hint: "DIR",
    doc: { example: '"/var/lib/nsproxy"', comment: "where the C library is written and loaded from (default $TMPDIR or /tmp)" },
  }),
] as const;

/** [defaults] and [tenants.NAME], in the order a stored tenant file lists them; `tenant add` takes each as a flag. */
export const TENANT_SETTINGS = [
  setting({
    key: "listen", flag: "listen", alias: "l", field: "listen", scope: "tenant",
    kind: list<ReturnType<typeof parseListen>[], string | string[]>((items) => items.map((s) => parseListen(s)), 'a string or a non-empty array of strings, like "127.0.0.1:8080" or "https://169.254.169.254"', true),
    help: "Address to listen on inside every tenant namespace: host:port, [v6]:port, or https://ADDR for TLS (repeatable)", hint: "ADDR",
    doc: { example: '["127.0.0.1:8080"]', comment: "a string or an array" },
  }),
  setting({
    key: "upstream", flag: "upstream", alias: "u", field: "upstream", kind: text(parseUpstream, 'a string, like "http://127.0.0.1:9000"'), scope: "tenant",
    help: "Upstream: http://host:port[/prefix], https://…, unix:/path.sock[:/prefix], or tcp://host:port (--mode tcp)", hint: "URL",
    doc: { example: '"http://127.0.0.1:9000"' },
  }),
  setting({
    key: "mode", flag: "mode", field: "mode", kind: checked(parseMode), scope: "tenant",
    help: "http (default) or tcp: forward bytes both ways with no HTTP", hint: "MODE",
    doc: { example: '"http"', comment: 'or "tcp" (bytes; upstream tcp://host:port or unix:)' },
  }),
  setting({
    key: "tenant_header", flag: "tenant-header", field: "tenantHeader", kind: text((s) => checkHeaderName(s, "tenant_header"), 'a string, like "X-Nsproxy-Tenant"'),
    scope: "tenant", default: "X-Nsproxy-Tenant",
    help: "Header that carries the tenant name upstream (default X-Nsproxy-Tenant)", hint: "NAME",
    doc: { example: '"X-Nsproxy-Tenant"' },
  }),
  setting({
    key: "upstream_timeout", flag: "upstream-timeout", field: "upstreamTimeoutMs", kind: duration({ positive: { example: "30s" } }), scope: "tenant", default: 30_000,
    help: "Time allowed for the upstream's response headers before a 504 (default 30s)", hint: "DURATION",
    doc: { example: '"30s"' },
  }),
  setting({
    key: "max_connections", flag: "max-connections", field: "maxConnections", kind: integer(1, 1_000_000, 1000), scope: "tenant", default: 1000,
    help: "Open connections per tenant across all workers; more are refused (default 1000)", hint: "N",
    doc: { example: "1000", comment: "open connections per tenant across all workers; more are refused" },
  }),
  setting({
    key: "tls_cert", flag: "tls-cert", field: "tlsCert", kind: checked((v, key) => parseTlsPath(v, key, true)), scope: "tenant",
    help: "Certificate (PEM, chain allowed) for https:// listeners; {tenant} is the tenant's name", hint: "FILE",
    doc: { example: '"/etc/nsproxy/certs/{tenant}.crt"', comment: "for https:// listeners; {tenant} is the tenant's name" },
  }),
  setting({
    key: "tls_key", flag: "tls-key", field: "tlsKey", kind: checked((v, key) => parseTlsPath(v, key, true)), scope: "tenant",
    help: "Private key (PEM) for https:// listeners; {tenant} is the tenant's name", hint: "FILE",
    doc: { example: '"/etc/nsproxy/certs/{tenant}.key"' },
  }),
  setting({
    key: "upstream_proxy_protocol", flag: "upstream-proxy-protocol", field: "proxyProtocol", kind: checked(parseProxyProtocol), scope: "tenant",
    help: "v2: start every upstream connection with a PROXY v2 header (client address, tenant TLV)", hint: "v2",
    doc: { example: '"v2"', comment: "a PROXY v2 header on every upstream connection (default: none)" },
  }),
  setting({
    key: "upstream_ca", flag: "upstream-ca", field: "upstreamCa", kind: checked((v, key) => parseTlsPath(v, key, false)), scope: "tenant",
    help: "Extra CA certificates (PEM) an https:// upstream may chain to", hint: "FILE",
    doc: { example: '"/etc/nsproxy/upstream-ca.pem"', comment: "extra CAs for https:// upstreams" },
  }),
  setting({
    key: "upstream_insecure", flag: "upstream-insecure", field: "upstreamInsecure", kind: boolean(), scope: "tenant",
    help: "Do not verify an https:// upstream's certificate (logged at start)",
    doc: { example: "false", comment: "true: do not verify an https:// upstream (logged)" },
  }),
  setting({
    key: "ingress_hosts", flag: "ingress-host", field: "ingressHosts", kind: list(parseIngressHosts, 'an array of host names, like ["acme.example.com", "*.acme.example.com"]'), scope: "tenant",
    help: "Ingress: a host name (or *.domain) routed to this tenant's ingress backend (repeatable)", hint: "HOST",
    doc: { example: '["{tenant}.example.com"]', comment: "ingress: host names routed to this tenant ({tenant}: its name)" },
  }),
  setting({
    key: "ingress_backend", flag: "ingress-backend", field: "ingressBackend", kind: text(parseBackend, 'a string, like "127.0.0.1:3000"'), scope: "tenant",
    help: "Ingress: the tenant's HTTP service inside its namespace, like 127.0.0.1:3000", hint: "ADDR",
    doc: { example: '"127.0.0.1:3000"', comment: "ingress: the tenant's HTTP service inside its namespace" },
  }),
  setting({
    key: "ingress_max_connections", flag: "ingress-max-connections", field: "ingressMaxConnections", kind: integer(1, 1_000_000, 1000), scope: "tenant", default: 1000,
    help: "Ingress: connections routed to this tenant at once across all workers; more are refused (default 1000)", hint: "N",
    doc: { example: "1000", comment: "ingress: connections routed to this tenant at once; more get 503 (sni://: closed)" },
  }),
  setting({
    key: "ingress_tls_backend", flag: "ingress-tls-backend", field: "ingressTlsBackend", kind: text(parseBackend, 'a string, like "127.0.0.1:3000"'), scope: "tenant",
    help: "Ingress: the tenant's TLS service inside its namespace (for sni:// listeners)", hint: "ADDR",
    doc: { example: '"127.0.0.1:443"', comment: "ingress: its TLS service, for sni:// listeners" },
  }),
] as const;

export const SETTINGS: readonly Setting[] = [...DAEMON_SETTINGS, ...TENANT_SETTINGS];

type DaemonEntry = (typeof DAEMON_SETTINGS)[number];
type TenantEntry = (typeof TENANT_SETTINGS)[number];
type Parsed<E> = E extends Setting<string, string, infer T, unknown, never> ? T : never;
type Camel<S extends string> = S extends `${infer H}-${infer R}` ? `${H}${Capitalize<Camel<R>>}` : S;

/** The [daemon] values the file or the flags set; undefined where neither does. */
export type DaemonSettings = { [E in DaemonEntry as E["field"]]?: Parsed<E> };

/** The tenant values one layer ([defaults], flags, a tenant table) sets; undefined where it does not. */
export type LayerValues = { [E in TenantEntry as E["field"]]?: Parsed<E> };
export type LayerField = TenantEntry["field"];

/** The tenant settings with a built-in value, as a resolved TenantSpec holds them. */
export type TenantDefaults = { [E in Extract<TenantEntry, Defaulted<unknown>> as E["field"]]: Parsed<E> };

/** A tenant table's settings as stored (tenants-dir file, admin PUT body): key = TOML value. */
export type StoredSettings = { [E in TenantEntry as E["key"]]?: E extends Setting<string, string, unknown, infer S, never> ? S : never };

/** Flag values as citty hands them over, named after the flag (--upstream-timeout: upstreamTimeout). */
export type SettingFlags = { [E in DaemonEntry | TenantEntry as Camel<E["flag"]>]?: E extends Setting<string, string, unknown, unknown, infer V> ? V : never };

/** The flag's name in FlagOverrides: "upstream-timeout" → "upstreamTimeout". */
export function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export const DAEMON_KEYS: readonly string[] = DAEMON_SETTINGS.map((s) => s.key);
