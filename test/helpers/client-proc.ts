// ns-client.ts as a long-lived process (holding connections, keeping a load going), and a process's CPU time.
import type { Subprocess } from "bun";
import { afterAll } from "bun:test";
import { readFileSync } from "node:fs";

const CLIENT = `${import.meta.dir}/ns-client.ts`;
const spawned = new Set<Subprocess>();
afterAll(() => {
  for (const p of spawned) p.kill("SIGKILL");
});

/** ns-client.ts in `ns` (or on the host), once it says `ready` on stderr; `result()` is its JSON line. Killed after the file's tests. */
export async function startClient(ns: string | undefined, args: string[], ready: string) {
  const argv = [...(ns ? ["ip", "netns", "exec", ns] : []), process.execPath, CLIENT, ...args];
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  spawned.add(proc);
  const reader = proc.stderr.getReader();
  let err = "";
  while (!err.includes(ready)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`client ${args[0]} ended before ${ready}: ${err}`);
    err += Buffer.from(value).toString();
  }
  reader.releaseLock();
  return { proc, result: async () => JSON.parse(await new Response(proc.stdout).text()) };
}

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}
