// What a namespace path names, as the kernel sees it: one key per namespace, whatever path (name, /var/run/…, /proc/PID/ns/net) leads to it.
import { realpathSync, statSync } from "node:fs";
import { basename, dirname } from "node:path";

/**
 * "dev:ino" of the file at `path` now (for a namespace: its nsfs inode, the same through every path and
 * bind mount, and as the reconciler's fstat of the opened namespace reports it). A path that cannot be
 * stat'ed (a namespace not made yet) is keyed by the path itself, its directory resolved (/var/run →
 * /run): two such tenants clash when they name one path, and the reconciler checks again at attach.
 */
export function namespaceKey(path: string): string {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    try {
      return `path:${realpathSync(dirname(path))}/${basename(path)}`;
    } catch {
      return `path:${path}`;
    }
  }
}

/** namespaceKey with a memory, for one pass over many tenants (most share few paths; each is stat'ed once). */
export function namespaceKeys(): (path: string) => string {
  const known = new Map<string, string>();
  return (path) => {
    let key = known.get(path);
    if (key === undefined) known.set(path, (key = namespaceKey(path)));
    return key;
  };
}
