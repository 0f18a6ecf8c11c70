// Checks a parsed TOML document against the config schema and turns it into layers; every failure names its key path.
import { at, emptyLayer, Invalid, type Layer } from "./layer.ts";
import { typeName } from "./kinds.ts";
import { DAEMON_KEYS, DAEMON_SETTINGS, type DaemonSettings, TENANT_SETTINGS } from "./settings.ts";
import { suggest } from "./suggest.ts";
import { badTenantName, checkHeaderName, headerKey, isValidHeaderValue, isValidTenantName, netnsPath, parseDiscover, DEFAULT_DOCKER_SOCKET } from "./values.ts";
import type { DiscoverSpec } from "./types.ts";

export type { DaemonSettings } from "./settings.ts";

export interface FileTenant {
  name: string;
  netns: string;
  layer: Layer;
  /** Who added it and goes away with its namespace ("cni:CONTAINER-ID"); see OWNER_RE. */
  owner?: string;
}

/**
 * owner = "KIND:ID": the tenant belongs to something outside nsproxy (a CNI attachment, "cni:<container id>").
 * Such a tenant is removed once its namespace file is gone, and a DELETE naming another owner leaves it alone.
 */
export const OWNER_RE = /^[a-z][a-z0-9-]{0,15}:[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface FileConfig {
  daemon: DaemonSettings;
  defaults: Layer;
  tenants: FileTenant[];
  discover: DiscoverSpec[];
  /** [[discover]] docker = …: Engine API sockets whose labelled containers are tenants. */
  docker: string[];
}

type Table = Record<string, unknown>;

const TOP_KEYS = ["daemon", "defaults", "tenants", "discover"];
const DISCOVER_KEYS = ["dir", "glob", "docker"];
const LAYER_KEYS: readonly string[] = [...TENANT_SETTINGS.map((s) => s.key), "headers"];
/** The keys of a [tenants.NAME] table, in the order a stored tenant file lists them. */
export const TENANT_KEYS: readonly string[] = ["netns", "owner", ...LAYER_KEYS];

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
    tenants: Object.entries(tenants ?? {}).map(([name, t]) => notOwned(readTenant(name, t))),
    ...readDiscoverList(doc.discover),
  };
}

/** owner marks a tenant added at runtime that goes with its namespace: the config file's tenants stay until edited. */
function notOwned(t: FileTenant): FileTenant {
  if (t.owner !== undefined) throw new Invalid(`owner is set by whoever adds a tenant at runtime (the CNI plugin), not in the config file`, ["tenants", t.name, "owner"]);
  return t;
}

/** [[discover]] tables: { dir = "/run/netns", glob = "*" }, or { docker = "/var/run/docker.sock" } (true: that default). */
function readDiscoverList(v: unknown): { discover: DiscoverSpec[]; docker: string[] } {
  const out = { discover: [] as DiscoverSpec[], docker: [] as string[] };
  if (v === undefined) return out;
  if (!Array.isArray(v)) throw wrongType(v, ["discover"], 'an array of tables, like [[discover]] with dir = "/run/netns"');
  v.forEach((t, i) => {
    const path = ["discover", String(i)];
    if (!isTable(t)) throw wrongType(t, ["discover"], "a table, like [[discover]]");
    checkKeys(t, ["discover"], DISCOVER_KEYS);
    if (t.docker !== undefined) {
      if (t.dir !== undefined || t.glob !== undefined) throw new Invalid("[[discover]] has either docker (containers) or dir and glob (namespace files), not both", [...path, "docker"]);
      if (t.docker === true) out.docker.push(DEFAULT_DOCKER_SOCKET);
      else if (typeof t.docker === "string" && t.docker.startsWith("/")) out.docker.push(t.docker);
      else throw wrongType(t.docker, [...path, "docker"], `an absolute socket path, like "${DEFAULT_DOCKER_SOCKET}" (or true for that one)`);
      return;
    }
    if (typeof t.dir !== "string") throw new Invalid('[[discover]] needs dir = "/run/netns" (an absolute directory) or docker = "/var/run/docker.sock"', [...path, "dir"]);
    if (t.glob !== undefined && typeof t.glob !== "string") throw wrongType(t.glob, [...path, "glob"], 'a string, like "tenant-*"');
    out.discover.push(at([...path, "dir"], () => parseDiscover(t.dir as string, (t.glob as string | undefined) ?? "*")));
  });
  return out;
}

function readDaemon(t: Table): DaemonSettings {
  const out: Record<string, unknown> = {};
  for (const s of DAEMON_SETTINGS) {
    if (t[s.key] !== undefined) out[s.field] = at(["daemon", s.key], () => s.kind.file(t[s.key], s.key));
  }
  return out as DaemonSettings;
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
  const out: FileTenant = { name, netns, layer: readLayer(t, path) };
  if (t.owner !== undefined) {
    if (typeof t.owner !== "string" || !OWNER_RE.test(t.owner)) throw new Invalid(`owner must be KIND:ID, like "cni:4f1c2a…" (letters, digits, '.', '_', '-'), not ${JSON.stringify(t.owner)}`, [...path, "owner"]);
    out.owner = t.owner;
  }
  return out;
}

/** The settings shared by [defaults] and [tenants.NAME]; unknown keys were checked by the caller. */
function readLayer(t: Table, path: string[]): Layer {
  const layer = emptyLayer();
  for (const s of TENANT_SETTINGS) {
    if (t[s.key] === undefined) continue;
    const where = [...path, s.key];
    (layer as Record<string, unknown>)[s.field] = at(where, () => s.kind.file(t[s.key], s.key));
    layer.at[s.field] = where;
  }
  if (t.headers !== undefined) readHeaders(t.headers, layer, [...path, "headers"]);
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
    const key = headerKey(name);
    const twin = layer.headers.get(key);
    if (twin) throw new Invalid(`header '${name}' is set twice (also as '${twin.name}'); header names ignore case, and an upstream reads "_" as "-"`, where);
    layer.headers.set(key, { name, value, at: where });
  }
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

function wrongType(v: unknown, path: string[], expected: string): Invalid {
  return new Invalid(`${path.at(-1)} must be ${expected}, not ${typeName(v)}`, path);
}
