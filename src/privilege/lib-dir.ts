// Where libnetns.so is opened from: the runtime's own copy, or a copy written to --lib-dir / [daemon] lib_dir.
//
// A compiled binary carries the library inside it, and Bun's dlopen first writes it to $TMPDIR (or /tmp) and opens
// it from there. Under file capabilities (secure-exec) the C library ignores TMPDIR, and a read-only or noexec /tmp
// then fails start-up with "Failed to open library "/$bunfs/root/libnetns-….so"", which names neither the
// directory nor the reason. lib_dir names the directory, and each failure below says which and why.
import { createHash } from "node:crypto";
import { chmodSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NsproxyError } from "../errors.ts";
import type { NetnsSymbols } from "../runtime/ffi-symbols.ts";
import { runtime } from "../runtime/index.ts";
import { mountOfDir } from "./mounts.ts";

const code = (e: unknown) => (e as NodeJS.ErrnoException).code ?? "";

/** Why a directory cannot hold a library to execute, or undefined: a noexec mount. */
function noexecReason(dir: string): string | undefined {
  const m = mountOfDir(dir);
  return m?.options.includes("noexec") ? `${dir} is on the mount ${m.mountPoint}, mounted noexec: a library there cannot be loaded` : undefined;
}

/**
 * Copy the runtime's library into `dir` as libnetns-<sha256 prefix>.so (an identical copy already there is used
 * as it is, so a daemon that cannot write the directory after dropping to its user still opens the copy written
 * before) and return its path. Errors name the directory and the reason.
 */
export function writeLibCopy(dir: string, source = runtime.netnsLibFile): string {
  const why = noexecReason(dir);
  if (why) throw new NsproxyError(`lib_dir: ${why}; choose a directory on a mount without noexec`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(source);
  } catch (e) {
    throw new NsproxyError(`cannot read the C library ${source}: ${(e as Error).message}`, { cause: e });
  }
  const file = join(dir, `libnetns-${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}.so`);
  if (existsSync(file)) {
    try {
      if (readFileSync(file).equals(bytes)) return file;
    } catch {
      // unreadable: write it again below
    }
  }
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, bytes, { mode: 0o644 });
    chmodSync(tmp, 0o644); // the umask may have narrowed it: the daemon's user reads it after the drop
    renameSync(tmp, file);
  } catch (e) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // not even there: the directory could not be written at all
    }
    throw new NsproxyError(`lib_dir ${dir}: cannot write the C library there (${code(e) || (e as Error).message}); choose a directory this user can write, on a mount without noexec`, { cause: e });
  }
  return file;
}

/** Open the library at `path` (default: the runtime's own copy), with an error that says where it went wrong. */
export function openLibrary(path?: string): NetnsSymbols {
  try {
    return runtime.loadNetns(path);
  } catch (e) {
    const message = (e as Error).message;
    if (path) {
      const dir = path.slice(0, path.lastIndexOf("/")) || "/";
      const why = noexecReason(dir);
      throw new NsproxyError(`cannot load the C library ${path}: ${why ?? message}`, { cause: e });
    }
    if (!runtime.netnsLibFile.startsWith("/$bunfs/")) throw e;
    const tmp = process.env.TMPDIR || "/tmp";
    const why = noexecReason(tmp) ?? noexecReason("/tmp");
    throw new NsproxyError(
      `cannot load the C library embedded in the binary (${message}): it is first written to $TMPDIR or /tmp (TMPDIR is ignored under file capabilities), ` +
        `${why ? `and ${why}` : "and that directory is read-only, full or noexec here"}; pass --lib-dir DIR ([daemon] lib_dir), a directory this user can write on a mount without noexec`,
      { cause: e },
    );
  }
}

/** --lib-dir: write the copy and make every later load (this thread, the workers, the process after exec) open it. */
export function useLibDir(dir: string): string {
  const file = writeLibCopy(dir);
  process.env.NSPROXY_LIBNETNS = file;
  return file;
}
