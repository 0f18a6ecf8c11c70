// One tenant as a table of keys — a tenants-dir file or an admin PUT body — checked with the same rules as [tenants.NAME].
import { parse, stringify, TomlError } from "smol-toml";
import { ConfigError } from "../errors.ts";
import { Invalid } from "./layer.ts";
import { locateKey } from "./locate.ts";
import { type FileTenant, readTenant, TENANT_KEYS } from "./schema.ts";
import { checkTomlBounds } from "./toml-bounds.ts";

/** The keys a tenant table may have, in the order a stored file lists them. */
const ORDER = TENANT_KEYS;

/**
 * Check `table` as [tenants.NAME] would be checked. Throws Invalid whose `at` is the key path inside the
 * table (["listen"], ["headers", "X-Plan"]), not prefixed by ["tenants", name].
 */
export function checkTenantTable(name: string, table: unknown): FileTenant {
  try {
    return readTenant(name, table);
  } catch (e) {
    if (e instanceof Invalid && Array.isArray(e.at) && e.at[0] === "tenants") throw new Invalid(e.message, e.at.slice(2));
    throw e;
  }
}

/** A table in a canonical form, so that equal specs compare and serialize equally: listen always an array, keys ordered. */
export function normalizeTenantTable(table: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ORDER) {
    const v = table[k];
    if (v === undefined) continue;
    out[k] = k === "listen" && typeof v === "string" ? [v] : v;
  }
  return out;
}

export function tenantTableToToml(name: string, table: Record<string, unknown>): string {
  return `# nsproxy tenant '${name}', written by nsproxy; same keys as a [tenants.${name}] table\n${stringify(normalizeTenantTable(table))}\n`;
}

/** Keys plus array elements in one tenant's file: a tenant has a dozen settings, and maybe hundreds of headers or hosts. */
export const MAX_TENANT_FILE_ITEMS = 10_000;

/** Parse and check a tenants-dir file. Throws ConfigError naming "file:line" and the key. */
export function parseTenantFile(file: string, name: string, source: string): { tenant: FileTenant; table: Record<string, unknown> } {
  const bound = checkTomlBounds(source, MAX_TENANT_FILE_ITEMS);
  if (bound) throw new ConfigError(bound.message, `${file}:${bound.line}`);
  let table: Record<string, unknown>;
  try {
    table = parse(source);
  } catch (e) {
    if (e instanceof TomlError) throw new ConfigError(`invalid TOML: ${e.message.split("\n")[0]}`, `${file}:${e.line}`);
    throw e;
  }
  try {
    return { tenant: checkTenantTable(name, table), table: normalizeTenantTable(table) };
  } catch (e) {
    if (!(e instanceof Invalid)) throw e;
    const path = Array.isArray(e.at) ? e.at : [];
    const line = path.length ? locateKey(source, path) : undefined;
    throw new ConfigError(e.message, line ? `${file}:${line}` : file, path.join(".") || undefined);
  }
}
