// The window rule under load: after attaching hundreds of tenants, every thread is still in the process's own namespace.
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { strayThreads, threadGone } from "../src/netns/threads.ts";
import { ensureBuilt, SOURCE_CLI, startNsproxy, UNDER_DENO } from "./helpers/daemon.ts";
import { addNetns, addNetnsMany, cleanupNetns, skipReason, uniquePrefix } from "./helpers/netns.ts";

const prefix = uniquePrefix("thr");
const COUNT = 300;

afterAll(() => cleanupNetns(prefix));

describe.skipIf(Boolean(skipReason))("thread invariant", () => {
  test(`${COUNT} tenants x 2 addresses x 2 workers: no thread left in a tenant namespace`, async () => {
    const names = Array.from({ length: COUNT }, (_, i) => `${prefix}${i}`);
    addNetnsMany(names);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8080", "-l", "127.0.0.1:8081", "-u", "http://127.0.0.1:9", "-w", "2", "--no-access-log", ...names.flatMap((n) => ["-n", n])], {
      // The shipped binary: its allocation pattern is the one that must hold (the source run differs). Under
      // Deno there is no binary: the source run is what ships.
      command: UNDER_DENO ? SOURCE_CLI : [ensureBuilt()],
    });
    try {
      await d.waitFor(`attached ${COUNT}/${COUNT} tenants on 2 workers`, 30_000);
      const pid = d.proc.pid;
      // The daemon runs with the settings that keep the runtime from starting threads inside the window (Deno needs none).
      if (!UNDER_DENO) expect(readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")).toContain("BUN_JSC_numberOfGCMarkers=1");
      const own = readlinkSync(`/proc/${pid}/ns/net`);
      const stray = readdirSync(`/proc/${pid}/task`)
        .map((tid) => {
          try {
            return { tid, comm: readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim(), ns: readlinkSync(`/proc/${pid}/task/${tid}/ns/net`) };
          } catch {
            return undefined; // exited while we looked
          }
        })
        .filter((t) => t && t.ns !== own);
      expect(stray).toEqual([]);
      // The daemon's own runtime check agrees.
      expect(d.stderr()).not.toContain("bug in nsproxy");
      // Each worker holds both listeners of every tenant: 2 workers x 2 addresses x COUNT sockets.
      const sockets = readdirSync(`/proc/${pid}/fd`).filter((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:");
        } catch {
          return false;
        }
      });
      expect(sockets.length).toBeGreaterThanOrEqual(2 * 2 * COUNT);
    } finally {
      await d.stop("SIGKILL");
    }
  });

  test("the runtime check names a thread left in a tenant namespace, and no longer once it has ended", async () => {
    const ns = addNetns(`${prefix}stray`);
    expect(strayThreads()).toEqual([]);
    const w = new Worker(new URL("./helpers/stray-worker.ts", import.meta.url));
    try {
      const entered = new Promise<{ rc: number; tid: number }>((resolve) => (w.onmessage = (ev) => resolve(ev.data)));
      w.postMessage(`/run/netns/${ns}`);
      const { rc, tid } = await entered;
      expect(rc).toBe(0);
      // The test process runs without the daemon's window-safe settings: a GC helper the worker starts may
      // join it there (seen), so the check must name this thread, among any others.
      expect(strayThreads()).toContainEqual({ tid: String(tid), netns: `net:[${statSync(`/run/netns/${ns}`).ino}]` });
      w.terminate();
      expect(await threadGone(tid)).toBe(true);
      expect(strayThreads().map((s) => s.tid)).not.toContain(String(tid));
    } finally {
      w.terminate();
    }
  });
});
