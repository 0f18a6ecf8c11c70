// Opening and reading files that anyone may have dropped in a watched place: regular files only, never blocking, never unbounded.
//
// A FIFO blocks open() until a writer appears, /dev/zero never ends, a sparse file can claim a terabyte: the file
// is opened non-blocking, checked with fstat on the opened descriptor (so it cannot be swapped after the check),
// and read no further than the cap. node:fs's openSync/fstatSync/readSync return real descriptors in Bun and Deno.
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";

export type RefusalKind = "missing" | "unreadable" | "not-regular" | "too-large";

/** A file refused before or while reading it; `reason` is short ("a FIFO, not a regular file") and names no path. */
export class FileRefused extends Error {
  constructor(
    readonly file: string,
    readonly kind: RefusalKind,
    readonly reason: string,
    options?: { cause?: unknown; code?: string },
  ) {
    super(`${file}: ${reason}`, options);
    this.name = "FileRefused";
    this.code = options?.code ?? (options?.cause as NodeJS.ErrnoException | undefined)?.code;
  }

  /** The errno name when there is one (ENOENT; EISDIR for a directory, found by fstat rather than by a failed call). */
  readonly code: string | undefined;
}

/** What a file is, for a message: "a FIFO", "a character device"… */
export function fileType(st: Stats): string {
  if (st.isFile()) return "a regular file";
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a FIFO";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isSocket()) return "a socket";
  return "not a regular file";
}

const ERRNO_REASONS: Record<string, [RefusalKind, string]> = {
  ENOENT: ["missing", "no such file"],
  ENOTDIR: ["missing", "no such file (a parent is not a directory)"],
  EACCES: ["unreadable", "permission denied"],
  EPERM: ["unreadable", "permission denied"],
  EISDIR: ["unreadable", "is a directory"],
  ELOOP: ["unreadable", "too many levels of symbolic links"],
};

function refusedBy(file: string, e: unknown): FileRefused {
  const code = (e as NodeJS.ErrnoException).code ?? "";
  const [kind, reason] = ERRNO_REASONS[code] ?? ["unreadable", code || (e as Error).message];
  return new FileRefused(file, kind, reason, { cause: e });
}

/**
 * Open `file` (symlinks followed) read-only, non-blocking and close-on-exec, and return the descriptor if it is a
 * regular file; anything else is closed again and refused. Namespace files (nsfs) are regular files to fstat.
 */
export function openRegular(file: string): { fd: number; size: number } {
  let fd: number;
  try {
    // Bun and Deno add O_CLOEXEC to every open (as libuv does; node:fs has no constant for it): /proc/self/fdinfo says so.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    throw refusedBy(file, e);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new FileRefused(file, "not-regular", st.isDirectory() ? "is a directory" : `${fileType(st)}, not a regular file`, st.isDirectory() ? { code: "EISDIR" } : undefined);
    return { fd, size: st.size };
  } catch (e) {
    closeSync(fd);
    throw e instanceof FileRefused ? e : refusedBy(file, e);
  }
}

/** The contents of regular file `file`, at most `maxBytes` (a larger file, or one that grows past it, is refused). */
export function readBounded(file: string, maxBytes: number): Buffer {
  const { fd, size } = openRegular(file);
  const tooLarge = () => new FileRefused(file, "too-large", `larger than ${maxBytes} bytes`);
  try {
    if (size > maxBytes) throw tooLarge();
    // Read to the end rather than trusting the size: the file may be growing under a writer.
    const buf = Buffer.alloc(size + 1);
    let got = 0;
    let n: number;
    do {
      n = readSync(fd, buf, got, buf.length - got, null);
      got += n;
    } while (n > 0 && got < buf.length);
    if (got > maxBytes) throw tooLarge();
    if (got === buf.length) throw new FileRefused(file, "unreadable", "changed while being read");
    return buf.subarray(0, got);
  } catch (e) {
    throw e instanceof FileRefused ? e : refusedBy(file, e);
  } finally {
    closeSync(fd);
  }
}
