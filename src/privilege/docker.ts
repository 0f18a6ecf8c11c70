// What a daemon running as a user needs to follow Docker Engine API sockets: the socket's group, and what opens containers' namespaces.
//
// Connecting to a unix socket needs write permission on it: Docker's is root:docker 0660, so the user keeps it
// through that group (added to its supplementary groups at the drop), never through CAP_DAC_OVERRIDE. Docker's
// sandbox files live under its exec-root (root's 0700: CAP_DAC_READ_SEARCH); Podman's containers without one are
// entered by /proc/PID/ns/net of a root process (CAP_SYS_PTRACE). The engine is asked at start which it is.
import { dirname } from "node:path";
import { DEFAULT_DOCKER_SOCKET } from "../config/values.ts";
import { exchange, getJson } from "../docker/engine-api.ts";
import { allowed, type Needs, type StatOf, statOf, unreachable, type Who } from "./needs.ts";

/** What the engine behind a socket said at start; undefined fields: it did not say. */
export interface EngineFacts {
  podman?: boolean;
  /** The directory of a running container's sandbox file, when one runs. */
  sandboxDir?: string;
}

/** Docker's exec-root when nothing else says: where the default socket's sandbox files are. */
const DEFAULT_SANDBOX_DIR = "/var/run/docker/netns";
/** A few containers are enough to see where sandbox files are. */
const PROBE_CONTAINERS = 3;

/** Ask each engine which it is and where its sandbox files are (bounded in time; an engine that is down says nothing). */
export async function probeEngines(sockets: string[], timeoutMs = 5000): Promise<Map<string, EngineFacts>> {
  const out = new Map<string, EngineFacts>();
  await Promise.all(
    sockets.map(async (socket) => {
      const facts: EngineFacts = {};
      out.set(socket, facts);
      // One deadline for all of an engine's answers: a hung engine delays the start by timeoutMs at most.
      const deadline = Date.now() + timeoutMs;
      const left = () => Math.max(1, deadline - Date.now());
      try {
        // Only Podman serves its own API beside Docker's (/version is slower: Podman runs its OCI runtime for it).
        facts.podman = (await statusOf(socket, "/libpod/_ping", left())) === 200;
        const running = await getJson<{ Id: string }[]>(socket, "/containers/json", left());
        for (const c of running.slice(0, PROBE_CONTAINERS)) {
          const i = await getJson<{ NetworkSettings?: { SandboxKey?: string } }>(socket, `/containers/${encodeURIComponent(c.Id)}/json`, left());
          const key = i.NetworkSettings?.SandboxKey ?? "";
          if (key.startsWith("/")) {
            facts.sandboxDir = dirname(key);
            break;
          }
        }
      } catch {
        // Down, refused or not an engine: the plan falls back on what the files say.
      }
    }),
  );
  return out;
}

/** The status of GET `path` (the body is not read). */
async function statusOf(socket: string, path: string, timeoutMs: number): Promise<number> {
  const x = exchange(socket, "GET", path, () => {});
  const timer = setTimeout(() => x.close(), timeoutMs);
  try {
    return await x.head;
  } finally {
    clearTimeout(timer);
    x.close();
  }
}

export interface DockerPlan {
  /** Supplementary groups the user needs, each with the socket it opens. */
  groups: Map<number, string>;
  needs: Needs;
  /** Why the user could never connect to a socket, with what to do. */
  refusals: string[];
}

/** `who`'s access to `socket`: through its group when that is the way (joined at the drop when `canAddGroups`), or a refusal. */
function socketAccess(socket: string, who: Who, canAddGroups: boolean, stat: StatOf, plan: DockerPlan, groupName: (gid: number) => string): void {
  const st = stat(socket);
  if (!st || who.uid === 0) return; // not there yet: the watch says so when it tries
  const owner = st.uid === who.uid;
  const viaGroup = !owner && (st.mode & 0o020) !== 0 && (st.mode & 0o002) === 0 && st.gid !== who.gid;
  const as = viaGroup ? { ...who, groups: [...new Set([...who.groups, st.gid])] } : who;
  if (!allowed(st, as, 2)) {
    plan.refusals.push(
      `discover docker:${socket}: the socket is mode 0${(st.mode & 0o777).toString(8)} of uid ${st.uid}, group ${groupName(st.gid)}, and ${who.uid === st.uid ? "its owner" : "the user"} (uid ${who.uid}) cannot write it, so it could never connect: ` +
        `let a group write it (dockerd --group GROUP, or chgrp GROUP ${socket} && chmod g+rw ${socket}), or run without --user`,
    );
    return;
  }
  if (viaGroup && st.gid === 0 && !who.groups.includes(0)) {
    plan.refusals.push(
      `discover docker:${socket}: the socket is writable by group root only, and joining group root would open every root-group file to the daemon: ` +
        `give the socket a group of its own (chgrp docker ${socket}, or the engine's own setting: dockerd --group, podman.socket SocketGroup=), or run without --user`,
    );
    return;
  }
  if (viaGroup && !canAddGroups && !who.groups.includes(st.gid)) {
    plan.refusals.push(
      `discover docker:${socket}: the socket is writable by group ${groupName(st.gid)} (gid ${st.gid}) only, and this process (uid ${who.uid}) is not in it and cannot join it: ` +
        `add the user to that group (usermod -aG ${groupName(st.gid)} USER, or systemd SupplementaryGroups=${groupName(st.gid)}), or start as root with --user`,
    );
    return;
  }
  if (viaGroup) plan.groups.set(st.gid, `group ${groupName(st.gid)} (gid ${st.gid}) to connect to ${socket}`);
  const above = unreachable(dirname(socket), as, 1, stat);
  if (above && !plan.needs.has("DAC_READ_SEARCH")) plan.needs.set("DAC_READ_SEARCH", `discover docker:${socket}: ${above}`);
}

/**
 * The socket groups, capabilities and refusals for following `sockets` as `who`; `canAddGroups`: the drop sets the
 * supplementary groups (root with --user), rather than the process running as the user already.
 */
export function planDocker(sockets: string[], who: Who, canAddGroups: boolean, facts: Map<string, EngineFacts>, groupName: (gid: number) => string, stat: StatOf = statOf): DockerPlan {
  const plan: DockerPlan = { groups: new Map(), needs: new Map(), refusals: [] };
  if (who.uid === 0) return plan;
  for (const socket of sockets) {
    socketAccess(socket, who, canAddGroups, stat, plan, groupName);
    const f = facts.get(socket) ?? {};
    if (f.podman && !plan.needs.has("SYS_PTRACE")) {
      plan.needs.set("SYS_PTRACE", `discover docker:${socket}: Podman's containers without a sandbox file are entered by /proc/PID/ns/net of their first process, a process of another uid (the kernel checks ptrace access to read it)`);
    }
    const dir = f.sandboxDir ?? (f.podman ? undefined : socket === DEFAULT_DOCKER_SOCKET || socket === "/run/docker.sock" ? DEFAULT_SANDBOX_DIR : undefined);
    if (plan.needs.has("DAC_READ_SEARCH")) continue;
    if (dir) {
      const why = unreachable(`${dir}/SANDBOX`, who, 4, stat);
      if (why) plan.needs.set("DAC_READ_SEARCH", `discover docker:${socket}: its sandbox files are in ${dir}, and ${why}`);
    } else if (!f.podman) {
      plan.needs.set("DAC_READ_SEARCH", `discover docker:${socket}: its sandbox files are under the engine's exec-root (root's, mode 0700, by default), not known before a container runs`);
    }
  }
  return plan;
}
