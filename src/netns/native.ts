// The only file that touches bun:ffi: typed wrappers over libnetns.c, where a negative return becomes a NativeError.
import { dlopen, FFIType, type Pointer } from "bun:ffi";
import { constants } from "node:os";
// The library is built by build.ts (or test/preload.ts) and embedded into the compiled binary. For a release
// target build.ts resolves this import to that target's architecture's copy (dist/libnetns-arm64.so, …).
import embeddedLib from "../../dist/libnetns.so" with { type: "file" };
import { strerror } from "./errno-text.ts";

/** Where the library comes from, in one place: NSPROXY_LIBNETNS for development, else the embedded copy. */
const libPath = process.env.NSPROXY_LIBNETNS || embeddedLib;

const lib = dlopen(libPath, {
  nsx_open: { args: [FFIType.cstring], returns: FFIType.i32 },
  nsx_open_self: { args: [], returns: FFIType.i32 },
  nsx_enter: { args: [FFIType.i32], returns: FFIType.i32 },
  nsx_fault_fail_enter: { args: [FFIType.i32], returns: FFIType.i32 },
  nsx_close: { args: [FFIType.i32], returns: FFIType.i32 },
  nsx_dev: { args: [FFIType.i32], returns: FFIType.i64_fast },
  nsx_ino: { args: [FFIType.i32], returns: FFIType.i64_fast },
  nsx_probe_bind: { args: [FFIType.cstring, FFIType.i32], returns: FFIType.i32 },
  nsx_migrate_req_on: { args: [], returns: FFIType.i32 },
  nsx_exec: { args: [FFIType.cstring, FFIType.ptr, FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
}).symbols;

const ENOTNETNS = (constants.errno as Record<string, number>).EMEDIUMTYPE ?? 124;
const errnoNames = new Map<number, string>(Object.entries(constants.errno).map(([k, v]) => [v as number, k]));

/** A failed syscall: `errno` and its name (`code`), the call, and the path or address it was about. */
export class NativeError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  readonly target: string;
  constructor(errno: number, syscall: string, target: string) {
    const reason = errno === ENOTNETNS ? "not a network namespace" : errorText(errno);
    super(`${syscall} ${target}: ${reason}`);
    this.name = "NativeError";
    this.errno = errno;
    this.code = errnoName(errno);
    this.syscall = syscall;
    this.target = target;
  }
}

/** One string helper: C strings cross the boundary NUL-terminated. */
function cstr(s: string): Pointer {
  return Buffer.from(`${s}\0`) as unknown as Pointer;
}

/** The symbolic name of an errno value: 98 → "EADDRINUSE". */
export function errnoName(errno: number): string {
  return errno === ENOTNETNS ? "ENOTNETNS" : (errnoNames.get(errno) ?? `E${errno}`);
}

/** The reason for an errno, in glibc's words ("Address already in use"); libnetns has no C library to ask. */
export function errorText(errno: number): string {
  return strerror(errno);
}

function check(rc: number, syscall: string, target: string): number {
  if (rc < 0) throw new NativeError(-rc, syscall, target);
  return rc;
}

/** Open a namespace file and verify it is a network namespace; returns an O_CLOEXEC fd. */
export function openNetns(path: string): number {
  return check(lib.nsx_open(cstr(path)), "open namespace", path);
}

/** The calling thread's current network namespace, as an fd. */
export function openOwnNetns(): number {
  return check(lib.nsx_open_self(), "open namespace", "/proc/thread-self/ns/net");
}

export function closeFd(fd: number): void {
  lib.nsx_close(fd);
}

/**
 * setns(fd, CLONE_NEWNET) for the calling thread. Returns 0 or -errno rather than throwing, because
 * it is called inside the window where no error object should be built before returning home.
 */
export function enterNetnsRaw(fd: number): number {
  return lib.nsx_enter(fd);
}

/**
 * Fault injection (tests only, see src/faults.ts): this thread's next enterNetnsRaw(fd) fails in the
 * kernel (setns with a type that does not match: EINVAL) and the thread stays where it is.
 */
export function failNextEnter(fd: number): void {
  lib.nsx_fault_fail_enter(fd);
}

/** Device and inode of a namespace fd: "dev:ino", equal for the same namespace, different once replaced. */
export function netnsIdentity(fd: number, path: string): string {
  const dev = check(Number(lib.nsx_dev(fd)), "fstat", path);
  const ino = check(Number(lib.nsx_ino(fd)), "fstat", path);
  return `${dev}:${ino}`;
}

/** socket+bind+listen in the current namespace, closed at once: 0 or -errno. Syscalls only (window-safe). */
export function probeBindRaw(host: string, port: number): number {
  return lib.nsx_probe_bind(cstr(host), port);
}

/** Replace this process with `path argv…`, after setting `env` in its environment. Returns only on failure. */
export function execWithEnv(path: string, argv: string[], env: Record<string, string>): never {
  const pack = (items: string[]) => Buffer.from(items.map((s) => `${s}\0`).join("")) as unknown as Pointer;
  const pairs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const rc = lib.nsx_exec(cstr(path), pack(argv), argv.length, pack(pairs), pairs.length);
  throw new NativeError(-rc, "exec", path);
}

/**
 * net.ipv4.tcp_migrate_req = 1 in the namespace this thread is in (call it inside the window): a closing
 * SO_REUSEPORT listener hands its queued connections to the others. 0 or -errno, never throws.
 */
export function migrateReqOnRaw(): number {
  return lib.nsx_migrate_req_on();
}
