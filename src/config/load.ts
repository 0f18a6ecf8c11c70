// Builds the validated DaemonConfig from the config file and the command-line flags.
//
// Precedence, lowest first:
//   1. built-in defaults (tenant_header "X-Nsproxy-Tenant", upstream_timeout 30 s, max_connections 1000,
//      shutdown_grace 10 s, workers = number of CPUs, log_format "text", access_log true, seccomp true, DEFAULT_ENGINE,
//      no metrics listener, and metrics_tenant_limit DEFAULT_METRICS_TENANT_LIMIT)
//   2. the file's [defaults] table (and [daemon] for daemon settings)
//   3. command-line flags: --listen, --upstream, --tenant-header, --upstream-timeout, --max-connections, --workers,
//      --shutdown-grace, --log-format, --access-log, the engine's --request-timeout … --max-url-length,
//      --metrics-listen and --metrics-tenant-limit
//   4. values set in a [tenants.NAME] table, for that tenant only
// Static headers merge name by name (case-insensitively): a tenant's headers override [defaults]' headers.
// Tenants named by --netns REF join the file's tenants and take the merged defaults (levels 1-3).
import { availableParallelism } from "node:os";
import { parse, TomlError } from "smol-toml";
import { ConfigError } from "../errors.ts";
import { FileRefused, readBounded } from "../fs/read-bounded.ts";
import { checkTomlBounds } from "./toml-bounds.ts";
import { type At, dotted, emptyLayer, Invalid, type Layer, mergeLayers } from "./layer.ts";
import { locateKey } from "./locate.ts";
import { type DaemonSettings, type FileConfig, type FileTenant, readDocument } from "./schema.ts";
import { DEFAULT_ADMIN_SOCKET, DEFAULT_TENANTS_DIR, type TenantDefaults, TENANT_SETTINGS } from "./settings.ts";
import { type FlagConfig, readFlags, type FlagOverrides } from "./flags.ts";
import type { DaemonConfig, EngineSettings, MetricsSettings, TenantSpec } from "./types.ts";
import { checkIngressHosts, checkListeners } from "./listeners.ts";
import { namespaceKeys } from "../netns/identity.ts";
import { normalizePattern } from "../engine/host-router.ts";
import { headerKey, MAX_STATIC_HEADER_BYTES } from "./values.ts";

export type { FlagOverrides } from "./flags.ts";
export { summarize } from "./summary.ts";

const BUILT_IN = {
  shutdownGraceMs: 10_000,
  logFormat: "text",
  accessLog: true,
  seccomp: true,
} as const;

/** The engine's limits and timeouts when neither [daemon] nor a flag sets them. */
export const DEFAULT_ENGINE: EngineSettings = {
  requestTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  connectTimeoutMs: 5_000,
  bodyTimeoutMs: 60_000,
  maxHeaderBytes: 16_384,
  maxHeaders: 100,
  maxTargetBytes: 8192,
};

/** Tenants with their own metric series when [daemon] metrics_tenant_limit is not set; beyond it they are aggregated. */
export const DEFAULT_METRICS_TENANT_LIMIT = 1000;

/** The tenant settings with a built-in value (settings.ts `default`), as the lowest layer. */
function builtInLayer(): Layer {
  const layer = emptyLayer();
  for (const s of TENANT_SETTINGS) if ("default" in s) (layer as Record<string, unknown>)[s.field] = s.default;
  return layer;
}

/** Reads, checks and merges everything; throws ConfigError ("file.toml:LINE: key: message") on the first problem. */
export function loadConfig(opts: { file?: string; flags?: FlagOverrides; source?: string }): DaemonConfig {
  return loadLayered(opts).config;
}

/** The configuration and the merged defaults (levels 1-3), which tenants added later resolve against. */
export interface Loaded {
  config: DaemonConfig;
  defaults: Layer;
}

export function loadLayered(opts: { file?: string; flags?: FlagOverrides; source?: string }): Loaded {
  const label = opts.file ?? "<config>";
  const source = opts.source ?? (opts.file !== undefined ? readSource(opts.file) : undefined);
  try {
    return build(source === undefined ? undefined : parseToml(source, label), opts.flags ?? {}, opts.file);
  } catch (e) {
    if (!(e instanceof Invalid)) throw e;
    throw toConfigError(e.message, e.at, label, source);
  }
}

/**
 * A tenant declared elsewhere (a tenants-dir file, an admin request, discovery) completed with the
 * daemon's defaults. Throws Invalid (key path inside the tenant's table) when listen or upstream is missing.
 */
export function resolveTenant(t: FileTenant, defaults: Layer, source: TenantSpec["source"]): TenantSpec {
  try {
    return { ...finish(t.name, t.netns, mergeLayers([defaults, t.layer]), []), source, ...(t.owner ? { owner: t.owner } : {}) };
  } catch (e) {
    // As checkTenantTable does: a key path inside the tenant's own table, the field an admin request names.
    if (e instanceof Invalid && Array.isArray(e.at) && e.at[0] === "tenants" && e.at[1] === t.name) throw new Invalid(e.message, e.at.slice(2));
    throw e;
  }
}

/**
 * The config file may hold every tenant (10,000 of them with ingress hosts is ~1.3 MB): 8 MB leaves room, and keeps a
 * path that names /dev/zero or a huge file from eating memory.
 */
export const MAX_CONFIG_BYTES = 8 << 20;
/** Keys plus array elements in the config file: ~10 per tenant at 10,000 tenants, many times over. */
export const MAX_CONFIG_ITEMS = 500_000;

function readSource(file: string): string {
  try {
    return readBounded(file, MAX_CONFIG_BYTES).toString("utf8");
  } catch (e) {
    if (!(e instanceof FileRefused)) throw e;
    throw new ConfigError(`cannot read config file: ${e.reason}${e.code ? ` (${e.code})` : ""}`, file);
  }
}

function parseToml(source: string, label: string): FileConfig {
  const bound = checkTomlBounds(source, MAX_CONFIG_ITEMS);
  if (bound) throw new ConfigError(bound.message, `${label}:${bound.line}`);
  let doc: Record<string, unknown>;
  try {
    doc = parse(source);
  } catch (e) {
    if (!(e instanceof TomlError)) throw e;
    throw new ConfigError(`invalid TOML: ${tomlWhat(e, source)} (column ${e.column})`, `${label}:${e.line}`, undefined, ["", ...e.codeblock.split("\n")]);
  }
  return readDocument(doc);
}

const UNTERMINATED = `unterminated string: a quoted value must end on the line it starts (""" or ''' for several lines)`;

/**
 * smol-toml's reason, except where it misleads: a string left open meets the end of its line, which smol-toml calls
 * a control character in the string (the newline), or the end of the file ("unfinished string").
 */
export function tomlWhat(e: TomlError, source: string): string {
  const what = e.message.replace(/^Invalid TOML document: /, "").split("\n")[0]!;
  const line = source.split("\n")[e.line - 1] ?? "";
  if (what === "unfinished string") {
    const triple = line.slice(e.column - 1, e.column + 2);
    return triple === `"""` || triple === `'''` ? `unterminated string: no closing ${triple} before the end of the file` : UNTERMINATED;
  }
  if (what !== "control characters are not allowed in strings") return what;
  const at = line[e.column - 1];
  return at === undefined || at === "\r" ? UNTERMINATED : what;
}

function toConfigError(message: string, where: At, label: string, source: string | undefined): ConfigError {
  if (typeof where === "string") return new ConfigError(message, where);
  const line = source === undefined ? undefined : locateKey(source, where);
  return new ConfigError(message, line === undefined ? label : `${label}:${line}`, dotted(where));
}

function build(file: FileConfig | undefined, flagValues: FlagOverrides, fileName: string | undefined): Loaded {
  const flags = readFlags(flagValues);
  const defaults = mergeLayers([builtInLayer(), file?.defaults ?? emptyLayer(), flags.layer]);

  // Names first: a duplicate is the more basic mistake, whatever else is missing from either copy.
  const fromFile = new Set((file?.tenants ?? []).map((t) => t.name));
  const fromFlags = new Map<string, string>();
  for (const t of flags.tenants) {
    if (fromFile.has(t.name)) {
      throw new Invalid(`tenant '${t.name}' (from --netns ${t.ref}) is already defined in the config file as [tenants.${t.name}]`, ["tenants", t.name]);
    }
    const other = fromFlags.get(t.name);
    if (other !== undefined) throw new Invalid(`tenant '${t.name}' is given twice: --netns ${other} and --netns ${t.ref}`, "--netns");
    fromFlags.set(t.name, t.ref);
  }
  const tenants: TenantSpec[] = [
    ...(file?.tenants ?? []).map((t) => ({ ...finish(t.name, t.netns, mergeLayers([defaults, t.layer]), ["tenants", t.name]), source: "config" as const })),
    ...flags.tenants.map((t) => ({ ...finish(t.name, t.netns, defaults, { ref: t.ref }), source: "flag" as const })),
  ];
  tenants.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  checkListeners(tenants, (name) => (fromFile.has(name) ? ["tenants", name, "listen"] : "--netns"), namespaceKeys());
  checkIngressHosts(tenants, (name) => (fromFile.has(name) ? ["tenants", name, "ingress_hosts"] : "--ingress-host"));

  const daemon = { ...file?.daemon, ...definedOnly(flags.daemon) };
  const config: DaemonConfig = {
    tenants,
    workers: daemon.workers ?? defaultWorkers(),
    shutdownGraceMs: daemon.shutdownGraceMs ?? BUILT_IN.shutdownGraceMs,
    logFormat: daemon.logFormat ?? BUILT_IN.logFormat,
    accessLog: daemon.accessLog ?? BUILT_IN.accessLog,
    seccomp: daemon.seccomp ?? BUILT_IN.seccomp,
    tenantsDir: daemon.tenantsDir ?? DEFAULT_TENANTS_DIR,
    adminSocket: daemon.adminSocket ?? DEFAULT_ADMIN_SOCKET,
    discover: [...(file?.discover ?? []), ...flags.discover],
    docker: [...new Set([...(file?.docker ?? []), ...flags.docker])],
    engine: engineSettings(daemon, flags),
    metrics: metricsSettings(daemon),
    ingressListen: daemon.ingressListen ?? [],
    ...(daemon.user !== undefined ? { user: daemon.user } : {}),
    ...(daemon.libDir !== undefined ? { libDir: daemon.libDir } : {}),
    ...(fileName !== undefined ? { file: fileName } : {}),
  };
  return { config, defaults };
}

/** Completes one tenant from its merged layer; `where` is its table path, or the --netns REF it came from. */
function finish(name: string, netns: string, l: Layer, where: string[] | { ref: string }): TenantSpec {
  const missing = (key: string, flag: string, example: string): Invalid =>
    Array.isArray(where) && where.length === 0
      ? new Invalid(`tenant '${name}' has no ${key}, and the daemon has no default; set ${key} for the tenant, or --${key} / [defaults] ${key} for the daemon`, [key])
      : Array.isArray(where)
      ? new Invalid(`tenant '${name}' has no ${key}; set ${key} = "${example}" in [tenants.${name}] or [defaults], or pass ${flag}`, [...where, key])
      : new Invalid(`tenant '${name}' (from --netns ${where.ref}) has no ${key}; pass ${flag} ${example}, or set ${key} = "${example}" in [defaults] of a config file`, "--netns");
  // An ingress-only tenant has no listener inside its namespace and no upstream.
  const ingressOnly = l.ingressHosts !== undefined && l.listen === undefined && l.upstream === undefined;
  if (!l.listen && !ingressOnly) throw missing("listen", "--listen", "127.0.0.1:8080");
  if (!l.upstream && !ingressOnly) throw missing("upstream", "--upstream", "http://127.0.0.1:9000");
  const defaulted = tenantDefaults(l);
  const headers = staticHeaders(name, l, defaulted.tenantHeader);
  const spec: TenantSpec = {
    name,
    netns,
    listen: l.listen ?? [],
    upstream: l.upstream,
    headers,
    ...defaulted,
  };
  const place = (key: keyof Layer["at"], fallback: string): At => l.at[key] ?? (Array.isArray(where) ? [...where, fallback] : "--netns");
  if (l.ingressHosts) {
    const hosts = l.ingressHosts.map((h) => {
      if (!h.includes("{tenant}")) return h;
      try {
        return normalizePattern(h.replaceAll("{tenant}", name));
      } catch (e) {
        throw new Invalid(`tenant '${name}': ${(e as Error).message}`, place("ingressHosts", "ingress_hosts"));
      }
    });
    if (!l.ingressBackend && !l.ingressTlsBackend) {
      throw new Invalid(
        `tenant '${name}' has ingress_hosts but no ingress_backend (HTTP, like "127.0.0.1:3000") or ingress_tls_backend (for sni:// listeners) inside its namespace`,
        place("ingressHosts", "ingress_hosts"),
      );
    }
    spec.ingress = { hosts, ...(l.ingressBackend ? { backend: l.ingressBackend } : {}), ...(l.ingressTlsBackend ? { tlsBackend: l.ingressTlsBackend } : {}) };
  }
  if (!l.upstream) return spec;
  // mode and upstream must agree: bytes cannot go to an http:// URL, nor requests to tcp://.
  const tcp = l.mode === "tcp";
  const scheme = l.upstream.unix ? "unix" : l.upstream.origin.slice(0, l.upstream.origin.indexOf(":"));
  if (tcp && scheme !== "tcp" && scheme !== "unix") {
    throw new Invalid(`tenant '${name}' has mode = "tcp" but upstream ${l.upstream.text} is ${scheme}://; TCP mode forwards bytes to "tcp://HOST:PORT" or "unix:/path.sock"`, place("upstream", "upstream"));
  }
  if (!tcp && scheme === "tcp") {
    throw new Invalid(`tenant '${name}': upstream ${l.upstream.text} is tcp://, which needs mode = "tcp" (or --mode tcp); HTTP mode takes http://, https:// or unix:`, place("upstream", "upstream"));
  }
  if (tcp && l.upstream.prefix !== "") {
    throw new Invalid(`tenant '${name}' has mode = "tcp": upstream ${l.upstream.text} cannot have a path prefix (there are no URLs in TCP mode)`, place("upstream", "upstream"));
  }
  if (tcp) spec.mode = "tcp";
  const https = spec.listen.find((a) => a.tls);
  if (l.tlsCert !== undefined || l.tlsKey !== undefined || https) {
    const missingTls = l.tlsCert === undefined ? "tls_cert" : l.tlsKey === undefined ? "tls_key" : undefined;
    if (missingTls) {
      const why = https ? `listens on ${https.text}` : `has ${missingTls === "tls_cert" ? "tls_key" : "tls_cert"}`;
      throw new Invalid(
        `tenant '${name}' ${why} but has no ${missingTls}; set tls_cert and tls_key (PEM files; {tenant} is the tenant's name) in [tenants.${name}] or [defaults], or pass --${missingTls.replace("_", "-")}`,
        https ? place("listen", "listen") : place(missingTls === "tls_cert" ? "tlsKey" : "tlsCert", missingTls),
      );
    }
    // An unused pair in [defaults] is harmless (tenants without https:// listeners ignore it).
    if (https) spec.tls = { cert: l.tlsCert!.replaceAll("{tenant}", name), key: l.tlsKey!.replaceAll("{tenant}", name) };
  }
  if (l.proxyProtocol === "v2") spec.proxyProtocol = "v2";
  if (l.upstreamCa !== undefined && scheme === "https") spec.upstreamCa = l.upstreamCa;
  if (l.upstreamInsecure === true && scheme === "https") spec.upstreamInsecure = true;
  return spec;
}

/**
 * The tenant's static headers once [defaults] and its own table are merged: none may be the tenant header or a
 * look-alike of it (a second stamp the upstream might read), and together they stay within MAX_STATIC_HEADER_BYTES.
 */
function staticHeaders(name: string, l: Layer, tenantHeader: string): Record<string, string> {
  const clash = l.headers.get(headerKey(tenantHeader));
  if (clash) {
    const same = clash.name.toLowerCase() === tenantHeader.toLowerCase() ? "has the same name as" : 'is a look-alike ("_" read as "-") of';
    throw new Invalid(
      `tenant '${name}': static header '${clash.name}' ${same} the tenant header '${tenantHeader}', ` +
        "which carries the tenant name; remove the static header or choose another tenant_header",
      clash.at,
    );
  }
  const headers: Record<string, string> = {};
  let bytes = 0;
  for (const h of l.headers.values()) {
    // Latin-1 only (values.ts): one byte per character.
    bytes += h.name.length + h.value.length + 4;
    if (bytes > MAX_STATIC_HEADER_BYTES) {
      throw new Invalid(
        `tenant '${name}': static headers up to '${h.name}' come to ${bytes} bytes, more than the ${MAX_STATIC_HEADER_BYTES} allowed per tenant (they go on every request)`,
        h.at,
      );
    }
    headers[h.name] = h.value;
  }
  return headers;
}

/** Every tenant setting that has a built-in value: the layer's, else that value. */
function tenantDefaults(l: Layer): TenantDefaults {
  const out: Record<string, unknown> = {};
  for (const s of TENANT_SETTINGS) if ("default" in s) out[s.field] = l[s.field] ?? s.default;
  return out as TenantDefaults;
}

/** The engine's settings from the merged [daemon] table and flags; max_url_length may not exceed max_header_size. */
function engineSettings(d: DaemonSettings, flags: FlagConfig): EngineSettings {
  const maxHeaderBytes = d.maxHeaderBytes ?? DEFAULT_ENGINE.maxHeaderBytes;
  // Unset, it follows a smaller max_header_size down rather than making that setting an error.
  const maxTargetBytes = d.maxTargetBytes ?? Math.min(DEFAULT_ENGINE.maxTargetBytes, maxHeaderBytes);
  if (maxTargetBytes > maxHeaderBytes) {
    const urlFlag = flags.daemon.maxTargetBytes !== undefined;
    const headerFlag = flags.daemon.maxHeaderBytes !== undefined;
    const url = urlFlag ? "--max-url-length" : "max_url_length";
    // Named as it was written; the default is named in the spelling the user is using for max_url_length.
    const header = headerFlag || (urlFlag && d.maxHeaderBytes === undefined) ? "--max-header-size" : "max_header_size";
    const headerText = d.maxHeaderBytes === undefined ? `the default ${header}` : header;
    throw new Invalid(
      `${url} ${maxTargetBytes} is larger than ${headerText} ${maxHeaderBytes}: the request target is part of the request head; ` +
        `lower ${url} or raise ${header}`,
      urlFlag ? "--max-url-length" : ["daemon", "max_url_length"],
    );
  }
  return {
    requestTimeoutMs: d.requestTimeoutMs ?? DEFAULT_ENGINE.requestTimeoutMs,
    idleTimeoutMs: d.idleTimeoutMs ?? DEFAULT_ENGINE.idleTimeoutMs,
    connectTimeoutMs: d.connectTimeoutMs ?? DEFAULT_ENGINE.connectTimeoutMs,
    bodyTimeoutMs: d.bodyTimeoutMs ?? DEFAULT_ENGINE.bodyTimeoutMs,
    maxHeaderBytes,
    maxHeaders: d.maxHeaders ?? DEFAULT_ENGINE.maxHeaders,
    maxTargetBytes,
  };
}

/** The metrics endpoint and series limit from the merged [daemon] table and flags; no listener unless one is set. */
function metricsSettings(d: DaemonSettings): MetricsSettings {
  return {
    ...(d.metricsListen !== undefined ? { listen: d.metricsListen } : {}),
    tenantLimit: d.metricsTenantLimit ?? DEFAULT_METRICS_TENANT_LIMIT,
  };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function defaultWorkers(): number {
  const n = globalThis.navigator?.hardwareConcurrency || availableParallelism();
  return Math.min(Math.max(1, n), 256);
}
