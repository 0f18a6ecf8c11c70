// `nsproxy top` against a daemon on a real namespace: --once --json carries exact counts, plain --once has no terminal codes.
import { afterAll, describe, expect, test } from "bun:test";
import type { StatsView, StatusView } from "../src/admin/types.ts";
import { daemonDir, runNsproxy, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("top");
afterAll(() => cleanupNetns(prefix));

/** A daemon serving one fresh namespace on 127.0.0.1:port, with an admin socket for `top`, once it has attached. */
async function serveOne(name: string, port: number) {
  const upstream = startUpstream();
  const ns = addNetns(`${prefix}${name}`);
  const dir = daemonDir();
  const socket = `${dir}/admin/admin.sock`;
  const d = startNsproxy(["run", "-l", `127.0.0.1:${port}`, "-u", `http://127.0.0.1:${upstream.port}`, "-n", ns, "--admin-socket", socket, "--tenants-dir", `${dir}/tenants.d`]);
  await d.waitFor("attached 1/1");
  return { upstream, ns, socket, d };
}

describe.skipIf(Boolean(skipReason))("nsproxy top", () => {
  test("--once --json: the tenant with its exact request count; --once: a header and its line, no ANSI codes", async () => {
    const { upstream, ns, socket, d } = await serveOne("a", 8193);
    try {
      const N = 5;
      for (let i = 0; i < N; i++) expect((await curlIn(ns, `http://127.0.0.1:8193/top${i}`)).status).toBe(200);
      // The daemon takes a rate sample each second.
      await Bun.sleep(1500);

      const json = await runNsproxy(["top", "--once", "--json", "--admin-socket", socket]);
      expect(json.stderr).toBe("");
      expect(json.code).toBe(0);
      const view = JSON.parse(json.stdout) as StatsView;
      expect(typeof view.time).toBe("number");
      expect(Math.abs(Date.now() - view.time)).toBeLessThan(60_000);
      const t = view.tenants.find((x) => x.name === ns);
      expect(t).toBeDefined();
      expect(t!.state).toBe("serving");
      expect(t!.requests_total).toBe(N);
      expect(t!.errors_total).toBe(0);
      expect(t!.open_connections).toBe(0);
      expect(t!.bytes_in_total).toBeGreaterThan(N * 40);
      expect(t!.bytes_out_total).toBeGreaterThan(N * 100);
      for (const k of ["requests_total", "errors_total", "bytes_in_total", "bytes_out_total", "open_connections", "requests_per_second", "errors_per_second", "bytes_per_second"] as const) {
        expect(typeof t![k]).toBe("number");
        expect(Number.isFinite(t![k])).toBe(true);
        expect(t![k]).toBeGreaterThanOrEqual(0);
      }

      // Plain: stdout is a pipe here, so no terminal codes, a header with the totals, the titles, the tenant's line.
      const plain = await runNsproxy(["top", "--once", "--admin-socket", socket, "--sort", "name"]);
      expect(plain.code).toBe(0);
      expect(plain.stdout).not.toContain("\x1b");
      const lines = plain.stdout.trimEnd().split("\n");
      expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  1 tenant \(1 serving\)  .* req\/s  .* err\/s  .* conns  .*B\/s  sort: name$/);
      expect(lines[1]).toMatch(/^TENANT\s+REQ\/S\s+ERR\/S\s+CONNS\s+BYTES\/S\s+STATE$/);
      expect(lines.find((l) => l.startsWith(`${ns} `))).toMatch(/ serving$/);

      // status shows the new totals in its human output, and --json passes them through.
      const status = await runNsproxy(["status", "--admin-socket", socket]);
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(/^totals: +requests\/s [\d.]+, open connections \d+, descriptors \d+\/\d+$/m);
      const sj = JSON.parse((await runNsproxy(["status", "--json", "--admin-socket", socket])).stdout) as StatusView;
      expect(sj.totals).toBeDefined();
      expect(sj.totals!.descriptors_open).toBeGreaterThan(0);
      expect(sj.totals!.descriptors_limit).toBeGreaterThanOrEqual(sj.totals!.descriptors_open);
      expect(sj.totals!.open_connections).toBe(0);
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  });

  test("live, not a terminal: a block per refresh until SIGINT, which exits 0", async () => {
    const { upstream, ns, socket, d } = await serveOne("b", 8194);
    try {
      const top = startNsproxy(["top", "--admin-socket", socket]);
      await top.waitFor(/\n\n.*sort: requests/, 10_000);
      expect(await top.stop("SIGINT")).toBe(0);
      const blocks = top.stdout().trimEnd().split("\n\n");
      expect(blocks.length).toBeGreaterThanOrEqual(2);
      for (const b of blocks) expect(b).toContain(`${ns} `);
      expect(top.stdout()).not.toContain("\x1b");
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  });

  test("no daemon: exit 1, naming the socket", async () => {
    const socket = `${daemonDir()}/none.sock`;
    const r = await runNsproxy(["top", "--once", "--admin-socket", socket]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`daemon not running at ${socket}`);
  });
});
