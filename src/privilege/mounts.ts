// What /proc/self/mountinfo says about the mount a path is on: noexec (where the C library may be written) and
// propagation (whether namespaces bind-mounted later by another mount namespace can appear here).
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { dirname } from "node:path";

export interface MountEntry {
  mountPoint: string;
  /** Per-mount options: "rw", "noexec", "nosuid", … */
  options: string[];
  /** shared:N (a peer of other mounts), master:N (receives from one), or neither: private. */
  propagation: "shared" | "slave" | "private";
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/** One entry per line of a mountinfo text, in its order (a later mount on the same point hides an earlier one). */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    const dash = f.indexOf("-", 6);
    if (f.length < 7 || dash < 0) continue;
    const optional = f.slice(6, dash);
    const propagation = optional.some((o) => o.startsWith("master:")) ? "slave" : optional.some((o) => o.startsWith("shared:")) ? "shared" : "private";
    out.push({ mountPoint: unescape(f[4]!), options: f[5]!.split(","), propagation });
  }
  return out;
}

/** The mount `path` (absolute, symlinks resolved) is on: the deepest mount point above it, the last one listed on ties. */
export function mountOf(entries: MountEntry[], path: string): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const e of entries) {
    const mp = e.mountPoint;
    const under = mp === "/" || path === mp || path.startsWith(`${mp}/`);
    if (under && (!best || mp.length >= best.mountPoint.length)) best = e;
  }
  return best;
}

/** The nearest existing ancestor of `path` (itself if it exists), symlinks resolved. */
export function existingPath(path: string): string {
  let p = path;
  while (!existsSync(p) && p !== "/") p = dirname(p);
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** This process's mounts now ([] when /proc is not there to say). */
export function ownMounts(): MountEntry[] {
  try {
    return parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8"));
  } catch {
    return [];
  }
}

/** The mount the directory `dir` (or its nearest existing ancestor) is on, in this process's mount namespace. */
export function mountOfDir(dir: string, entries: MountEntry[] = ownMounts()): MountEntry | undefined {
  return mountOf(entries, existingPath(dir));
}

/**
 * A line for each directory where namespaces may appear after start that sits on a mount with private
 * propagation: bind mounts made later by other mount namespaces (`ip netns add`, docker) never show up
 * there, and a tenant waits for its namespace (ENOTNETNS) forever. Slave or shared propagation receives them.
 */
export function privatePropagationWarnings(dirs: string[], entries: MountEntry[] = ownMounts()): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const dir of dirs) {
    const m = mountOfDir(dir, entries);
    if (!m || m.propagation !== "private" || seen.has(m.mountPoint)) continue;
    seen.add(m.mountPoint);
    out.push(
      `${dir} is on the mount ${m.mountPoint}, which has private propagation in this mount namespace (no shared: or master: tag in /proc/self/mountinfo): ` +
        `namespaces created there after start (ip netns add, a container started later) will never appear and their tenants stay waiting (ENOTNETNS); ` +
        `run nsproxy in the host's mount namespace, or with slave propagation (systemd: leave MountFlags= unset or set MountFlags=slave; unshare: --propagation slave; mount --make-rslave /)`,
    );
  }
  return out;
}

/** Where namespaces of this configuration may appear after start: /run/netns (bare names), discover directories, tenants' directories. */
export function namespaceDirs(config: { discover: { dir: string }[]; tenants: { netns: string }[] }): string[] {
  const dirs = new Set(["/run/netns", ...config.discover.map((d) => d.dir)]);
  for (const t of config.tenants) if (!t.netns.startsWith("/proc/")) dirs.add(dirname(t.netns));
  return [...dirs];
}
