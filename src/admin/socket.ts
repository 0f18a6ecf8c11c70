// Serves the admin app on a unix socket only readable by its owner (the runtime's HTTP server: Bun.serve or Deno.serve).
import { type BigIntStats, chmodSync, linkSync, lstatSync, mkdirSync, renameSync, type Stats, unlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Hono } from "hono";
import { EXIT, NsproxyError } from "../errors.ts";
import { type HttpServer, runtime } from "../runtime/index.ts";

export interface AdminServer {
  /** Stops serving and removes the socket file, unless another process has put its own at the path since. */
  stop(): Promise<void>;
  /** The socket at the path is still this server's (an upgrade's successor replaces it). */
  owned(): boolean;
  path: string;
}

// How long a socket that accepts connections may take to answer before we call it busy rather than stale.
const PROBE_TIMEOUT_MS = 2000;

let bindCount = 0;

const mode = (st: Stats) => `0${(st.mode & 0o7777).toString(8)}`;
const code = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code;

const lstatOrNull = (path: string) => lstatSync(path, { throwIfNoEntry: false });

/** A path to offer instead: a directory of its own, which serveAdmin creates 0700 (the user's runtime dir when not root). */
function ownDirectory(): string {
  const uid = process.getuid?.();
  if (uid === 0 || uid === undefined) return "/run/nsproxy/admin.sock";
  const runtimeDir = process.env.XDG_RUNTIME_DIR;
  return runtimeDir ? join(runtimeDir, "nsproxy", "admin.sock") : `/tmp/nsproxy-${uid}/admin.sock`;
}

/**
 * Creates the socket's directory 0700, or checks that an existing one cannot be written by anyone but its owner.
 * Whoever can write the directory can put their own socket at the path while no daemon holds it, and answer
 * `nsproxy tenant add` (tenant configuration, sent as root) in its place: refuse rather than serve from there.
 */
function prepareDirectory(dir: string): void {
  if (mkdirSync(dir, { recursive: true, mode: 0o700 }) !== undefined) {
    chmodSync(dir, 0o700); // the umask may have taken bits from mode; never added any
    return;
  }
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new NsproxyError(`admin socket directory ${dir} is not a directory`, { exitCode: EXIT.usage });
  const uid = process.getuid?.();
  if (st.mode & 0o022) {
    // A sticky directory (/tmp) or someone else's is shared by design: taking write access from the others
    // there breaks them and is not ours to do. A directory of our own only needs its mode fixed.
    const shared = (st.mode & 0o1000) !== 0 || (uid !== undefined && st.uid !== uid);
    const fix = shared
      ? `it is shared, so give the socket a directory of its own (like --admin-socket ${ownDirectory()}; nsproxy creates it 0700)`
      : `make it 0700 (chmod 700 ${dir}) or choose another --admin-socket`;
    throw new NsproxyError(
      `admin socket directory ${dir} is writable by others (mode ${mode(st)}): any of them could put their own socket at its path and answer nsproxy's commands; ${fix}`,
      { exitCode: EXIT.usage },
    );
  }
  if (uid !== undefined && st.uid !== uid && st.uid !== 0) {
    throw new NsproxyError(`admin socket directory ${dir} belongs to uid ${st.uid}, not to this process (uid ${uid}) or root`, { exitCode: EXIT.usage });
  }
}

/** A file system error on the way to the socket, said as what failed and what to do; nsproxy's own errors unchanged. */
function explainFsError(err: unknown, path: string): unknown {
  const e = err as NodeJS.ErrnoException;
  if (err instanceof NsproxyError || typeof e?.code !== "string") return err;
  // mkdir names the directory it could not make: the one that refused is its parent.
  const dir = e.syscall === "mkdir" && e.path ? dirname(e.path) : dirname(path);
  const root = process.getuid?.() === 0;
  const instead = ownDirectory() === path ? "" : ` (like --admin-socket ${ownDirectory()})`;
  let why: string;
  if (e.code === "EACCES" || e.code === "EPERM") why = `${dir} is not writable by ${root ? "root here" : `this user (uid ${process.getuid?.()})`} (${e.code})`;
  else if (e.code === "EROFS") why = `${dir} is on a read-only file system`;
  else {
    // "ENOENT: no such file or directory, mkdir '/x'" → "mkdir /x: no such file or directory (ENOENT)"
    const reason = (e.message ?? "").replace(/^[A-Z]+: /, "").split(", ")[0];
    why = `${e.syscall ?? "open"} ${e.path ?? dir}: ${reason} (${e.code})`;
  }
  const fix = root || (e.code !== "EACCES" && e.code !== "EPERM") ? "pass --admin-socket in a directory it can write" : "run as root or pass --admin-socket in a directory it can write";
  return new NsproxyError(`cannot create the admin socket ${path}: ${why}; ${fix}${instead}`, { exitCode: EXIT.usage, cause: err });
}

/** Clears the way for the socket: nothing there, or a stale socket (removed). A live one or any other file is an error. */
async function clearPath(path: string): Promise<void> {
  const st = lstatOrNull(path);
  if (!st) return;
  if (!st.isSocket()) throw new NsproxyError(`${path} exists and is not a socket; refusing to replace it with the admin socket`);
  let res: Response;
  try {
    res = await runtime.fetchUnix(path, "http://localhost/v1/status", { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
  } catch (err) {
    // Refused: nobody listens, it is left over from a process that died. Anything else (a timeout, EACCES) may be alive.
    if (code(err) === "ECONNREFUSED") {
      unlinkSync(path);
      return;
    }
    if (code(err) === "ENOENT") return;
    const why = (err as Error).name === "TimeoutError" ? `accepts connections but did not answer in ${PROBE_TIMEOUT_MS} ms` : (err as Error).message;
    throw new NsproxyError(`${path}: ${why}; another nsproxy may be already running there (remove ${path} if it is not)`);
  }
  const pid = ((await res.json().catch(() => null)) as { pid?: unknown } | null)?.pid;
  const who = typeof pid === "number" ? `another nsproxy is already running at ${path} (pid ${pid})` : `a server is already running at ${path}`;
  throw new NsproxyError(`${who}; stop it first, replace it with \`nsproxy upgrade\`, or choose another admin socket`);
}

/** An admin server bound beside a running daemon's (an upgrade's successor): serving at a private name until publish(). */
export interface PendingAdminServer extends AdminServer {
  /** The path is not the predecessor's (admin_socket changed in the config). */
  moved: boolean;
  /**
   * Move the socket over the public path in one rename(): clients reach the old daemon until then, this one
   * after, never nothing. At a path of its own (moved), link() it there, failing if someone got there first.
   */
  publish(): void;
}

export async function serveAdmin(path: string, app: Hono): Promise<AdminServer> {
  try {
    return await bindAdmin(path, app);
  } catch (err) {
    throw explainFsError(err, path);
  }
}

async function bindAdmin(path: string, app: Hono): Promise<AdminServer> {
  prepareDirectory(dirname(path));
  await clearPath(path);
  const pending = bindPrivate(path, app);
  try {
    pending.link();
  } catch (err) {
    await pending.server.stop(true); // unlinks temp
    if (lstatOrNull(pending.temp)?.isSocket()) unlinkSync(pending.temp);
    if (code(err) === "EEXIST") throw new NsproxyError(`another process created ${path} while nsproxy was starting; is another nsproxy already running?`);
    throw err;
  }
  return pending.handle();
}

/**
 * Serve beside the daemon at `replacing` (see PendingAdminServer). When the config moved the admin socket
 * (`path` differs), the new path must be free as at any start (a live daemon there is refused, a stale
 * socket removed), and publish() links it there, failing if someone got there first.
 */
export async function serveAdminBeside(path: string, app: Hono, replacing: string): Promise<PendingAdminServer> {
  try {
    prepareDirectory(dirname(path));
    const moved = path !== replacing;
    if (moved) await clearPath(path);
    const pending = bindPrivate(path, app);
    return { ...pending.handle(), moved, publish: () => (moved ? pending.link() : pending.rename()) };
  } catch (err) {
    throw explainFsError(err, path);
  }
}

function bindPrivate(path: string, app: Hono) {
  // Stopping the server unlinks the path it bound, whatever is there by then (Bun and Deno alike). So bind a private
  // name, make it 0600, then link it to the public path: the socket appears there already private, link() fails if
  // someone got there first (as bind would), and on stop() the runtime unlinks only the private name while we check
  // the inode before unlinking.
  const temp = join(dirname(path), `.nsproxy-${process.pid}-${++bindCount}.sock`);
  if (lstatOrNull(temp)?.isSocket()) unlinkSync(temp); // from a dead process that had our pid
  // The umask keeps the socket 0700 from bind() to chmod(); it is process-wide, but nothing else runs in between.
  const umask = process.umask(0o077);
  let server: HttpServer;
  try {
    // The app answers its own errors; one that escapes is a plain 500, never a page with the stack.
    server = runtime.serveHttp({ unix: temp }, (req) => app.fetch(req));
  } finally {
    process.umask(umask);
  }
  try {
    chmodSync(temp, 0o600);
  } catch (err) {
    void server.stop(true);
    throw err;
  }
  let ours: BigIntStats | undefined;
  let stopped: Promise<void> | undefined;
  // tmpfs hands a freed inode number to the next file at once; the change time tells a newer socket apart.
  const owned = () => {
    const now = lstatSync(path, { bigint: true, throwIfNoEntry: false });
    return ours !== undefined && now !== undefined && now.ino === ours.ino && now.dev === ours.dev && now.ctimeNs === ours.ctimeNs;
  };
  const stop = async () => {
    await server.stop();
    if (owned()) unlinkSync(path);
  };
  return {
    server,
    temp,
    /** A new daemon: link() fails if someone got to the path first, as bind would. */
    link() {
      linkSync(temp, path);
      unlinkSync(temp);
      ours = lstatSync(path, { bigint: true }); // after the last link count change, which sets the change time
    },
    /** An upgrade: replace the old daemon's socket at once (it keeps serving the connections it accepted). */
    rename() {
      renameSync(temp, path);
      ours = lstatSync(path, { bigint: true });
    },
    handle: (): AdminServer => ({ path, owned, stop: () => (stopped ??= stop()) }),
  };
}
