// The new generation's side of an upgrade: share the predecessor's listeners, match what it serves, report back.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { AdminClient } from "../admin/client.ts";
import { logger } from "../log.ts";
import { listenersOn } from "../netns/tcp-table.ts";
import { runtime } from "../runtime/index.ts";
import { VERSION } from "../version.ts";
import { HANDOVER_ENV, type HandoverReport } from "./handover.ts";

/** The daemon this one takes over from, when it was started by `nsproxy upgrade` (or SIGUSR2). */
export interface Predecessor {
  pid: number;
  /** Its private handover socket (see handover.ts). */
  socket: string;
  /** Its admin socket (this daemon's may differ, when the file changed). */
  adminSocket: string;
}

export function predecessor(): Predecessor | undefined {
  const socket = process.env[HANDOVER_ENV.socket];
  const pid = Number(process.env[HANDOVER_ENV.pid]);
  const adminSocket = process.env[HANDOVER_ENV.admin];
  if (!socket || !adminSocket || !Number.isInteger(pid) || pid <= 0) return undefined;
  return { socket, pid, adminSocket };
}

/** The inodes of every socket process `pid` holds: read once, as the handover starts (its listeners do not change meanwhile). */
export function socketInodes(pid: number): Set<number> {
  const found = new Set<number>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return found;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) found.add(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return found;
}

/**
 * Whether a listener address held by sockets `holders` may be shared: only when every one of them is the
 * predecessor's. A stranger beside it (or instead of it) is refused as at any other start.
 */
export function sharedWith(pred: Set<number>): (holders: number[]) => boolean {
  return (holders) => holders.length > 0 && holders.every((h) => pred.has(h));
}

/**
 * Whether every listener on host:port in this process's namespace (the host's: the metrics listener) is
 * process `pid`'s, so that a successor may bind beside them.
 */
export function heldOnlyBy(pid: number, host: string, port: number): boolean {
  const table = (v6: boolean) => {
    try {
      return readFileSync(`/proc/self/net/tcp${v6 ? "6" : ""}`, "utf8");
    } catch {
      return "";
    }
  };
  return sharedWith(socketInodes(pid))([...listenersOn(table(false), host, port), ...listenersOn(table(true), host, port)]);
}

/** The tenants serving in the predecessor, asked over its admin socket before this daemon takes that over. */
export async function servingBefore(adminSocket: string): Promise<Set<string>> {
  const tenants = await new AdminClient(adminSocket, 30_000).tenants();
  return new Set(tenants.filter((t) => t.state === "serving").map((t) => t.name));
}

/**
 * The tenants that served before and are wanted here but do not serve: an upgrade that would lose them
 * fails instead (each line names the tenant and this generation's error). A tenant the new configuration
 * no longer has is the operator's change, not a failure.
 */
export function lostTenants(before: Set<string>, now: Map<string, { state: string; error?: string }>): string[] {
  const lost: string[] = [];
  for (const name of before) {
    const t = now.get(name);
    if (t && t.state !== "serving") lost.push(`tenant ${name}: serving in the running daemon, ${t.state} here${t.error ? `: ${t.error}` : ""}`);
  }
  return lost;
}

/**
 * Tell the predecessor how it went. Ready: true when it agrees that this daemon takes over (it has
 * not given up waiting); the caller then takes the admin socket. A failure is reported and returns false.
 */
export async function report(pred: Predecessor, r: { ready: true; adminSocket: string } | { ready: false; message: string }): Promise<boolean> {
  const body: HandoverReport = r.ready ? { ready: true, pid: process.pid, version: VERSION, adminSocket: r.adminSocket } : { ready: false, pid: process.pid, message: r.message };
  try {
    const res = await runtime.fetchUnix(pred.socket, "http://localhost/report", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const answer = (await res.json().catch(() => ({}))) as { proceed?: boolean };
    return res.ok && answer.proceed === true;
  } catch (err) {
    logger.warn(`upgrade: could not report to the running daemon (pid ${pred.pid}) at ${pred.socket}: ${(err as Error).message}`);
    return false;
  }
}
