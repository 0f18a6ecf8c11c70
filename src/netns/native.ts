// Typed wrappers over libnetns.c, where a negative return becomes a NativeError. The runtime opens the library
// (src/runtime/bun/ffi.ts, deno/ffi.ts); only integers and NUL-terminated strings cross the boundary.
import { closeSync } from "node:fs";
import { constants } from "node:os";
import { FileRefused, openRegular } from "../fs/read-bounded.ts";
import type { NetnsSymbols } from "../runtime/ffi-symbols.ts";
import { openLibrary } from "../privilege/lib-dir.ts";
import { strerror } from "./errno-text.ts";

/**
 * Where the library comes from: NSPROXY_LIBNETNS (development, and the copy `--lib-dir` wrote: see
 * src/privilege/lib-dir.ts), else the runtime's own copy (embedded in the binary; dist/ from source under Deno).
 * Opened at the first call rather than at import, so that `run` can choose the directory first.
 */
let opened: NetnsSymbols | undefined;
function lib(): NetnsSymbols {
  return (opened ??= openLibrary(process.env.NSPROXY_LIBNETNS || undefined));
}

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

const utf8 = new TextEncoder();

/** One string helper: C strings cross the boundary NUL-terminated. */
function cstr(s: string): Uint8Array {
  return utf8.encode(`${s}\0`);
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

/**
 * Open a namespace file and verify it is a network namespace; returns an O_CLOEXEC fd. The path is opened
 * non-blocking and checked to be a regular file (as namespace files are) first: a FIFO there would block the main
 * thread in open() until a writer came. libnetns then opens that very file again through /proc/self/fd, so nothing
 * swapped in at the path between the two opens is looked at.
 */
export function openNetns(path: string): number {
  let fd: number;
  try {
    fd = openRegular(path).fd;
  } catch (e) {
    if (!(e instanceof FileRefused)) throw e;
    const errno = e.code ? (constants.errno as Record<string, number>)[e.code] : undefined;
    if (errno !== undefined) throw new NativeError(errno, "open namespace", path);
    throw new NotANamespaceFile(path, e.reason);
  }
  try {
    return check(lib().nsx_open(cstr(`/proc/self/fd/${fd}`)), "open namespace", path);
  } finally {
    closeSync(fd);
  }
}

/** A namespace path that names something other than a file (a FIFO, a device, a directory): never opened by libnetns. */
export class NotANamespaceFile extends NativeError {
  constructor(path: string, reason: string) {
    super(ENOTNETNS, "open namespace", path);
    this.message = `open namespace ${path}: ${reason}`;
  }
}

/** The calling thread's current network namespace, as an fd. */
export function openOwnNetns(): number {
  return check(lib().nsx_open_self(), "open namespace", "/proc/thread-self/ns/net");
}

export function closeFd(fd: number): void {
  lib().nsx_close(fd);
}

/**
 * setns(fd, CLONE_NEWNET) for the calling thread. Returns 0 or -errno rather than throwing, because
 * it is called inside the window where no error object should be built before returning home.
 */
export function enterNetnsRaw(fd: number): number {
  return lib().nsx_enter(fd);
}

/**
 * Fault injection (tests only, see src/faults.ts): this thread's next enterNetnsRaw(fd) fails in the
 * kernel (setns with a type that does not match: EINVAL) and the thread stays where it is.
 */
export function failNextEnter(fd: number): void {
  lib().nsx_fault_fail_enter(fd);
}

/** Device and inode of a namespace fd: "dev:ino", equal for the same namespace, different once replaced. */
export function netnsIdentity(fd: number, path: string): string {
  const dev = check(Number(lib().nsx_dev(fd)), "fstat", path);
  const ino = check(Number(lib().nsx_ino(fd)), "fstat", path);
  return `${dev}:${ino}`;
}

/** socket+bind+listen in the current namespace, closed at once: 0 or -errno. Syscalls only (window-safe). */
export function probeBindRaw(host: string, port: number): number {
  return lib().nsx_probe_bind(cstr(host), port);
}

/**
 * socket+bind WITHOUT SO_REUSEPORT in the current namespace, closed at once: 0 when no socket (ours or
 * anyone's) listens on an address overlapping host:port, else -errno (EADDRINUSE). Syscalls only (window-safe).
 */
export function probeAloneRaw(host: string, port: number): number {
  return lib().nsx_probe_alone(cstr(host), port);
}

/** Open the current namespace's TCP table (tcp6 when `v6`): an fd that keeps listing that namespace's sockets when read from home. -errno on failure. Window-safe. */
export function openNetTableRaw(v6: boolean): number {
  return lib().nsx_open_net_table(v6 ? 1 : 0);
}

/** Read a whole (small) file from an fd opened in C, then close it; "" when it cannot be read. At most `max` bytes. */
export function readAndCloseFd(fd: number, max: number): string {
  const buf = new Uint8Array(max);
  const n = lib().nsx_read(fd, buf, max);
  lib().nsx_close(fd);
  return n > 0 ? new TextDecoder().decode(buf.subarray(0, n)) : "";
}

/** Replace this process with `path argv…`, after setting `env` in its environment. Returns only on failure. */
export function execWithEnv(path: string, argv: string[], env: Record<string, string>): never {
  const pack = (items: string[]) => utf8.encode(items.map((s) => `${s}\0`).join(""));
  const pairs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const rc = lib().nsx_exec(cstr(path), pack(argv), argv.length, pack(pairs), pairs.length);
  throw new NativeError(-rc, "exec", path);
}

/** What dropExec hands over: the user to become (uid -1: stay), its groups, the capabilities to keep. */
export interface DropTo {
  uid: number;
  gid: number;
  groups: number[];
  keep: bigint;
  /** Reduce the bounding set to `keep` as well (possible only with CAP_SETPCAP). */
  bounding: boolean;
}

/**
 * Become `to` (credentials, capabilities, no_new_privs) and exec `path argv…` with `env` added, in one C call (see
 * nsx_drop_exec: the process's other threads end with the exec). Returns only on failure, and then the calling
 * thread may have changed already: the caller must exit.
 */
export function dropExec(to: DropTo, path: string, argv: string[], env: Record<string, string>): never {
  const pack = (items: string[]) => utf8.encode(items.map((s) => `${s}\0`).join(""));
  const pairs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const groups = new Uint8Array(Math.max(4, 4 * to.groups.length));
  const view = new DataView(groups.buffer);
  to.groups.forEach((g, i) => view.setUint32(4 * i, g, true));
  const keep = new Uint8Array(8);
  new DataView(keep.buffer).setBigUint64(0, to.keep, true);
  const rc = lib().nsx_drop_exec(to.uid, to.gid, groups, to.groups.length, keep, to.bounding ? 1 : 0, cstr(path), pack(argv), argv.length, pack(pairs), pairs.length);
  throw new NativeError(-rc, "drop privileges and exec", path);
}

/**
 * net.ipv4.tcp_migrate_req = 1 in the namespace this thread is in (call it inside the window): a closing
 * SO_REUSEPORT listener hands its queued connections to the others. 0 or -errno, never throws.
 */
export function migrateReqOnRaw(): number {
  return lib().nsx_migrate_req_on();
}

/** The syscall filter (libnetns.c) on every thread, now and later: 0 or -errno. Once, from the main thread. */
export function installSyscallFilterRaw(): number {
  return lib().nsx_seccomp_install();
}

/** Test only: make one call the filter refuses (0 unshare, 1 mount, 2 clone of a namespace, 3 clone3): 0 or -errno. */
export function syscallFilterProbeRaw(which: number): number {
  return lib().nsx_seccomp_probe(which);
}

/** nsx_connect_in's answer when the thread could not return to its own namespace. */
export const STRANDED = -4000;

/**
 * Ingress: a non-blocking connect to host:port made inside the namespace open at `nsFd` (C does setns,
 * socket, connect, setns back to `homeFd`; no JavaScript runs inside). Returns the socket's fd, -errno
 * when it failed at once, or STRANDED.
 */
export function connectInsideRaw(nsFd: number, homeFd: number, host: string, port: number): number {
  return lib().nsx_connect_in(nsFd, homeFd, cstr(host), port);
}

/**
 * Would a client inside the namespace open at `nsFd` find a route to host:port? A UDP connect there (C does
 * setns, socket, connect, close, setns back to `homeFd`; nothing is sent). 0, -errno (ENETUNREACH: the
 * address's interface is down), or STRANDED.
 */
export function routeInsideRaw(nsFd: number, homeFd: number, host: string, port: number): number {
  return lib().nsx_route_in(nsFd, homeFd, cstr(host), port);
}

/** A socket's pending error (SO_ERROR): 0 or an errno. */
export function socketErrorRaw(fd: number): number {
  return lib().nsx_so_error(fd);
}

/** One datagram `message` to the unix socket at `path` (systemd's $NOTIFY_SOCKET; '@' for an abstract name). 0 or -errno. */
export function notifyRaw(path: string, message: string): number {
  const bytes = utf8.encode(message);
  return lib().nsx_notify(cstr(path), bytes, bytes.length);
}
