// The thread invariant: after every attach or detach, no thread of this process is inside a tenant namespace.
import { readdirSync, readlinkSync } from "node:fs";

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
