// The process's descriptor limit, read where the kernel states it.
import { closeSync, openSync, readFileSync, readSync } from "node:fs";

function parse(text: string): number | undefined {
  const line = text.match(/^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m);
  if (!line) return undefined;
  return line[1] === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(line[1]);
}

/**
 * The soft RLIMIT_NOFILE now in force. Bun (like Go and nginx) raises the soft limit to the hard one at
 * start, so this is what the process can use; Infinity when /proc cannot tell.
 */
export function descriptorLimit(): number {
  try {
    return parse(readFileSync("/proc/self/limits", "utf8")) ?? Number.MAX_SAFE_INTEGER;
  } catch {}
  return Number.MAX_SAFE_INTEGER;
}

/**
 * A reader of the soft limit for the daemon's whole life: /proc/self/limits is opened once and read again
 * from offset 0 each time (the kernel writes it anew), because at the limit no new descriptor can be opened
 * to find out. Undefined when it cannot tell (then the caller keeps what it knew).
 */
export function descriptorLimitReader(): { read(): number | undefined; close(): void } {
  let fd = -1;
  try {
    fd = openSync("/proc/self/limits", "r");
  } catch {}
  const buf = Buffer.alloc(4096);
  return {
    read() {
      if (fd < 0) return undefined;
      try {
        const n = readSync(fd, buf, 0, buf.length, 0);
        return parse(buf.toString("latin1", 0, n));
      } catch {
        return undefined;
      }
    },
    close() {
      if (fd >= 0) closeSync(fd);
      fd = -1;
    },
  };
}
