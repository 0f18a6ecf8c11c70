// Serves the admin app on a unix socket only readable by its owner (the runtime's HTTP server: Bun.serve or Deno.serve).
import { type BigIntStats, chmodSync, linkSync, lstatSync, mkdirSync, renameSync, type Stats, unlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Hono } from "hono";
import { NsproxyError } from "../errors.ts";
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

const mode = (st: Stats) => `0${(st.mode & 0o777).toString(8)}`;
const code = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code;

const lstatOrNull = (path: string) => lstatSync(path, { throwIfNoEntry: false });

/** Creates the socket's directory 0700, or checks that an existing one cannot be written by anyone but its owner. */
function prepareDirectory(dir: string): void {
  if (mkdirSync(dir, { recursive: true, mode: 0o700 }) !== undefined) {
    chmodSync(dir, 0o700); // the umask may have taken bits from mode; never added any
    return;
  }
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new NsproxyError(`admin socket directory ${dir} is not a directory`);
  // Whoever can write the directory can swap the socket for their own: refuse rather than serve from there.
  if (st.mode & 0o022) {
    throw new NsproxyError(
      `admin socket directory ${dir} is writable by others (mode ${mode(st)}); make it 0700 (chmod 700 ${dir}) or choose another path`,
    );
  }
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid && st.uid !== 0) {
    throw new NsproxyError(`admin socket directory ${dir} belongs to uid ${st.uid}, not to this process (uid ${uid}) or root`);
  }
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
  /** Move the socket over the public path in one rename(): clients reach the old daemon until then, this one after, never nothing. */
  publish(): void;
}

export async function serveAdmin(path: string, app: Hono): Promise<AdminServer> {
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

/** Serve beside the daemon at `path` (which this one replaces): see PendingAdminServer. */
export function serveAdminBeside(path: string, app: Hono): PendingAdminServer {
  prepareDirectory(dirname(path));
  const pending = bindPrivate(path, app);
  return { ...pending.handle(), publish: () => pending.rename() };
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
