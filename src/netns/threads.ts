// The thread invariant: after every attach or detach, no thread of this process is inside a tenant namespace.
import { existsSync, readdirSync, readlinkSync } from "node:fs";

export interface StrayThread {
  tid: string;
  netns: string;
}

/** Threads whose network namespace is not the process's own (/proc/self/ns/net). Empty when all is well. */
export function strayThreads(): StrayThread[] {
  const own = readlinkSync("/proc/self/ns/net");
  const stray: StrayThread[] = [];
  for (const tid of readdirSync("/proc/self/task")) {
    let netns: string;
    try {
      netns = readlinkSync(`/proc/self/task/${tid}/ns/net`);
    } catch {
      continue; // the thread exited while we looked
    }
    if (netns !== own) stray.push({ tid, netns });
  }
  return stray;
}

/** The calling thread's id (/proc/thread-self is a link to PID/task/TID). */
export function ownThreadId(): number {
  return Number(readlinkSync("/proc/thread-self").split("/").at(-1));
}

/** Resolves true once thread `tid` of this process has ended, false if it is still there after timeoutMs. */
export async function threadGone(tid: number, timeoutMs = 2000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (tid > 0 && existsSync(`/proc/self/task/${tid}`)) {
    if (Date.now() > end) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}
