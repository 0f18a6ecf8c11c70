// Two trees' engines in one process, rounds alternated: the CPU time per exchange of A and B under the same load (a shared machine's noise hits both).
// Usage: bun bench/engine-ab.ts DIR_A DIR_B [LOG] [ROUNDS] [N]
//   DIR_*: checkouts of nsproxy (e.g. `git archive REV | tar -x -C /tmp/a`); LOG: off, text, json, or A:B as off:text
//   (the access log's own cost). Prints the best and the median round of each and their ratios B/A.
import { openExchange } from "./lib/exchange.ts";

const [dirA, dirB, logArg = "off", roundsArg = "20", nArg = "20000"] = process.argv.slice(2);
if (!dirA || !dirB) throw new Error("usage: bun bench/engine-ab.ts DIR_A DIR_B [LOG] [ROUNDS] [N]");
const [logA, logB] = logArg.includes(":") ? logArg.split(":") : [logArg, logArg];
const rounds = Number(roundsArg);
const n = Number(nArg);

/** One keep-alive exchange loop over `dir`'s engine (lib/exchange.ts, as engine-micro.ts). */
async function exchanges(dir: string, log: string | undefined): Promise<() => void> {
  const { ProxyConn } = await import(`${dir}/src/engine/conn.ts`);
  const { makeStamp } = await import(`${dir}/src/engine/rewrite.ts`);
  const { accessLog } = await import(`${dir}/src/proxy/access-log.ts`);
  const access = log === "text" || log === "json" ? accessLog(log, () => {}) : undefined;
  const { exchange } = openExchange({ ProxyConn, makeStamp }, { stats: new Float64Array(64), access });
  return () => {
    for (let i = 0; i < n; i++) exchange();
  };
}

// The same directory twice would be one module instance: compare a tree with itself through a copy.
const a = await exchanges(dirA, logA);
const b = await exchanges(dirB, logB);
for (let i = 0; i < 5; i++) {
  a();
  b();
}
const ns: { a: number[]; b: number[] } = { a: [], b: [] };
const cpu = (f: () => void) => {
  const c0 = process.cpuUsage();
  f();
  const c = process.cpuUsage(c0);
  return ((c.user + c.system) * 1e3) / n;
};
for (let r = 0; r < rounds; r++) {
  // A first in even rounds, B first in odd ones: neither always runs right after a GC of the other.
  if (r % 2 === 0) ns.a.push(cpu(a)), ns.b.push(cpu(b));
  else ns.b.push(cpu(b)), ns.a.push(cpu(a));
}
const best = (v: number[]) => Math.min(...v);
const median = (v: number[]) => [...v].sort((x, y) => x - y)[v.length >> 1]!;
console.log(
  `log ${logArg}, ${rounds} rounds of ${n}: A best ${best(ns.a).toFixed(0)} median ${median(ns.a).toFixed(0)} ns CPU; B best ${best(ns.b).toFixed(0)} median ${median(ns.b).toFixed(0)}; B/A best ${(best(ns.b) / best(ns.a)).toFixed(3)} median ${(median(ns.b) / median(ns.a)).toFixed(3)}`,
);
