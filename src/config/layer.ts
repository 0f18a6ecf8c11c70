// One source of settings (built-in, [defaults], flags or a tenant table) and where each of its values came from.
import type { ListenAddr, Upstream } from "./types.ts";

/** Where a value was written: a key path in the config file, or a flag name such as "--listen". */
export type At = string[] | string;

/** A validation failure, still carrying its source; loadConfig turns it into a ConfigError with file:line. */
export class Invalid extends Error {
  constructor(
    message: string,
    readonly at: At,
  ) {
    super(message);
  }
}

/** Runs a value parser from values.ts and pins its plain Error on the place the value came from. */
export function at<T>(where: At, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof Invalid) throw e;
    throw new Invalid(e instanceof Error ? e.message : String(e), where);
  }
}

export interface StaticHeader {
  name: string;
  value: string;
  at: At;
}

/** The settings a tenant may take from any layer; undefined means "not set here". */
export interface Layer {
  listen?: ListenAddr[];
  upstream?: Upstream;
  tenantHeader?: string;
  upstreamTimeoutMs?: number;
  maxConnections?: number;
  /** Paths, possibly with {tenant} (filled in per tenant). */
  tlsCert?: string;
  tlsKey?: string;
  mode?: "http" | "tcp";
  proxyProtocol?: "v2" | "none";
  upstreamCa?: string;
  upstreamInsecure?: boolean;
  /** Ingress (issue 11): normalized host patterns and the backends inside the namespace. */
  ingressHosts?: string[];
  ingressBackend?: ListenAddr;
  ingressTlsBackend?: ListenAddr;
  /** Keyed by lower-case name: header names compare case-insensitively. */
  headers: Map<string, StaticHeader>;
  at: Partial<Record<Field, At>>;
}

/** The single-valued settings of a layer, in merge order. */
export const LAYER_FIELDS = [
  "listen",
  "upstream",
  "tenantHeader",
  "upstreamTimeoutMs",
  "maxConnections",
  "tlsCert",
  "tlsKey",
  "mode",
  "proxyProtocol",
  "upstreamCa",
  "upstreamInsecure",
  "ingressHosts",
  "ingressBackend",
  "ingressTlsBackend",
] as const;
type Field = (typeof LAYER_FIELDS)[number];

export function emptyLayer(): Layer {
  return { headers: new Map(), at: {} };
}

/** Later layers win field by field; static headers merge name by name. */
export function mergeLayers(layers: Layer[]): Layer {
  const out = emptyLayer();
  for (const l of layers) {
    for (const f of LAYER_FIELDS) {
      if (l[f] === undefined) continue;
      (out as unknown as Record<Field, unknown>)[f] = l[f];
      out.at[f] = l.at[f];
    }
    for (const [k, h] of l.headers) out.headers.set(k, h);
  }
  return out;
}

/** Renders a key path as TOML would spell it: tenants."acme.x".upstream. */
export function dotted(path: string[]): string {
  return path.map((p) => (/^[A-Za-z0-9_-]+$/.test(p) ? p : JSON.stringify(p))).join(".");
}
