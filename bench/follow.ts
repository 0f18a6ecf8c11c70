// Following namespaces, as figures: `ip netns del` of a served namespace → the daemon's listening sockets in it
// closed (so the kernel can free it), and `ip netns add` → answering there. (test/follow.test.ts checks that both
// happen; how fast is measured here.) Usage (root): bun bench/follow.ts [rounds]
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { addNamespaces, collectLines, ensureBinary, NSPROXY, PREFIX, requireRoot, sh, spawn, stop, TMP } from "./lib/setup.ts";

const rounds = Number(process.argv[2] ?? 10);
requireRoot();
ensureBinary();

/** TCP sockets of the daemon (unix ones are its admin socket): before any request, the tenants' listeners. */
function sockets(pid: number): number {
  const unix = new Set(readFileSync(`/proc/${pid}/net/unix`, "utf8").split("\n").slice(1).map((l) => l.trim().split(/\s+/)[6]));
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m && !unix.has(m[1])) n++;
    } catch {}
  }
  return n;
}

/** Milliseconds from `t0` (taken before the command that starts the change) until `probe` holds. */
async function poll(what: string, probe: () => boolean, t0 = performance.now(), limitMs = 10_000): Promise<number> {
  while (!probe()) {
    if (performance.now() - t0 > limitMs) throw new Error(`no ${what} within ${limitMs} ms`);
    await Bun.sleep(2);
  }
  return performance.now() - t0;
}

const ns = `${PREFIX}follow`;
const d = spawn([NSPROXY, "run", "-l", "127.0.0.1:8140", "-u", "http://127.0.0.1:9", "-n", ns, "-w", "2", "--no-access-log", "--admin-socket", `${TMP}/admin.sock`, "--tenants-dir", `${TMP}/t.d`], 10 * 60_000);
const log: string[] = [];
void collectLines(d.stderr, log);
const released: number[] = [];
const served: number[] = [];
try {
  addNamespaces([ns]);
  await poll("start-up", () => log.some((l) => l.includes("attached 1/1")));
  for (let i = 0; i < rounds; i++) {
    const base = sockets(d.pid);
    let t0 = performance.now();
    sh(["ip", "netns", "del", ns]);
    released.push(await poll("release", () => sockets(d.pid) <= base - 2, t0));
    t0 = performance.now();
    sh(["ip", "netns", "add", ns]);
    served.push(await poll("re-attach", () => sockets(d.pid) >= base, t0));
  }
} finally {
  await stop(d);
}
const figures = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `median ${s[s.length >> 1]!.toFixed(0)} ms, min ${s[0]!.toFixed(0)}, max ${s.at(-1)!.toFixed(0)} (${s.length} rounds)`;
};
console.log(`namespace deleted -> its listening sockets closed: ${figures(released)}`);
console.log(`namespace added again -> listening in it again:    ${figures(served)}`);
