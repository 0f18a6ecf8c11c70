// The process's descriptor limit, read where the kernel states it.
import { readFileSync } from "node:fs";

/**
 * The soft RLIMIT_NOFILE now in force. Bun (like Go and nginx) raises the soft limit to the hard one at
 * start, so this is what the process can use; Infinity when /proc cannot tell.
 */
export function descriptorLimit(): number {
  try {
    const line = readFileSync("/proc/self/limits", "utf8").match(/^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m);
    if (line) return line[1] === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(line[1]);
  } catch {}
  return Number.MAX_SAFE_INTEGER;
}

