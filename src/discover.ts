// Namespace discovery: every file in a directory that matches a glob is a tenant named after the file.
import { type Dirent, readdirSync, statSync } from "node:fs";
import { fileType } from "./fs/read-bounded.ts";
import type { DiscoverSpec } from "./config/types.ts";
import { isValidTenantName } from "./config/values.ts";

/** A file-name glob as a RegExp: `*` any run, `?` one character, `[…]` a class; nothing else is special. */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end < 0) re += "\\[";
      else {
        const body = glob.slice(i + 1, end).replace(/^!/, "^").replace(/\\/g, "\\\\");
        re += `[${body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

export interface Discovered {
  name: string;
  netns: string;
}

/**
 * Why the entry cannot be a namespace file, if it cannot: a namespace (bind-mounted or not yet, as `ip netns add`
 * leaves an empty file first) is a regular file; a FIFO would block whoever opens it, a device never ends. The
 * directory entry's type answers without a syscall; a symlink (or a file system that does not say) is followed.
 */
function notANamespaceFile(entry: Dirent, path: string): string | undefined {
  if (entry.isFile()) return undefined;
  if (entry.isSymbolicLink() || !(entry.isDirectory() || entry.isFIFO() || entry.isCharacterDevice() || entry.isBlockDevice() || entry.isSocket())) {
    try {
      const st = statSync(path);
      return st.isFile() ? undefined : `${fileType(st)}, not a namespace file`;
    } catch (err) {
      // Gone already, or a dangling link: nothing to serve; the next pass looks again.
      return `cannot stat it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    }
  }
  return entry.isDirectory() ? "a directory, not a namespace file" : `${entry.isFIFO() ? "a FIFO" : entry.isSocket() ? "a socket" : "a device"}, not a namespace file`;
}

/**
 * The tenants the discover specs find now. A file whose name is not a valid tenant name is reported
 * through `onSkip` (once per name, the caller dedupes) and left out; a missing directory finds nothing.
 * Any other failure to read a directory (EMFILE, EACCES, …) throws: an unreadable directory says
 * nothing about which namespaces exist, and reading it as empty would drop every tenant found there.
 */
export function discover(specs: DiscoverSpec[], onSkip: (path: string, why: string) => void): Map<string, Discovered> {
  const found = new Map<string, Discovered>();
  for (const spec of specs) {
    let entries: Dirent[];
    try {
      entries = readdirSync(spec.dir, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") continue;
      throw err;
    }
    const match = globToRegExp(spec.glob);
    for (const entry of entries) {
      const name = entry.name;
      if (!match.test(name)) continue;
      const path = `${spec.dir}/${name}`;
      if (!isValidTenantName(name)) {
        onSkip(path, "its name is not a valid tenant name ([A-Za-z0-9][A-Za-z0-9._-]{0,63})");
        continue;
      }
      const notNamespace = notANamespaceFile(entry, path);
      if (notNamespace) {
        onSkip(path, notNamespace);
        continue;
      }
      if (found.has(name)) {
        onSkip(path, `a tenant named '${name}' was already discovered at ${found.get(name)!.netns}`);
        continue;
      }
      found.set(name, { name, netns: path });
    }
  }
  return found;
}
