// The resolved, validated shape of what the daemon serves: everything downstream consumes only these types.
import type { TenantDefaults } from "./settings.ts";

/** A listen address, already validated: an IP literal (v4 or v6, no brackets) and a port. */
export interface ListenAddr {
  host: string;
  port: number;
  /** As the user wrote it, for messages: "127.0.0.1:8080", "[::1]:8080" or "https://169.254.169.254:443". */
  text: string;
  /** https://ADDR: TLS is terminated here with the tenant's tls_cert and tls_key. */
  tls?: true;
}

/**
 * Where a tenant's requests go.
 * - `http://host:port[/prefix]` and `https://host:port[/prefix]`
 * - `unix:/path/to.sock[:/prefix]` (nginx's spelling, without the scheme): plain HTTP over a unix socket.
 * - `tcp://host:port` (mode = "tcp" only): bytes, no HTTP.
 */
export interface Upstream {
  /** Origin used to build the upstream URL: "http://127.0.0.1:9000"; "http://localhost" for unix sockets; "tcp://10.0.0.1:5432". */
  origin: string;
  /** Path prefix without a trailing slash, "" for none: "/api" turns "/x?q" into "/api/x?q". */
  prefix: string;
  /** Unix socket path, when the upstream is one. */
  unix?: string;
  /** As the user wrote it, for messages. */
  text: string;
}

/** A resolved tenant. Each setting with a built-in value in settings.ts (tenantHeader, upstreamTimeoutMs, maxConnections) is a field from TenantDefaults. */
export interface TenantSpec extends TenantDefaults {
  /** [A-Za-z0-9][A-Za-z0-9._-]{0,63}: it is sent as a header value and used in file names. */
  name: string;
  /** Absolute path of the namespace file: /run/netns/NAME, /proc/PID/ns/net, /var/run/docker/netns/ID. */
  netns: string;
  /** Egress listeners inside the namespace; empty for an ingress-only tenant. */
  listen: ListenAddr[];
  /** Where egress requests go; undefined only for an ingress-only tenant (no listen). */
  upstream: Upstream | undefined;
  /** Static headers added to every upstream request; client copies of these names are removed too. */
  headers: Record<string, string>;
  /** mode = "tcp": bytes both ways, no HTTP (absent: HTTP). */
  mode?: "tcp";
  /** tls_cert and tls_key with {tenant} filled in: the pair an https:// listener serves (read by the daemon, watched for rotation). */
  tls?: { cert: string; key: string };
  /** upstream_proxy_protocol = "v2": every upstream connection starts with a PROXY v2 header and carries one client connection. */
  proxyProtocol?: "v2";
  /** upstream_ca: a PEM file of CAs an https:// upstream's certificate may also chain to. */
  upstreamCa?: string;
  /** upstream_insecure = true: an https:// upstream's certificate is not verified. */
  upstreamInsecure?: true;
  /** Ingress: the host listeners route these names to this tenant's own services inside its namespace. */
  ingress?: IngressSpec;
  /** Where it was declared (not part of what is served: specs that differ only here are equal). */
  source?: TenantSource;
  /** owner = "KIND:ID" of a tenants-dir tenant: removed once its namespace file is gone (not part of what is served). */
  owner?: string;
}

/** A tenant's share of the ingress direction: host names routed to services inside its namespace. */
export interface IngressSpec {
  /** Normalized patterns: "acme.example.com", "*.acme.example.com" (lower case). */
  hosts: string[];
  /** ingress_backend: the HTTP service's address inside the tenant's namespace. */
  backend?: ListenAddr;
  /** ingress_tls_backend: where sni:// connections go inside the namespace (TLS passes through). */
  tlsBackend?: ListenAddr;
}

/** An ingress listener in the host namespace: HTTP routed by Host, or TLS routed by SNI (not terminated). */
export interface IngressListen extends ListenAddr {
  kind: "http" | "sni";
}

/** Where a tenant was declared; only tenants-dir tenants change through the admin interface. */
export type TenantSource = "config" | "flag" | "tenants-dir" | "discover" | "container";

/** `[[discover]]` / `--discover DIR[=GLOB]`: every namespace file in dir matching glob is a tenant named after it. */
export interface DiscoverSpec {
  dir: string;
  glob: string;
}

/** The data path's limits and timeouts ([daemon] keys), the same for every tenant. */
export interface EngineSettings {
  /** request_timeout: a request head must arrive completely within this (slowloris): 408 and close. */
  requestTimeoutMs: number;
  /** idle_timeout: a keep-alive connection with no request in progress is closed after this. */
  idleTimeoutMs: number;
  /** connect_timeout: the upstream connection must be established within this, else 502. */
  connectTimeoutMs: number;
  /** body_timeout: a body (either direction) or a tunnel that moves no byte for this long is cut. */
  bodyTimeoutMs: number;
  /** max_header_size: bytes of a request head (request line + fields); over it: 431. */
  maxHeaderBytes: number;
  /** max_headers: number of fields in a request head; over it: 431. */
  maxHeaders: number;
  /** max_url_length: bytes of the request target; over it: 414. */
  maxTargetBytes: number;
}

/** [daemon] metrics_listen and metrics_tenant_limit. */
export interface MetricsSettings {
  /** A TCP listener in the host namespace for /metrics, /healthz and /readyz; off when undefined. */
  listen?: ListenAddr;
  /** Per-tenant series up to this many tenants; above it they are aggregated into tenant="_all". */
  tenantLimit: number;
}

export interface DaemonConfig {
  tenants: TenantSpec[];
  /** Worker threads holding the listeners; each tenant listens in every worker (SO_REUSEPORT). */
  workers: number;
  /** How long in-flight requests may run after SIGTERM/SIGINT, and after a tenant is detached. */
  shutdownGraceMs: number;
  logFormat: "text" | "json";
  accessLog: boolean;
  /** Install the syscall filter (libnetns.c) at start. */
  seccomp: boolean;
  /** One file per runtime-provisioned tenant. */
  tenantsDir: string;
  /** Unix socket of the admin interface. */
  adminSocket: string;
  discover: DiscoverSpec[];
  /** Docker Engine API sockets (Docker, Podman) whose containers labelled nsproxy.enable=true are tenants. */
  docker: string[];
  /** Limits and timeouts of the HTTP engine. */
  engine: EngineSettings;
  /** Prometheus metrics and health endpoints. */
  metrics: MetricsSettings;
  /** [daemon] ingress_listen / --ingress-listen: host listeners of the ingress direction. */
  ingressListen: IngressListen[];
  /** [daemon] user / --user: run as this user (NAME or uid[:gid]) after start; undefined: as started. */
  user?: string;
  /** [daemon] lib_dir / --lib-dir: where the C library is written and loaded from. */
  libDir?: string;
  /** The config file it came from, if any (for messages and reload). */
  file?: string;
}
