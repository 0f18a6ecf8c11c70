// Least privilege at start: run as the configured user (or as started, by systemd's User= or setpriv) with only the
// capabilities the configuration needs, no_new_privs, and a bounding set reduced to the same.
//
// Credentials belong to each thread and libnetns makes raw syscalls, so the change is made in C right before the
// one exec nsproxy does at start anyway (window-safe.ts): the new image starts with a single thread that already
// has them, and every thread the runtime starts after inherits them. See nsx_drop_exec in libnetns.c.
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Loaded } from "../config/load.ts";
import type { TenantSpec } from "../config/types.ts";
import { DEFAULT_ADMIN_SOCKET, DEFAULT_TENANTS_DIR } from "../config/settings.ts";
import { readStoredTenants } from "../control/desired.ts";
import { ConfigError, NsproxyError } from "../errors.ts";
import { logger } from "../log.ts";
import { capabilityReport, capBit, capList, hasCap, ownCaps, type OwnCaps } from "../netns/caps.ts";
import { dropExec } from "../netns/native.ts";
import { ensureWindowSafeRuntime, reexecEnv, selfArgv } from "../runtime/window-safe.ts";
import { type DockerPlan, planDocker, probeEngines } from "./docker.ts";
import { useLibDir } from "./lib-dir.ts";
import { type Needs, neededCapabilities, needsMask, unreachable, type Who } from "./needs.ts";
import { describeUser, groupName, resolveUser, type TargetUser } from "./user.ts";

/** Set in the environment of the process after the drop: it reports, and never drops or execs again. */
const DONE = "NSPROXY_PRIVILEGES_SET";

/**
 * Every tenant known at start, and the [defaults] listen that discovered and added tenants get (no namespace of its
 * own); then what following the Docker sockets asks for (a reason already given for a capability stays).
 */
function needsOf(loaded: Loaded, who: Who, docker: DockerPlan): Needs {
  const stored = storedTenants(loaded);
  const defaults = loaded.defaults.listen ? [{ name: "[defaults]", netns: "", listen: loaded.defaults.listen }] : [];
  const needs = neededCapabilities(loaded.config, [...loaded.config.tenants, ...stored, ...defaults], who);
  for (const [cap, why] of docker.needs) if (!needs.has(cap)) needs.set(cap, why);
  return needs;
}

/**
 * The tenants directory's tenants, or none when this process cannot read it: the capabilities are worked out
 * from what can be seen, and the directory's own error comes later, where run reads it for the attach pass
 * (after the admin socket, whose directory is the more basic mistake).
 */
function storedTenants(loaded: Loaded): TenantSpec[] {
  try {
    return [...readStoredTenants(loaded).stored.values()];
  } catch (err) {
    if (err instanceof NsproxyError) return [];
    throw err;
  }
}

/**
 * A directory the daemon writes after the drop: created for the user when missing, handed over when it is nsproxy's
 * default one and still root's (left by a daemon that ran as root), else it must already let the user write.
 */
function prepareDir(dir: string, user: TargetUser, mode: number, isDefault: boolean, what: string): string | undefined {
  const above = unreachable(dir, user, 0);
  if (above) return `${what} ${dir} cannot be reached by ${describeUser(user)}: ${above}`;
  const st = lstatSync(dir, { throwIfNoEntry: false });
  if (!st) {
    mkdirSync(dir, { recursive: true, mode });
    chmodSync(dir, mode);
    chownSync(dir, user.uid, user.gid);
    return undefined;
  }
  if (!st.isDirectory()) return `${what} ${dir} is not a directory`;
  if (st.uid === user.uid) return undefined;
  if (isDefault && st.uid === 0 && !(st.mode & 0o022)) {
    chownSync(dir, user.uid, user.gid);
    return undefined;
  }
  const bits = st.gid === user.gid || user.groups.includes(st.gid) ? 0o030 : 0o003; // write + search, for its group or others
  if ((st.mode & bits) === bits) return undefined;
  return `${what} ${dir} belongs to uid ${st.uid} (mode 0${(st.mode & 0o777).toString(8)}) and ${describeUser(user)} cannot write it: chown ${user.uid}:${user.gid} ${dir}, or choose another directory`;
}

/** The admin socket's directory must be the user's (socket.ts refuses others'); the tenants directory should be. */
function prepareDirectories(loaded: Loaded, user: TargetUser): void {
  const { adminSocket, tenantsDir } = loaded.config;
  const admin = prepareDir(dirname(adminSocket), user, 0o700, dirname(adminSocket) === dirname(DEFAULT_ADMIN_SOCKET), "admin socket directory");
  if (admin) throw new ConfigError(admin);
  const tenants = prepareDir(tenantsDir, user, 0o755, tenantsDir === DEFAULT_TENANTS_DIR, "tenants dir");
  if (tenants) logger.warn(`${tenants}; until then \`nsproxy tenant add\` and \`tenant rm\` cannot store tenants`);
}

/** What the daemon keeps, each with its reason; what it needs but does not hold; where the bounding set stands. */
export function privilegeLines(c: OwnCaps, needs: Needs, user?: { name?: string }, groups: Map<number, string> = new Map()): { info: string[]; warn: string[] } {
  const report = capabilityReport(c);
  const held = [...needs].filter(([cap]) => hasCap(c.effective, cap)).map(([cap, why]) => `CAP_${cap} (${why})`);
  const missing = [...needs].filter(([cap]) => !hasCap(c.effective, cap) && cap !== "SYS_ADMIN");
  const extra = c.effective & ~needsMask(needs, capBit);
  const bounding = (c.bounding & ~needsMask(needs, capBit)) === 0n ? "reduced to the same" : `${capList(c.bounding)} (reducing it needs CAP_SETPCAP; no_new_privs keeps exec from gaining any)`;
  const info = [
    `running as ${describeUser({ ...user, uid: c.uid, gid: c.gid })} with ${held.join(", ") || "no capability"}` +
      `${extra ? `, and also ${capList(extra)}` : ""}${groups.size ? `; supplementary ${[...groups.values()].join(", ")}` : ""}` +
      `; no_new_privs ${c.noNewPrivs ? "set" : "NOT set"}; bounding set ${bounding}`,
    ...report.info,
  ];
  const warn = [
    ...report.warn,
    ...missing.map(([cap, why]) => `CAP_${cap} is needed but not held: ${why}; that will fail (grant it: systemd AmbientCapabilities=CAP_${cap}, setpriv --ambient-caps +${cap.toLowerCase()})`),
  ];
  return { info, warn };
}

function log(lines: { info: string[]; warn: string[] }): void {
  for (const l of lines.info) logger.info(l);
  for (const l of lines.warn) logger.warn(l);
}

/**
 * Called by `run` once the configuration is loaded, before anything calls the C library but the lib-dir copy:
 * - --lib-dir: the library is copied there (as the user that starts, root normally) and loaded from there;
 * - root without --user: stays root with every capability (as before), re-executed only for the window-safe settings;
 * - root with --user: the directories are prepared for the user, then drop and exec (nsx_drop_exec);
 * - a user with capabilities (systemd User= + AmbientCapabilities=, setpriv): keeps only what is needed, sets
 *   no_new_privs (and reduces the bounding set when it holds CAP_SETPCAP), with the same exec.
 * The process after the exec logs what it holds and why.
 */
export async function settlePrivileges(loaded: Loaded): Promise<void> {
  const { config } = loaded;
  if (config.libDir) useLibDir(config.libDir);
  const own = ownCaps();
  const target = config.user !== undefined ? resolveOrFail(config.user) : undefined;
  const switching = target !== undefined && (own.uid !== target.uid || own.gid !== target.gid);
  if (switching && own.uid !== 0) {
    throw new ConfigError(`user ${config.user}: becoming ${describeUser(target)} needs root; this process runs as uid ${own.uid} (start it as root, or drop --user)`);
  }
  if (own.uid === 0 && !switching) {
    ensureWindowSafeRuntime();
    log(capabilityReport(own));
    return;
  }
  const who: Who = switching ? target : { uid: own.uid, gid: own.gid, groups: ownGroups() };
  const facts = config.docker.length ? await probeEngines(config.docker) : new Map();
  const docker = planDocker(config.docker, who, switching, facts, groupName);
  if (docker.refusals.length) throw new ConfigError(docker.refusals.join("; "));
  const needs = needsOf(loaded, who, docker);
  const wanted = needsMask(needs, capBit);
  // A user keeps what it has of what is needed; root has them all.
  const keep = switching ? wanted : wanted & own.permitted;
  const bounding = hasCap(own.effective, "SETPCAP");
  const settled = own.permitted === keep && own.effective === keep && own.noNewPrivs && (!bounding || (own.bounding & ~keep) === 0n);
  // Nothing to give up (or nothing to keep): only the window-safe exec, when the runtime needs one.
  if (process.env[DONE] === "1" || settled || own.permitted === 0n) {
    ensureWindowSafeRuntime();
    log(privilegeLines(ownCaps(), needs, { name: target?.name ?? nameOf(own.uid) }, docker.groups));
    return;
  }
  if (switching) {
    prepareDirectories(loaded, target);
    const lib = process.env.NSPROXY_LIBNETNS;
    const why = lib && unreachable(lib, target, 4);
    if (why) throw new ConfigError(`the C library ${lib} cannot be read by ${describeUser(target)} (${why}): choose a lib_dir the user can read`);
  }
  const groups = switching ? [...new Set([...target.groups, ...docker.groups.keys()])] : [];
  const to = { uid: switching ? target.uid : -1, gid: switching ? target.gid : -1, groups, keep, bounding };
  const env: Record<string, string> = { ...reexecEnv(), [DONE]: "1" };
  try {
    dropExec(to, process.execPath, selfArgv(), env);
  } catch (err) {
    // The main thread may be half changed by now: nothing should run on.
    logger.error(`could not run as ${switching ? describeUser(target) : `uid ${own.uid}`} with ${capList(keep)}: ${(err as Error).message}`);
    process.exit(1);
  }
}

/** This process's supplementary groups, from /proc (process.getgroups is not on every runtime). */
function ownGroups(): number[] {
  try {
    const line = /^Groups:\s*(.*)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "";
    return line.split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return process.getgroups?.() ?? [];
  }
}

/** The passwd name of a uid, for the start-up line. */
function nameOf(uid: number): string | undefined {
  try {
    return resolveUser(String(uid)).name;
  } catch {
    return undefined;
  }
}

function resolveOrFail(spec: string): TargetUser {
  try {
    return resolveUser(spec);
  } catch (err) {
    throw new ConfigError((err as Error).message, "user");
  }
}
