// A worker that cannot return to its own namespace is terminated and replaced; its tenants are attached again.
import { afterAll, describe, expect, test } from "bun:test";
import { startNsproxy } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, nsExec, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("repl");
afterAll(() => cleanupNetns(prefix));

/** Listening sockets on a port inside a namespace: one per worker (SO_REUSEPORT), none left by a dead worker. */
async function listeners(ns: string, port: number): Promise<number> {
  const r = await nsExec(ns, ["ss", "-Hltn", `sport = :${port}`]);
  return r.stdout.split("\n").filter((l) => l.trim()).length;
}

describe.skipIf(Boolean(skipReason))("worker replacement", () => {
  test("a stranded worker is replaced, every tenant serves again, no listener is lost or doubled", async () => {
    const upstream = startUpstream();
    const calm = addNetns(`${prefix}calm`);
    const bad = addNetns(`${prefix}bad`);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8095", "-u", `http://127.0.0.1:${upstream.port}`, "-n", calm, "-n", bad, "-w", "2"], {
      env: { NSPROXY_FAULT_STRAND_TENANT: bad },
    });
    try {
      // The fault strands both first-generation workers on the bad tenant's attach.
      await d.waitFor(/worker \d terminated \(setns back to own namespace: injected fault/);
      await d.waitFor(`tenant ${bad}: serving after`, 15_000);
      for (const ns of [calm, bad]) {
        const r = await curlIn(ns, "http://127.0.0.1:8095/after");
        expect(r.status).toBe(200);
        expect((JSON.parse(r.body) as Echo).headers["x-nsproxy-tenant"]).toBe(ns);
        expect(await listeners(ns, 8095)).toBe(2);
      }
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  });
});
