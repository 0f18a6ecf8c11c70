// Which capabilities a configuration needs once the daemon runs as a user, and why: the start-up line names both.
//
// CAP_SYS_ADMIN always (setns into a tenant's namespace). CAP_NET_BIND_SERVICE when a listener's port is below
// 1024. CAP_DAC_READ_SEARCH when a namespace file or discover directory is behind a directory the user cannot
// search or read (docker's exec-root is root's, mode 0700). CAP_SYS_PTRACE for /proc/PID/ns/net of a process of
// another user (the kernel's ptrace read check guards /proc/PID/ns). Tenants added later get nothing more: a
// capability dropped at start is gone for good.
import { statSync } from "node:fs";
import { dirname } from "node:path";
import type { DaemonConfig, ListenAddr, TenantSpec } from "../config/types.ts";
import { type CapName } from "../netns/caps.ts";

export interface Who {
  uid: number;
  gid: number;
  groups: number[];
}

/** The owner and mode of a path, or undefined when it does not exist (yet). */
export type StatOf = (path: string) => { uid: number; gid: number; mode: number } | undefined;

export const statOf: StatOf = (path) => {
  try {
    const st = statSync(path);
    return { uid: st.uid, gid: st.gid, mode: st.mode };
  } catch {
    return undefined;
  }
};

/** Each needed capability with the first reason for it (one is enough for the line; the rest are alike). */
export type Needs = Map<CapName, string>;

/** mode bits that apply to `who`: owner, group, or other. */
export function allowed(st: { uid: number; gid: number; mode: number }, who: Who, bits: number): boolean {
  if (who.uid === 0) return true;
  const shift = st.uid === who.uid ? 6 : who.groups.includes(st.gid) || st.gid === who.gid ? 3 : 0;
  return ((st.mode >> shift) & bits) === bits;
}

/** Why `who` cannot reach `path` (search every directory above it, then `last` on the path itself), or undefined. */
export function unreachable(path: string, who: Who, last: number, stat: StatOf = statOf): string | undefined {
  const dirs: string[] = [];
  for (let d = dirname(path); d !== "/" && d !== "."; d = dirname(d)) dirs.unshift(d);
  for (const d of dirs) {
    const st = stat(d);
    if (!st) return undefined; // not there yet: nothing to say now
    if (!allowed(st, who, 1)) return `${d} is mode 0${(st.mode & 0o777).toString(8)} of uid ${st.uid}`;
  }
  const st = stat(path);
  if (st && !allowed(st, who, last)) return `${path} is mode 0${(st.mode & 0o777).toString(8)} of uid ${st.uid}`;
  return undefined;
}

const PROC_NS = /^\/proc\/([0-9]+)(?:\/task\/[0-9]+)?\/ns\//;

/** The capabilities `config` and these tenants need to run as `who`, each with its reason. */
export function neededCapabilities(
  config: Pick<DaemonConfig, "discover" | "ingressListen" | "metrics">,
  tenants: Pick<TenantSpec, "name" | "netns" | "listen">[],
  who: Who,
  stat: StatOf = statOf,
): Needs {
  const needs: Needs = new Map([["SYS_ADMIN", "to enter tenant namespaces (setns)"]]);
  const low = (where: string, l: ListenAddr) => {
    if (l.port < 1024 && !needs.has("NET_BIND_SERVICE")) needs.set("NET_BIND_SERVICE", `${where} listens on port ${l.port} (${l.text}), below 1024`);
  };
  for (const l of config.ingressListen) low("ingress", l);
  if (config.metrics.listen) low("metrics", config.metrics.listen);
  for (const t of tenants) for (const l of t.listen) low(`tenant ${t.name}`, l);
  if (who.uid === 0) return needs;

  const reach = (what: string, path: string, bits: number) => {
    const pid = PROC_NS.exec(path)?.[1];
    if (pid) {
      const owner = stat(`/proc/${pid}`)?.uid;
      if (owner !== undefined && owner !== who.uid && !needs.has("SYS_PTRACE")) {
        needs.set("SYS_PTRACE", `${what}: ${path} is a namespace of pid ${pid}, a process of uid ${owner} (the kernel checks ptrace access to read it)`);
      }
      return;
    }
    const why = unreachable(path, who, bits, stat);
    if (why && !needs.has("DAC_READ_SEARCH")) needs.set("DAC_READ_SEARCH", `${what}: ${why}`);
  };
  for (const d of config.discover) reach(`discover ${d.dir}`, d.dir, 5);
  for (const t of tenants) if (t.netns) reach(`tenant ${t.name}`, t.netns, 4);
  return needs;
}

/** The mask of a set of needs. */
export function needsMask(needs: Needs, bit: (name: CapName) => bigint): bigint {
  let mask = 0n;
  for (const name of needs.keys()) mask |= bit(name);
  return mask;
}
