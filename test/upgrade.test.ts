// Upgrading the running daemon under load on real namespaces: a successor takes every listener, not a request is lost.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, readdirSync, writeFileSync } from "node:fs";
import { AdminClient } from "../src/admin/client.ts";
import { type Ca, haveOpenssl, makeCa, makeLeaf } from "./helpers/certs.ts";
import { daemonDir, ensureBuilt, runNsproxy, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, nsExec, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { startUpstream } from "./helpers/upstream.ts";
import { alive, daemonsWith } from "./helpers/upgrade.ts";

const prefix = uniquePrefix("upg");
const haveWrk = Bun.spawnSync(["sh", "-c", "command -v wrk"]).exitCode === 0;
afterAll(() => cleanupNetns(prefix));

/** Every daemon pid a test saw: killed at the end whatever happens (a successor is not the test's child). */
const seen = new Set<number>();
afterAll(() => {
  for (const pid of seen) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
});

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await Bun.sleep(50);
  }
}

/** Runs inside the TCP-mode tenant's namespace: one WebSocket, a message every 50 ms echoed back, closed by us at the end. */
const WS_CLIENT = (url: string, ms: number) => `
  const r = { sent: 0, echoed: 0, opened: false, closedBy: "", code: 0, mismatched: 0 };
  const ws = new WebSocket(${JSON.stringify(url)});
  let next = 0, timer;
  ws.onopen = () => { r.opened = true; timer = setInterval(() => { ws.send(String(next++)); r.sent++; }, 50); };
  ws.onmessage = (e) => { if (Number(e.data) !== r.echoed) r.mismatched++; r.echoed++; };
  const done = new Promise((res) => { ws.onclose = (e) => { r.code = e.code; if (!r.closedBy) r.closedBy = "server"; clearInterval(timer); res(); }; });
  setTimeout(async () => { clearInterval(timer); await Bun.sleep(300); r.closedBy = r.closedBy || "client"; ws.close(1000); }, ${ms});
  await done;
  console.log(JSON.stringify(r));`;

describe.skipIf(Boolean(skipReason) || !haveWrk || !haveOpenssl)("nsproxy upgrade", () => {
  let dir: string;
  let ca: Ca;
  beforeAll(() => {
    dir = daemonDir();
    ca = makeCa(`${dir}/ca`);
  });

  test("5 upgrades 2 s apart under wrk (keep-alive and Connection: close) and a WebSocket: nothing lost, one daemon left", async () => {
    const up = startUpstream();
    const ws = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req, server) => (server.upgrade(req, { data: undefined }) ? undefined : new Response("websocket only", { status: 400 })),
      websocket: { message: (s, m) => void s.send(m) },
    });
    const nsLive = addNetns(`${prefix}live`);
    const nsTls = addNetns(`${prefix}tls`);
    const nsTcp = addNetns(`${prefix}tcp`);
    const leaf = makeLeaf(ca, `${dir}/secure`, "secure");
    const socket = `${dir}/admin/admin.sock`;
    const config = `${dir}/nsproxy.toml`;
    writeFileSync(
      config,
      `[tenants.secure]\nnetns = "/run/netns/${nsTls}"\nlisten = "https://127.0.0.1:8443"\nupstream = "http://127.0.0.1:${up.port}"\ntls_cert = "${leaf.cert}"\ntls_key = "${leaf.key}"\n\n` +
        `[tenants.db]\nnetns = "/run/netns/${nsTcp}"\nmode = "tcp"\nlisten = "127.0.0.1:8170"\nupstream = "tcp://127.0.0.1:${ws.port}"\n`,
    );
    // A copy of the release binary at another path: one of the upgrades goes to it, and later ones stay on it.
    const copy = `${dir}/nsproxy-copy`;
    copyFileSync(ensureBuilt(), copy);
    const d = startNsproxy(["run", "-c", config, "--no-access-log", "--admin-socket", socket, "--tenants-dir", `${dir}/t.d`, "--shutdown-grace", "20s", "-w", "2"]);
    const admin = new AdminClient(socket);
    seen.add(d.proc.pid);
    try {
      await d.waitFor("attached 2/2");
      // The tenant added at runtime: in the tenants directory, the successors' from their first attach.
      expect((await admin.putTenant("live", { netns: `/run/netns/${nsLive}`, listen: ["127.0.0.1:8160"], upstream: `http://127.0.0.1:${up.port}` })).tenant.state).toBe("serving");

      // wrk's timeout is generous (10 s): this machine is shared, and a late answer is not a lost one.
      const seconds = 14;
      const wrk = (ns: string, extra: string[]) => Bun.spawn(["ip", "netns", "exec", ns, "wrk", "-t1", "-c8", `-d${seconds}s`, "--timeout", "10s", ...extra], { stdout: "pipe", stderr: "pipe" });
      const keepAlive = wrk(nsLive, ["http://127.0.0.1:8160/"]);
      const closing = wrk(nsTls, ["-H", "Connection: close", "https://127.0.0.1:8443/"]);
      const wsRun = nsExec(nsTcp, [process.execPath, "-e", WS_CLIENT("ws://127.0.0.1:8170/", (seconds - 1) * 1000)], 40_000);
      const killer = setTimeout(() => (keepAlive.kill("SIGKILL"), closing.kill("SIGKILL")), 60_000);

      await Bun.sleep(1500);
      const generations: { pid: number; version: string }[] = [{ pid: d.proc.pid, version: (await admin.status()).version }];
      const upgrades: (() => Promise<void>)[] = [
        async () => void (await admin.upgrade()),
        // By signal: the pid changes once the successor holds the admin socket.
        async () => {
          const before = (await admin.status()).pid;
          process.kill(before, "SIGUSR2");
          await until("the SIGUSR2 successor", async () => (await admin.status()).pid !== before, 30_000);
        },
        async () => void (await admin.upgrade(copy)),
        async () => void (await admin.upgrade()),
        // The CLI: prints both pids and versions, and returns once the old one has exited.
        async () => {
          const r = await runNsproxy(["upgrade", "--admin-socket", socket]);
          expect(r.stderr).toBe("");
          expect(r.code).toBe(0);
          expect(r.stdout).toMatch(/^upgrading: pid \d+ \(.+\) -> pid \d+ \(.+\); waiting .*\nupgraded: pid \d+ \(.+\) serves; pid \d+ has exited\n$/);
        },
      ];
      for (const step of upgrades) {
        if (process.env.DEBUG_UPGRADE) console.log(d.stderr());
        const t0 = Date.now();
        await step();
        const s = await admin.status();
        seen.add(s.pid);
        expect(s.pid).not.toBe(generations.at(-1)!.pid);
        expect(s.generation).toBe(generations.length + 1);
        expect(s.tenants).toMatchObject({ total: 3, serving: 3 });
        generations.push({ pid: s.pid, version: s.version });
        await Bun.sleep(Math.max(0, 2000 - (Date.now() - t0)));
      }
      const [ka, cl] = await Promise.all([new Response(keepAlive.stdout).text(), new Response(closing.stdout).text()]);
      await Promise.all([keepAlive.exited, closing.exited]);
      clearTimeout(killer);
      const wsOut = await wsRun;
      const wsResult = JSON.parse(wsOut.stdout.trim().split("\n").at(-1) || "{}");
      const line = (out: string) => `${out.match(/(\d+) requests in/)?.[0]}; ${out.match(/Socket errors.*/)?.[0] ?? "no socket errors"}; ${out.match(/Non-2xx.*/)?.[0] ?? "no non-2xx"}`;
      console.log(`5 upgrades (pids ${generations.map((g) => g.pid).join(" -> ")}): keep-alive ${line(ka)}; Connection: close ${line(cl)}; websocket ${JSON.stringify(wsResult)}`);
      for (const out of [ka, cl]) {
        expect(Number(out.match(/(\d+) requests in/)?.[1])).toBeGreaterThan(200);
        expect(out).not.toContain("Socket errors");
        expect(out).not.toContain("Non-2xx");
      }
      // Held on the first generation through all five upgrades (the grace period is longer than the run), and
      // every message echoed in order; we closed it.
      expect(wsResult).toMatchObject({ opened: true, closedBy: "client", code: 1000, mismatched: 0 });
      expect(wsResult.sent).toBeGreaterThan(100);
      expect(wsResult.echoed).toBe(wsResult.sent);
      // tcp_migrate_req was turned on in each namespace by the successor's attach.
      for (const ns of [nsLive, nsTls, nsTcp]) expect((await nsExec(ns, ["sysctl", "-n", "net.ipv4.tcp_migrate_req"])).stdout.trim()).toBe("1");
      // The old generations exit once their connections are done: one daemon is left, the last one.
      const last = generations.at(-1)!.pid;
      await until("only the last generation left", () => daemonsWith(socket).length === 1, 25_000);
      expect(daemonsWith(socket)).toEqual([last]);
      const live = (await admin.tenants()).find((t) => t.name === "live");
      expect(live?.state).toBe("serving");
      expect((await nsExec(nsLive, ["curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:8160/"])).stdout).toBe("200");
      const status = await admin.status();
      expect(status.generation).toBe(6);
      expect(Date.parse(status.last_upgrade ?? "")).toBeGreaterThan(Date.now() - 60_000);
    } finally {
      await d.stop("SIGKILL");
      for (const pid of daemonsWith(socket)) process.kill(pid, "SIGKILL");
      up.stop(true);
      ws.stop(true);
    }
  }, 120_000);

  test("a successor that cannot start or rejects the config leaves the same pid serving; a second run is refused; a write during the handover is applied once", async () => {
    const up = startUpstream();
    const ns = addNetns(`${prefix}f`);
    const socket = `${dir}/admin2/admin.sock`;
    const config = `${dir}/f.toml`;
    const good = `[tenants.f]\nnetns = "/run/netns/${ns}"\nlisten = "127.0.0.1:8180"\nupstream = "http://127.0.0.1:${up.port}"\n`;
    writeFileSync(config, good);
    // A stand-in for systemd's notify socket: prints each datagram (two expected: READY=1, then the successor's MAINPID=).
    const notifyPath = `${dir}/notify.sock`;
    const script = `import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(${JSON.stringify(notifyPath)})\ns.settimeout(60)\nfor i in range(2): sys.stdout.write(repr(s.recv(4096).decode())+"\\n"); sys.stdout.flush()`;
    const notified = Bun.spawn(["python3", "-c", script], { stdout: "pipe", stderr: "inherit" });
    await until("the notify socket", () => existsSync(notifyPath), 5000);
    // The successors hold back before taking over (a test hook), so that a write arrives during the handover.
    const d = startNsproxy(["run", "-c", config, "--no-access-log", "--admin-socket", socket, "--tenants-dir", `${dir}/t2.d`, "--shutdown-grace", "3s", "-w", "1"], {
      env: { NSPROXY_TEST_HOLD_HANDOVER_MS: "1500", NOTIFY_SOCKET: notifyPath },
    });
    const admin = new AdminClient(socket);
    seen.add(d.proc.pid);
    const get = async () => (await nsExec(ns, ["curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:8180/"])).stdout;
    try {
      await d.waitFor("attached 1/1");
      const pid = d.proc.pid;

      const bad = await runNsproxy(["upgrade", "--admin-socket", socket, "--binary", "/bin/false"]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain(`upgrade failed, pid ${pid} keeps serving: the successor /bin/false exited (code 1) before it was serving`);
      expect((await admin.status()).pid).toBe(pid);
      expect(await get()).toBe("200");

      // The new start reads the file again and refuses it: its own error comes back; the old one keeps the old file.
      writeFileSync(config, `${good}upstrem = "http://x"\n`);
      const rejected = await runNsproxy(["upgrade", "--admin-socket", socket]);
      expect(rejected.code).toBe(1);
      expect(rejected.stderr).toContain(`upgrade failed, pid ${pid} keeps serving: `);
      expect(rejected.stderr).toContain("upstrem");
      expect((await admin.status()).pid).toBe(pid);
      expect(await get()).toBe("200");
      writeFileSync(config, good);

      // A second daemon on the same admin socket is refused, naming the running one and the way to replace it.
      const second = await runNsproxy(["run", "-c", config, "--admin-socket", socket, "--tenants-dir", `${dir}/t2.d`]);
      expect(second.code).not.toBe(0);
      expect(second.stderr).toContain(`(pid ${pid})`);
      expect(second.stderr).toContain("nsproxy upgrade");
      expect((await admin.status()).pid).toBe(pid);

      // tenant add while the successor holds back: refused with 503 by the old one, retried, applied by the new one once.
      const nsAdded = addNetns(`${prefix}g`);
      const upgrading = admin.upgrade();
      await Bun.sleep(300);
      const add = await runNsproxy(["tenant", "add", "added", "--netns", `/run/netns/${nsAdded}`, "-l", "127.0.0.1:8181", "-u", `http://127.0.0.1:${up.port}`, "--admin-socket", socket]);
      const r = await upgrading;
      seen.add(r.new.pid);
      expect(add.code).toBe(0);
      expect(add.stdout + add.stderr).toContain("created");
      const status = await admin.status();
      expect(status.pid).toBe(r.new.pid);
      expect((await admin.tenants()).map((t) => `${t.name}:${t.state}`).sort()).toEqual(["added:serving", "f:serving"]);
      expect(readdirSync(`${dir}/t2.d`)).toEqual(["added.toml"]);
      await until("the old daemon exits", () => !alive(pid), 15_000);
      // systemd keeps tracking the service: the first generation said READY=1, its successor MAINPID= itself.
      expect(await new Response(notified.stdout).text()).toBe(`'READY=1\\n'\n'MAINPID=${r.new.pid}\\nREADY=1\\n'\n`);
    } finally {
      notified.kill();
      await d.stop("SIGKILL");
      for (const p of daemonsWith(socket)) process.kill(p, "SIGKILL");
      up.stop(true);
    }
  }, 90_000);
});
