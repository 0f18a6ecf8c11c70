// The CNI plugin mode of the binary: ADD/DEL/CHECK/GC/STATUS turned into admin-socket calls, VERSION answered here.
import { AdminRequestError, DaemonNotRunning } from "../admin/client.ts";
import type { PutResult, TenantInput, TenantView } from "../admin/types.ts";
import { Invalid } from "../config/layer.ts";
import { checkTenantTable } from "../config/tenant-table.ts";
import { CniError, CODE, errorBody, type Invocation, type NetConf, ownerOf, passThrough, readInvocation, readNetConf, SUPPORTED_VERSIONS, tenantNameOf } from "./protocol.ts";

/** The admin calls the plugin makes (AdminClient; unit tests fake it). */
export interface PluginAdmin {
  putTenant(name: string, input: TenantInput): Promise<PutResult>;
  deleteTenant(name: string, owner?: string): Promise<boolean>;
  tenants(): Promise<TenantView[]>;
  status(): Promise<unknown>;
}

export interface PluginOutcome {
  /** What goes to stdout: a result, a version list, an error, or nothing. */
  stdout: string;
  /** One line for stderr (the runtime logs it), when something is worth saying. */
  note?: string;
  exitCode: number;
}

const json = (v: unknown) => `${JSON.stringify(v)}\n`;

/** Run one CNI command: `env` is the runtime's environment, `stdin` the network config. Never throws. */
export async function runPlugin(env: Record<string, string | undefined>, stdin: string, adminFor: (socket: string) => PluginAdmin): Promise<PluginOutcome> {
  let version: string = SUPPORTED_VERSIONS.at(-1)!;
  try {
    const inv = readInvocation(env);
    if (inv.command === "VERSION") {
      // The runtime may send any version here (even one we do not speak): the answer lists ours.
      const asked = /"cniVersion"\s*:\s*"([0-9.]+)"/.exec(stdin)?.[1];
      return { stdout: json({ cniVersion: asked ?? version, supportedVersions: SUPPORTED_VERSIONS }), exitCode: 0 };
    }
    const conf = readNetConf(stdin);
    version = conf.cniVersion;
    return await COMMANDS[inv.command](inv, conf, adminFor(conf.adminSocket));
  } catch (e) {
    const err = e instanceof CniError ? e : new CniError(CODE.io, (e as Error)?.message ?? String(e));
    return { stdout: json(errorBody(version, err)), exitCode: 1 };
  }
}

type Handler = (inv: Invocation, conf: NetConf, admin: PluginAdmin) => Promise<PluginOutcome>;

const COMMANDS: Record<Exclude<Invocation["command"], "VERSION">, Handler> = { ADD: add, DEL: del, CHECK: check, GC: gc, STATUS: status };

/** A daemon that cannot be reached is "try again later"; its refusals keep their message. */
function fromAdmin(e: unknown, socket: string): CniError {
  if (e instanceof DaemonNotRunning) return new CniError(CODE.tryAgainLater, `nsproxy is not running at ${socket}`, "start the nsproxy daemon (on Kubernetes: its DaemonSet pod on this node), or set \"failOpen\": true");
  if (e instanceof AdminRequestError) return new CniError(e.status === 400 ? CODE.invalidConfig : CODE.refused, `nsproxy refused the tenant: ${e.message}`, e.field ? `field ${e.field}` : "");
  return new CniError(CODE.io, `nsproxy at ${socket}: ${(e as Error)?.message ?? String(e)}`);
}

/**
 * ADD: the tenant is added (or replaced: a pod's new sandbox keeps its name) and must serve before the result
 * goes back, so a pod never starts without its stamp — unless failOpen says a pod may start without it.
 */
async function add(inv: Invocation, conf: NetConf, admin: PluginAdmin): Promise<PluginOutcome> {
  const name = tenantNameOf(inv);
  const input = { ...conf.tenant, netns: inv.netns, owner: ownerOf(inv) } as TenantInput;
  try {
    checkTenantTable(name, input);
  } catch (e) {
    if (!(e instanceof Invalid)) throw e;
    throw new CniError(CODE.invalidConfig, `tenant.${Array.isArray(e.at) ? e.at.join(".") : e.at}: ${e.message}`);
  }
  const ok: PluginOutcome = { stdout: json(passThrough(conf)), exitCode: 0 };
  let failure: CniError;
  try {
    const { tenant } = await admin.putTenant(name, input);
    if (tenant.state === "serving") return ok;
    failure = new CniError(CODE.notServing, `tenant ${name} is ${tenant.state}: ${tenant.error ?? "no reason given"}`, `the daemon must see ${inv.netns}: mount the host's netns directory into its pod with mountPropagation HostToContainer`);
    // Nothing is left behind for a pod that does not start; with failOpen the daemon keeps trying.
    if (!conf.failOpen) await admin.deleteTenant(name, ownerOf(inv)).catch(() => undefined);
  } catch (e) {
    failure = fromAdmin(e, conf.adminSocket);
  }
  if (conf.failOpen) return { ...ok, note: `nsproxy: failOpen: the pod starts without its tenant: ${failure.message}` };
  throw failure;
}

/** DEL is idempotent: a tenant already gone, another container's, or a daemon that is down all succeed. */
async function del(inv: Invocation, _conf: NetConf, admin: PluginAdmin): Promise<PluginOutcome> {
  let name: string;
  try {
    name = tenantNameOf(inv);
  } catch {
    return { stdout: "", exitCode: 0, note: "nsproxy: DEL: no valid tenant name in CNI_ARGS; nothing to remove" };
  }
  try {
    await admin.deleteTenant(name, ownerOf(inv));
    return { stdout: "", exitCode: 0 };
  } catch (e) {
    if (e instanceof DaemonNotRunning) return { stdout: "", exitCode: 0, note: `nsproxy: DEL ${name}: the daemon is down; it drops the tenant once the namespace is gone` };
    if (e instanceof AdminRequestError && e.status === 409) return { stdout: "", exitCode: 0, note: `nsproxy: DEL ${name}: ${e.message}` };
    throw fromAdmin(e, _conf.adminSocket);
  }
}

/** CHECK: the tenant is this container's, on this namespace, and serving. */
async function check(inv: Invocation, conf: NetConf, admin: PluginAdmin): Promise<PluginOutcome> {
  const name = tenantNameOf(inv);
  let tenants: TenantView[];
  try {
    tenants = await admin.tenants();
  } catch (e) {
    throw fromAdmin(e, conf.adminSocket);
  }
  const t = tenants.find((x) => x.name === name);
  const wrong = !t ? "is not there" : t.owner !== ownerOf(inv) ? `belongs to ${t.owner ?? "the operator"}` : t.netns !== inv.netns ? `serves ${t.netns}, not ${inv.netns}` : t.state !== "serving" ? `is ${t.state}: ${t.error ?? ""}` : undefined;
  if (wrong) throw new CniError(CODE.notServing, `tenant ${name} ${wrong}`);
  return { stdout: "", exitCode: 0 };
}

/** GC (1.1): every CNI tenant whose container is not among the valid attachments goes. */
async function gc(_inv: Invocation, conf: NetConf, admin: PluginAdmin): Promise<PluginOutcome> {
  if (!conf.validAttachments) return { stdout: "", exitCode: 0 };
  const valid = new Set(conf.validAttachments.map((a) => `cni:${a.containerID}`));
  try {
    for (const t of await admin.tenants()) {
      if (t.owner?.startsWith("cni:") && !valid.has(t.owner)) await admin.deleteTenant(t.name, t.owner);
    }
  } catch (e) {
    throw fromAdmin(e, conf.adminSocket);
  }
  return { stdout: "", exitCode: 0 };
}

/** STATUS (1.1): ready for ADDs when the daemon answers. */
async function status(_inv: Invocation, conf: NetConf, admin: PluginAdmin): Promise<PluginOutcome> {
  try {
    await admin.status();
  } catch (e) {
    const err = fromAdmin(e, conf.adminSocket);
    if (conf.failOpen) return { stdout: "", exitCode: 0 };
    throw new CniError(CODE.notAvailable, err.message, err.details);
  }
  return { stdout: "", exitCode: 0 };
}
