// For upgrade tests: which daemons of a test are alive (a successor is not the test's child), killed at the end whatever happens.
import { afterAll } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";

export const alive = (pid: number): boolean => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ");

/** Processes whose command line names `needle` (a test's admin socket or config file): the daemons of that test. */
export function daemonsWith(needle: string): number[] {
  const found: number[] = [];
  for (const p of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      if (readFileSync(`/proc/${p}/cmdline`, "utf8").includes(needle) && alive(Number(p))) found.push(Number(p));
    } catch {}
  }
  return found;
}

/** The children of `pid` (a daemon's successor while it starts). */
export function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const p of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) found.push(Number(p));
    } catch {}
  }
  return found;
}

const needles = new Set<string>();
/** Kill, after the test file, every process whose command line names `needle`. */
export function killAfterwards(needle: string): void {
  needles.add(needle);
}
afterAll(() => {
  for (const n of needles) {
    for (const pid of daemonsWith(n)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
  }
});
