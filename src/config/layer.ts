// One source of settings (built-in, [defaults], flags or a tenant table) and where each of its values came from.
import { type LayerField, type LayerValues, TENANT_SETTINGS } from "./settings.ts";

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

/** The settings a tenant may take from any layer (one per tenant entry of settings.ts); undefined means "not set here". */
export type Layer = LayerValues & {
  /** Keyed by headerKey (values.ts): X-Plan, x-plan and X_Plan are one header to an upstream, so one entry here. */
  headers: Map<string, StaticHeader>;
  at: Partial<Record<LayerField, At>>;
};

/** The single-valued settings of a layer. */
export const LAYER_FIELDS: readonly LayerField[] = TENANT_SETTINGS.map((s) => s.field);

export function emptyLayer(): Layer {
  return { headers: new Map(), at: {} };
}

/** Later layers win field by field; static headers merge name by name. */
export function mergeLayers(layers: Layer[]): Layer {
  const out = emptyLayer();
  for (const l of layers) {
    for (const f of LAYER_FIELDS) {
      if (l[f] === undefined) continue;
      (out as Record<LayerField, unknown>)[f] = l[f];
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
