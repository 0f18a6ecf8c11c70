// The CNI side of the plugin: the runtime's environment and network config read and checked, results and errors as the spec shapes them.
import { createHash } from "node:crypto";
import { isTable, OWNER_RE } from "../config/schema.ts";
import { badTenantName, isValidTenantName } from "../config/values.ts";
import { DEFAULT_ADMIN_SOCKET } from "../config/settings.ts";

/** The spec versions this plugin speaks; GC and STATUS are 1.1's. */
export const SUPPORTED_VERSIONS = ["0.4.0", "1.0.0", "1.1.0"] as const;

/** Error codes of the CNI spec, and this plugin's own (100 and up, as the spec reserves 0-99). */
export const CODE = {
  incompatibleVersion: 1,
  invalidEnv: 4,
  io: 5,
  decode: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  notAvailable: 50,
  /** The daemon holds the tenant but it does not serve (its namespace cannot be opened from the daemon). */
  notServing: 100,
  /** The daemon refused the tenant (a name, an address or a host another tenant holds). */
  refused: 101,
} as const;

/** A failure the runtime gets as {cniVersion, code, msg, details} on stdout and a non-zero exit. */
export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = "",
  ) {
    super(message);
    this.name = "CniError";
  }
}

export type Command = "ADD" | "DEL" | "CHECK" | "VERSION" | "GC" | "STATUS";

/** The plugin's entry of the conflist, as the runtime hands it over (prevResult added when chained). */
export interface NetConf {
  cniVersion: string;
  name: string;
  adminSocket: string;
  /** A daemon that cannot be reached or does not serve the tenant fails the ADD unless this is true. */
  failOpen: boolean;
  /** The keys of a [tenants.NAME] table but netns and owner, which the plugin sets. */
  tenant: Record<string, unknown>;
  prevResult?: Record<string, unknown>;
  /** GC (1.1): the attachments that are still valid; every other CNI-owned tenant goes. */
  validAttachments?: { containerID: string; ifname?: string }[];
}

export interface Invocation {
  command: Command;
  containerId: string;
  netns: string;
  args: Map<string, string>;
}

const COMMANDS: readonly string[] = ["ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS"];

/** CNI_COMMAND and the rest of the environment; what a command needs and lacks is an invalid-environment error. */
export function readInvocation(env: Record<string, string | undefined>): Invocation {
  const command = env.CNI_COMMAND ?? "";
  if (!COMMANDS.includes(command)) throw new CniError(CODE.invalidEnv, `CNI_COMMAND ${JSON.stringify(command)} is not one of ${COMMANDS.join(", ")}`);
  const args = new Map<string, string>();
  for (const part of (env.CNI_ARGS ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0) args.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const inv: Invocation = { command: command as Command, containerId: env.CNI_CONTAINERID ?? "", netns: env.CNI_NETNS ?? "", args };
  if (["ADD", "DEL", "CHECK"].includes(command) && !inv.containerId) throw new CniError(CODE.invalidEnv, `CNI_CONTAINERID is required for ${command}`);
  if (["ADD", "CHECK"].includes(command) && !inv.netns.startsWith("/")) throw new CniError(CODE.invalidEnv, `CNI_NETNS must be the namespace's absolute path for ${command}, not ${JSON.stringify(inv.netns)}`);
  return inv;
}

/** Parse the network config on stdin; every key the plugin reads is checked, the runtime's own keys are left alone. */
export function readNetConf(text: string): NetConf {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new CniError(CODE.decode, `network config on stdin is not JSON: ${(e as Error).message}`);
  }
  if (!isTable(doc)) throw new CniError(CODE.decode, "network config on stdin must be a JSON object");
  const version = doc.cniVersion;
  if (typeof version !== "string" || !(SUPPORTED_VERSIONS as readonly string[]).includes(version)) {
    throw new CniError(CODE.incompatibleVersion, `cniVersion ${JSON.stringify(version)} is not supported (supported: ${SUPPORTED_VERSIONS.join(", ")})`);
  }
  const conf: NetConf = { cniVersion: version, name: typeof doc.name === "string" ? doc.name : "", adminSocket: DEFAULT_ADMIN_SOCKET, failOpen: false, tenant: {} };
  if (doc.adminSocket !== undefined) {
    if (typeof doc.adminSocket !== "string" || !doc.adminSocket.startsWith("/")) throw new CniError(CODE.invalidConfig, `adminSocket must be an absolute path, not ${JSON.stringify(doc.adminSocket)}`);
    conf.adminSocket = doc.adminSocket;
  }
  if (doc.failOpen !== undefined) {
    if (typeof doc.failOpen !== "boolean") throw new CniError(CODE.invalidConfig, `failOpen must be true or false, not ${JSON.stringify(doc.failOpen)}`);
    conf.failOpen = doc.failOpen;
  }
  if (doc.tenant !== undefined) {
    if (!isTable(doc.tenant)) throw new CniError(CODE.invalidConfig, 'tenant must be an object of tenant keys, like {"listen": "169.254.169.254:80", "upstream": "http://127.0.0.1:9000"}');
    for (const k of ["netns", "owner"]) {
      if (k in doc.tenant) throw new CniError(CODE.invalidConfig, `tenant.${k} is set by the plugin (from CNI_NETNS and CNI_CONTAINERID); remove it from the config`);
    }
    conf.tenant = doc.tenant;
  }
  if (doc.prevResult !== undefined) {
    if (!isTable(doc.prevResult)) throw new CniError(CODE.decode, "prevResult must be a JSON object");
    conf.prevResult = doc.prevResult;
  }
  const valid = doc["cni.dev/valid-attachments"];
  if (Array.isArray(valid)) conf.validAttachments = valid.filter(isTable).map((a) => ({ containerID: String(a.containerID ?? "") }));
  return conf;
}

/** How many characters of a container id name a tenant that has no pod name (as `docker ps` shortens ids). */
const SHORT_ID = 12;

/** A tenant name's longest form (the validator's limit) and how a longer pod name is cut to fit. */
const NAME_MAX = 64;
const HASH_HEX = 16;
/** The validator's characters: a long name holding any other is refused whole, not hidden in the hash. */
const NAME_CHARS = /^[A-Za-z0-9._-]+$/;

/**
 * A name over NAME_MAX: its first characters (readable in `tenant ls` and the stamp), "_", then 16 hex of the
 * sha256 of the whole name, so ADD, CHECK and DEL of one pod reach one tenant. Kubernetes names never hold "_", so
 * no pod's own name is another's shortened one; two long names with the same prefix differ by 64 bits of hash.
 */
export function fitTenantName(name: string): string {
  if (name.length <= NAME_MAX || !NAME_CHARS.test(name)) return name;
  const hash = createHash("sha256").update(name).digest("hex").slice(0, HASH_HEX);
  return `${name.slice(0, NAME_MAX - HASH_HEX - 1)}_${hash}`;
}

/**
 * The tenant's name: NAMESPACE.POD from Kubernetes' CNI_ARGS, the pod (or container) name alone when the runtime
 * gives no namespace (podman passes K8S_POD_NAME), else the container id shortened; a longer one is fitted.
 * Stable across restarts when a name is given; an id changes with each container.
 */
export function tenantNameOf(inv: Invocation): string {
  const pod = inv.args.get("K8S_POD_NAME");
  const ns = inv.args.get("K8S_POD_NAMESPACE");
  const full = pod ? (ns ? `${ns}.${pod}` : pod) : inv.containerId.slice(0, SHORT_ID);
  const name = fitTenantName(full);
  if (!isValidTenantName(name)) {
    const from = pod ? (ns ? "K8S_POD_NAMESPACE.K8S_POD_NAME" : "K8S_POD_NAME") : "CNI_CONTAINERID";
    throw new CniError(CODE.invalidEnv, `${badTenantName(full, `(made from ${from})`)}; a tenant name travels in a header`);
  }
  return name;
}

/** The owner a CNI tenant records: the daemon drops it once its namespace is gone, and a DEL of another container leaves it. */
export function ownerOf(inv: Invocation): string {
  const owner = `cni:${inv.containerId}`;
  if (!OWNER_RE.test(owner)) throw new CniError(CODE.invalidEnv, `CNI_CONTAINERID ${JSON.stringify(inv.containerId)} is not an id (1-128 letters, digits, '.', '_', '-')`);
  return owner;
}

/** What ADD prints: the previous plugin's result, unchanged but for the version the runtime asked for. */
export function passThrough(conf: NetConf): Record<string, unknown> {
  return { ...(conf.prevResult ?? {}), cniVersion: conf.cniVersion };
}

export function errorBody(cniVersion: string, err: CniError): Record<string, unknown> {
  return { cniVersion, code: err.code, msg: err.message, ...(err.details ? { details: err.details } : {}) };
}
