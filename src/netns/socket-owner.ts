// Which process holds a socket, by its inode: the pid named when a tenant's address is taken by someone else.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** How long a search may take: it runs on the main thread, once per failed attach (backed off). */
const BUDGET_MS = 200;

export interface SocketOwner {
  pid: number;
  /** Its command name (/proc/PID/comm). */
  comm: string;
}

/**
 * The first process with an fd on one of the sockets `inodes` (threads share their process's fd table:
 * /proc/PID/fd is enough). Undefined when none is found within the budget or /proc cannot be read (a
 * process of another user needs CAP_SYS_PTRACE). This process is looked at last: it may hold 10,000
 * listeners, and it is the holder only when a tenant of its own is going away at that moment.
 */
export function socketOwner(inodes: number[], budgetMs = BUDGET_MS): SocketOwner | undefined {
  if (inodes.length === 0) return undefined;
  const wanted = new Set(inodes.map((i) => `socket:[${i}]`));
  const deadline = performance.now() + budgetMs;
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((n) => /^\d+$/.test(n));
  } catch {
    return undefined;
  }
  const self = String(process.pid);
  pids = [...pids.filter((p) => p !== self), self];
  let looked = 0;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to look at
    }
    for (const fd of fds) {
      if (++looked % 256 === 0 && performance.now() > deadline) return undefined;
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (!wanted.has(link)) continue;
      let comm = "?";
      try {
        comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      } catch {}
      return { pid: Number(pid), comm };
    }
  }
  return undefined;
}
