// `--user NAME` / `[daemon] user`: a user name from /etc/passwd (its groups from /etc/group), or uid[:gid].
import { readFileSync } from "node:fs";

export interface TargetUser {
  /** As given, for messages. */
  spec: string;
  name?: string;
  uid: number;
  gid: number;
  /** Supplementary groups (/etc/group members, plus the primary group), as initgroups would set them. */
  groups: number[];
}

const ID = /^(0|[1-9][0-9]{0,9})$/;

/** The setting's own check: a name as useradd allows, or uid[:gid]. Resolution waits for `run` (resolveUser). */
export function parseUserSpec(s: string): string {
  if (/^[0-9]/.test(s)) {
    const [uid, gid, more] = s.split(":");
    if (more !== undefined || !ID.test(uid!) || (gid !== undefined && !ID.test(gid))) throw new Error(`${JSON.stringify(s)} is not a user name or uid[:gid], like "nsproxy" or "65534:65534"`);
    if (Number(uid) > 0xfffffffe || Number(gid ?? 0) > 0xfffffffe) throw new Error(`${JSON.stringify(s)}: ids go up to 4294967294`);
    return s;
  }
  if (!/^[a-z_][a-z0-9_.-]{0,31}\$?$/i.test(s)) throw new Error(`${JSON.stringify(s)} is not a user name or uid[:gid], like "nsproxy" or "65534:65534"`);
  return s;
}

function readOr(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/**
 * Resolve a user spec against passwd and group texts (default: the files). A name must be in passwd; a bare
 * uid takes its passwd entry's group when there is one, else the same number as gid; uid:gid is taken as given.
 */
export function resolveUser(spec: string, passwd = readOr("/etc/passwd"), group = readOr("/etc/group")): TargetUser {
  const users = passwd.split("\n").map((l) => l.split(":")).filter((f) => f.length >= 4 && ID.test(f[2]!) && ID.test(f[3]!));
  let name: string | undefined;
  let uid: number;
  let gid: number;
  if (/^[0-9]/.test(spec)) {
    const [u, g] = spec.split(":");
    uid = Number(u);
    const entry = users.find((f) => Number(f[2]) === uid);
    name = entry?.[0];
    gid = g !== undefined ? Number(g) : entry ? Number(entry[3]) : uid;
  } else {
    const entry = users.find((f) => f[0] === spec);
    if (!entry) throw new Error(`user ${JSON.stringify(spec)} is not in /etc/passwd (create it, e.g. useradd --system --no-create-home nsproxy, or give a numeric uid[:gid])`);
    name = spec;
    uid = Number(entry[2]);
    gid = Number(entry[3]);
  }
  const groups = new Set<number>([gid]);
  if (name) {
    for (const l of group.split("\n")) {
      const f = l.split(":");
      if (f.length >= 4 && ID.test(f[2]!) && f[3]!.split(",").includes(name)) groups.add(Number(f[2]));
    }
  }
  return { spec, ...(name ? { name } : {}), uid, gid, groups: [...groups] };
}

/** "nobody (uid 65534, gid 65534)" */
export function describeUser(u: { name?: string; uid: number; gid: number }): string {
  return `${u.name ? `${u.name} ` : ""}(uid ${u.uid}, gid ${u.gid})`;
}

/** "docker" for a gid /etc/group names, else the number. */
export function groupName(gid: number, group = readOr("/etc/group")): string {
  for (const l of group.split("\n")) {
    const f = l.split(":");
    if (f.length >= 3 && f[2] === String(gid) && f[0]) return f[0];
  }
  return String(gid);
}
