// What /proc says about a process and the machine: CPU time, memory, the load average.
import { readdirSync, readFileSync } from "node:fs";
import { cpus } from "node:os";

/** utime + stime of every thread of `pid`, in seconds (clock ticks of 10 ms). */
export function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** cpuSeconds, or 0 once the process is gone. */
export function cpuSecondsOr0(pid: number): number {
  try {
    return cpuSeconds(pid);
  } catch {
    return 0;
  }
}

/** The whole machine's busy CPU time so far (all CPUs, /proc/stat: everything but idle and iowait), in seconds. */
export function machineBusySeconds(): number {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1, 9).map(Number); // user nice system idle iowait irq softirq steal
  return (f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!) / 100;
}

/** One memory field of one process (its threads included, not its children), in kB; NaN when it has none. */
export function statusKb(pid: number, field: "VmRSS" | "RssAnon"): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : NaN;
}

/** VmRSS (or RssAnon) of a process and every descendant, in kB. */
export function rssKb(pid: number, field: "VmRSS" | "RssAnon" = "VmRSS"): number {
  const kids = new Map<number, number[]>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${d}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(d)]);
    } catch {}
  }
  let total = 0;
  const walk = (p: number) => {
    try {
      total += statusKb(p, field) || 0;
    } catch {}
    for (const k of kids.get(p) ?? []) walk(k);
  };
  walk(pid);
  return total;
}

/**
 * The memory of several processes of one program (HAProxy split over processes): their anonymous memory summed, plus
 * the largest file-backed part once (the same executable and libraries, shared in the page cache, which a plain sum
 * would count once per process). For one process: its VmRSS. `sumKb` is the plain sum of VmRSS, for the notes.
 */
export function groupRssKb(pids: number[]): { rssKb: number; anonKb: number; sumKb: number } {
  const each = pids.map((p) => ({ rss: rssKb(p), anon: rssKb(p, "RssAnon") }));
  const anonKb = each.reduce((a, e) => a + e.anon, 0);
  return { rssKb: anonKb + Math.max(...each.map((e) => e.rss - e.anon)), anonKb, sumKb: each.reduce((a, e) => a + e.rss, 0) };
}

/** The 1, 5 and 15 minute load averages, as /proc/loadavg writes them. */
export const loadavg = () => readFileSync("/proc/loadavg", "utf8").trim().split(" ").slice(0, 3).join(" ");

/** CPU count and model, RAM and kernel, for a report's first line. */
export function machine(): { cpus: number; model: string; memGb: number; kernel: string } {
  const model = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "?";
  const kernel = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  const memGb = Number(/MemTotal:\s+(\d+)/.exec(readFileSync("/proc/meminfo", "utf8"))?.[1] ?? 0) / 1048576;
  return { cpus: cpus().length, model, memGb, kernel };
}
