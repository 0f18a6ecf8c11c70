// The old generation's side of an upgrade: start a successor with the same configuration and wait until it serves.
import { type ChildProcess, spawn } from "node:child_process";
import { lstatSync, readFileSync, unlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { logger } from "../log.ts";
import { type HttpServer, runtime } from "../runtime/index.ts";
import { VERSION } from "../version.ts";
import { ControlError } from "./errors.ts";
import { cannotRun, doesNotStart } from "./executable.ts";

declare const NSPROXY_BUILD_VERSION: string | undefined;

/** The environment a successor is started with: the predecessor's private socket, its pid, the generation. */
export const HANDOVER_ENV = { socket: "NSPROXY_HANDOVER", pid: "NSPROXY_HANDOVER_PID", admin: "NSPROXY_HANDOVER_ADMIN", generation: "NSPROXY_GENERATION" } as const;

export interface Generation {
  pid: number;
  version: string;
}

export interface UpgradeResult {
  old: Generation;
  new: Generation;
  /** The successor's admin socket: the old one's path, or another when admin_socket changed in the config. */
  admin_socket: string;
}

/**
 * What the successor says on the handover socket: ready (it serves every tenant the old one served, at
 * `adminSocket`), or why not.
 */
export type HandoverReport = { ready: true; pid: number; version: string; adminSocket?: string } | { ready: false; pid: number; message: string };

/**
 * The program that starts this one again: the compiled binary is its own executable; from source, the
 * same runtime and script (Deno with the flags it needs, see README); `binary`: another nsproxy executable.
 */
export function selfProgram(binary?: string): string[] {
  if (binary) return [binary];
  if (typeof NSPROXY_BUILD_VERSION === "string") return [process.execPath];
  if (typeof Deno !== "undefined") return [process.execPath, "run", "-A", "--unstable-net", process.argv[1]!];
  return [process.execPath, process.argv[1]!];
}

/** The command line that starts this program again with the same arguments (see selfProgram). */
export function selfCommand(binary?: string): string[] {
  return [...selfProgram(binary), ...process.argv.slice(2)];
}

/** How long a successor may take from start to serving every tenant before it is stopped and the upgrade fails. */
const DEFAULT_READY_TIMEOUT_MS = 120_000;

/**
 * One upgrade at a time. While one is under way the daemon's own state must not change (writes are
 * refused with "upgrade in progress": the successor has read the tenants directory already), so the
 * admin control asks `busy` before each write.
 */
export class Handover {
  /** An upgrade is under way: tenant writes and reloads are refused until it ends. */
  busy = false;
  /** This daemon's generation: 1 for a daemon started by hand, one more for each successor. */
  readonly generation = Number(process.env[HANDOVER_ENV.generation] ?? 1) || 1;
  /** When this generation took over from the previous one (ms since the epoch), if it did. */
  takenOverAt: number | undefined;
  /** Whether the admin socket at the path is still this daemon's (set once it serves; see admin/socket.ts). */
  adminOwned: () => boolean = () => false;

  constructor(
    private readonly adminSocket: string,
    /** The metrics listener's address, if any: it lives in the host namespace (see warnHostMigrate). */
    private readonly metricsListen: string | undefined,
    private readonly readyTimeoutMs = Number(process.env.NSPROXY_UPGRADE_TIMEOUT_MS ?? DEFAULT_READY_TIMEOUT_MS),
  ) {}

  /**
   * Start a successor and wait for its report. Resolves once it serves everything this daemon serves
   * and has taken the admin socket (the caller then drains and exits); throws ControlError "failed" with
   * the successor's own error otherwise, leaving this daemon as it was.
   */
  async start(binary?: string): Promise<UpgradeResult> {
    if (this.busy) throw new ControlError("unavailable", "an upgrade is already in progress");
    this.busy = true;
    const path = join(dirname(this.adminSocket), `.nsproxy-handover-${process.pid}.sock`);
    let server: HttpServer | undefined;
    let child: ChildProcess | undefined;
    try {
      const command = selfCommand(binary);
      // Before anything starts: a file that cannot run here is said as such, not as an exit code; one
      // that fails before nsproxy's own code runs (the loader, the runtime) says why in its own words.
      const cannot = cannotRun(command[0]!) ?? (await doesNotStart(selfProgram(binary)));
      if (cannot) throw new ControlError("failed", `upgrade failed, pid ${process.pid} keeps serving: ${cannot}`);
      warnHostMigrate(this.metricsListen);
      if (lstatSync(path, { throwIfNoEntry: false })) unlinkSync(path);
      let report!: (r: HandoverReport) => void;
      const reported = new Promise<HandoverReport>((resolve) => (report = resolve));
      let settled = false;
      // The successor asks once; the answer tells it whether it may take the admin socket. After a
      // timeout or its exit has been seen, the answer is no: this daemon has resumed.
      const umask = process.umask(0o077);
      try {
        server = runtime.serveHttp({ unix: path }, async (req) => {
          const body = (await req.json().catch(() => null)) as HandoverReport | null;
          if (!body || typeof body.pid !== "number") return Response.json({ error: "bad report" }, { status: 400 });
          if (settled) return Response.json({ proceed: false }, { status: 409 });
          settled = true;
          report(body);
          return Response.json({ proceed: body.ready });
        });
      } finally {
        process.umask(umask);
      }
      logger.info(`upgrade: starting a successor: ${command.join(" ")}`);
      const env = { ...process.env, [HANDOVER_ENV.socket]: path, [HANDOVER_ENV.pid]: String(process.pid),
        [HANDOVER_ENV.admin]: this.adminSocket, [HANDOVER_ENV.generation]: String(this.generation + 1) };
      // Its logs go where ours go (the journal); it outlives us, so nothing of it is piped to this process.
      child = spawn(command[0]!, command.slice(1), { stdio: ["ignore", "inherit", "inherit"], env, cwd: process.cwd() });
      const started = child;
      const exited = new Promise<HandoverReport>((resolve) => {
        started.once("error", (err) => resolve({ ready: false, pid: started.pid ?? 0, message: `cannot start ${command[0]}: ${err.message}` }));
        started.once("exit", (code, signal) =>
          resolve({ ready: false, pid: started.pid ?? 0, message: `the successor ${command[0]} exited (${signal ?? `code ${code}`}) before it was serving` }),
        );
      });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<HandoverReport>((resolve) => {
        timer = setTimeout(() => resolve({ ready: false, pid: started.pid ?? 0, message: `the successor was not serving within ${this.readyTimeoutMs / 1000} s` }), this.readyTimeoutMs);
      });
      const outcome = await Promise.race([reported, exited, timedOut]);
      clearTimeout(timer);
      settled = true;
      if (!outcome.ready) {
        // A successor that failed stops by itself; one that is late or said nothing is stopped here.
        if (started.exitCode === null && started.signalCode === null) started.kill("SIGTERM");
        throw new ControlError("failed", `upgrade failed, pid ${process.pid} keeps serving: ${outcome.message}`);
      }
      child.unref();
      const adminSocket = outcome.adminSocket ?? this.adminSocket;
      // Answer once the admin socket is the successor's: a client that asks next reaches the new generation.
      // A successor at another path (the config changed) has served there since before it reported.
      const deadline = Date.now() + 5000;
      while (adminSocket === this.adminSocket && this.adminOwned() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      const where = adminSocket === this.adminSocket ? "the admin socket" : `the admin socket at its new path ${adminSocket} (this one's, ${this.adminSocket}, goes away with it)`;
      logger.info(`upgrade: pid ${outcome.pid} (${outcome.version}) serves every tenant and holds ${where}; this daemon (pid ${process.pid}) drains and exits`);
      return { old: { pid: process.pid, version: VERSION }, new: { pid: outcome.pid, version: outcome.version }, admin_socket: adminSocket };
    } catch (err) {
      this.busy = false;
      if (err instanceof ControlError) throw err;
      throw new ControlError("failed", `upgrade failed, pid ${process.pid} keeps serving: ${(err as Error).message}`);
    } finally {
      // Not forced: the successor's answer may still be on its way.
      await server?.stop(false);
      if (lstatSync(path, { throwIfNoEntry: false })?.isSocket()) unlinkSync(path);
    }
  }
}

/**
 * The metrics listener is handed over as the tenants' are (SO_REUSEPORT), but in the host namespace, whose
 * tcp_migrate_req is the operator's (every service there shares it), not nsproxy's to turn on: with it
 * off, a probe that connects as the old listener closes is reset. Said at each upgrade, with the fix.
 */
function warnHostMigrate(metricsListen: string | undefined): void {
  if (!metricsListen) return;
  let value: string;
  try {
    value = readFileSync("/proc/sys/net/ipv4/tcp_migrate_req", "utf8").trim();
  } catch {
    return;
  }
  if (value !== "0") return;
  logger.warn(
    `upgrade: net.ipv4.tcp_migrate_req is 0 in the host namespace: a scrape or probe connecting to the metrics listener ${metricsListen} just as the old one closes is reset; set it to 1 (sysctl.d) to have it moved to the new one`,
  );
}
