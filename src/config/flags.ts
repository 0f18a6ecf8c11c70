// Turns command-line flags into a settings layer, daemon settings and extra tenants; errors name the flag.
import { at, emptyLayer, Invalid, type Layer } from "./layer.ts";
import { type DaemonSettings, ENGINE_DURATIONS, ENGINE_LIMITS, MAX_CONNECTIONS, METRICS_TENANT_LIMIT, parseIngressHosts } from "./schema.ts";
import {
  checkHeaderName,
  parseDuration,
  parseListen,
  parseLogFormat,
  parseNetnsRef,
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
import type { DiscoverSpec } from "./types.ts";

/** Flag values as citty hands them over; undefined (or an empty list) means the flag was not given. */
export interface FlagOverrides {
  listen?: string[];
  upstream?: string;
  netns?: string[];
  tenantHeader?: string;
  upstreamTimeout?: string;
  maxConnections?: string | number;
  workers?: string | number;
  shutdownGrace?: string;
  logFormat?: string;
  accessLog?: boolean;
  discover?: string[];
  tenantsDir?: string;
  adminSocket?: string;
  requestTimeout?: string;
  idleTimeout?: string;
  connectTimeout?: string;
  bodyTimeout?: string;
  maxHeaderSize?: string | number;
  maxHeaders?: string | number;
  maxUrlLength?: string | number;
  metricsListen?: string;
  metricsTenantLimit?: string | number;
  mode?: string;
  tlsCert?: string;
  tlsKey?: string;
  upstreamProxyProtocol?: string;
  upstreamCa?: string;
  upstreamInsecure?: boolean;
  ingressListen?: string[];
  ingressHost?: string[];
  ingressBackend?: string;
  ingressTlsBackend?: string;
}

export interface FlagTenant {
  name: string;
  netns: string;
  /** The REF as typed, for messages. */
  ref: string;
}

export interface FlagConfig {
  layer: Layer;
  daemon: DaemonSettings;
  tenants: FlagTenant[];
  discover: DiscoverSpec[];
}

export function readFlags(f: FlagOverrides): FlagConfig {
  const layer = emptyLayer();
  if (f.listen && f.listen.length > 0) {
    layer.listen = f.listen.map((s) => at("--listen", () => parseListen(s)));
    layer.at.listen = "--listen";
  }
  if (f.upstream !== undefined) {
    const s = f.upstream;
    layer.upstream = at("--upstream", () => parseUpstream(s));
    layer.at.upstream = "--upstream";
  }
  if (f.tenantHeader !== undefined) {
    const s = f.tenantHeader;
    layer.tenantHeader = at("--tenant-header", () => checkHeaderName(s, "tenant_header"));
    layer.at.tenantHeader = "--tenant-header";
  }
  if (f.upstreamTimeout !== undefined) {
    layer.upstreamTimeoutMs = at("--upstream-timeout", () => flagDuration(f.upstreamTimeout));
    if (layer.upstreamTimeoutMs === 0) throw new Invalid('the upstream timeout must be longer than 0, like "30s"', "--upstream-timeout");
    layer.at.upstreamTimeoutMs = "--upstream-timeout";
  }
  if (f.maxConnections !== undefined) {
    const { min, max, default: example } = MAX_CONNECTIONS;
    layer.maxConnections = at("--max-connections", () => parseInteger(f.maxConnections, "max_connections", min, max, example));
    layer.at.maxConnections = "--max-connections";
  }
  for (const [flag, value, field, template] of [
    ["--tls-cert", f.tlsCert, "tlsCert", true],
    ["--tls-key", f.tlsKey, "tlsKey", true],
    ["--upstream-ca", f.upstreamCa, "upstreamCa", false],
  ] as const) {
    if (value === undefined) continue;
    layer[field] = at(flag, () => parseTlsPath(value, flag.slice(2).replace("-", "_"), template));
    layer.at[field] = flag;
  }
  if (f.upstreamInsecure !== undefined) {
    layer.upstreamInsecure = f.upstreamInsecure;
    layer.at.upstreamInsecure = "--upstream-insecure";
  }
  if (f.mode !== undefined) {
    const v = f.mode;
    layer.mode = at("--mode", () => parseMode(v));
    layer.at.mode = "--mode";
  }
  if (f.upstreamProxyProtocol !== undefined) {
    const v = f.upstreamProxyProtocol;
    layer.proxyProtocol = at("--upstream-proxy-protocol", () => parseProxyProtocol(v));
    layer.at.proxyProtocol = "--upstream-proxy-protocol";
  }
  if (f.ingressHost && f.ingressHost.length > 0) {
    const hosts = f.ingressHost;
    layer.ingressHosts = at("--ingress-host", () => parseIngressHosts(hosts));
    layer.at.ingressHosts = "--ingress-host";
  }
  for (const [flag, value, field] of [["--ingress-backend", f.ingressBackend, "ingressBackend"], ["--ingress-tls-backend", f.ingressTlsBackend, "ingressTlsBackend"]] as const) {
    if (value === undefined) continue;
    layer[field] = at(flag, () => parseBackend(value, flag.slice(2).replaceAll("-", "_")));
    layer.at[field] = flag;
  }
  const daemon: DaemonSettings = {};
  if (f.ingressListen && f.ingressListen.length > 0) daemon.ingressListen = f.ingressListen.map((s) => at("--ingress-listen", () => parseIngressListen(s)));
  if (f.workers !== undefined) daemon.workers = at("--workers", () => parseWorkers(f.workers));
  if (f.shutdownGrace !== undefined) daemon.shutdownGraceMs = at("--shutdown-grace", () => flagDuration(f.shutdownGrace));
  if (f.logFormat !== undefined) daemon.logFormat = at("--log-format", () => parseLogFormat(f.logFormat));
  if (f.accessLog !== undefined) daemon.accessLog = f.accessLog;
  for (const [flag, value, field] of [["--tenants-dir", f.tenantsDir, "tenantsDir"], ["--admin-socket", f.adminSocket, "adminSocket"]] as const) {
    if (value === undefined) continue;
    if (!value.startsWith("/")) throw new Invalid(`${JSON.stringify(value)} must be an absolute path`, flag);
    daemon[field] = value;
  }
  for (const [key, field, option, example] of ENGINE_DURATIONS) {
    if (f[option] === undefined) continue;
    const flag = `--${key.replaceAll("_", "-")}`;
    const ms = at(flag, () => flagDuration(f[option]));
    if (ms === 0) throw new Invalid(`the ${key.replace("_", " ")} must be longer than 0, like "${example}"`, flag);
    daemon[field] = ms;
  }
  for (const [key, field, option, min, max, example] of ENGINE_LIMITS) {
    if (f[option] === undefined) continue;
    daemon[field] = at(`--${key.replaceAll("_", "-")}`, () => parseInteger(f[option], key, min, max, example));
  }
  if (f.metricsListen !== undefined) {
    const s = f.metricsListen;
    daemon.metricsListen = at("--metrics-listen", () => parseListen(s, false));
  }
  if (f.metricsTenantLimit !== undefined) {
    const { min, max, default: example } = METRICS_TENANT_LIMIT;
    daemon.metricsTenantLimit = at("--metrics-tenant-limit", () => parseInteger(f.metricsTenantLimit, "metrics_tenant_limit", min, max, example));
  }
  const tenants = (f.netns ?? []).map((ref) => ({ ref, ...at("--netns", () => parseNetnsRef(ref)) }));
  const discover = (f.discover ?? []).map((d) => at("--discover", () => parseDiscover(d)));
  return { layer, daemon, tenants, discover };
}

/** On the command line every value is a string, so a bare number means seconds as it does in the file. */
function flagDuration(s: string | undefined): number {
  const t = s?.trim() ?? "";
  return parseDuration(/^\d+(\.\d+)?$/.test(t) ? Number(t) : s);
}
