// Exact per-tenant counts when requests are pipelined: N requests written at once on one connection are N responses in /metrics and `nsproxy top`'s stats, never more.
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import parse from "parse-prometheus-text-format";
import { AdminClient } from "../src/admin/client.ts";
import { daemonDir, startNsproxy } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, nsExec, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { freePort } from "./helpers/ports.ts";
import { startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("pipe");
const CLIENT = [process.execPath, `${import.meta.dir}/helpers/ns-client.ts`];
afterAll(() => cleanupNetns(prefix));

function sample(text: string, name: string, labels: Record<string, string>): number {
  const m = parse(text)
    .find((f) => f.name === name)
    ?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  if (!m) throw new Error(`no sample ${name}${JSON.stringify(labels)}`);
  return Number(m.value);
}

describe.skipIf(Boolean(skipReason))("pipelined counts", () => {
  test("N pipelined requests on one connection count N responses for the tenant, and the other tenant none", async () => {
    const upstream = startUpstream();
    const [a, b] = [addNetns(`${prefix}a`), addNetns(`${prefix}b`)];
    const port = freePort();
    const dir = daemonDir();
    writeFileSync(
      `${dir}/nsproxy.toml`,
      `[daemon]\nmetrics_listen = "127.0.0.1:${port}"\n\n[defaults]\nlisten = "127.0.0.1:8190"\nupstream = "http://127.0.0.1:${upstream.port}"\n\n` +
        `[tenants.pa]\nnetns = "${a}"\n\n[tenants.pb]\nnetns = "${b}"\n`,
    );
    const socket = `${dir}/admin/admin.sock`;
    const d = startNsproxy(["run", "--config", `${dir}/nsproxy.toml`, "--no-access-log", "--admin-socket", socket, "--tenants-dir", `${dir}/t.d`]);
    try {
      await d.waitFor("attached 2/2");
      const N = 25;
      // All written at once; the last asks the proxy to close, so the reply ends with the connection.
      const requests = Array.from({ length: N }, (_, i) => `GET /p${i} HTTP/1.1\r\nHost: h\r\n${i === N - 1 ? "Connection: close\r\n" : ""}\r\n`).join("");
      const r = await nsExec(a, [...CLIENT, "send", "127.0.0.1", "8190", Buffer.from(requests, "latin1").toString("base64"), "2000", "0", "full"]);
      const out = JSON.parse(r.stdout) as { reply: string; closed: boolean };
      const reply = Buffer.from(out.reply, "base64").toString("latin1");
      expect(reply.match(/HTTP\/1\.1 200 /g)?.length).toBe(N);
      expect(out.closed).toBe(true);

      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(sample(text, "nsproxy_tenant_http_responses_total", { tenant: "pa", code: "2xx" })).toBe(N);
      expect(sample(text, "nsproxy_tenant_connections_total", { tenant: "pa" })).toBe(1);
      expect(sample(text, "nsproxy_tenant_http_responses_total", { tenant: "pb", code: "2xx" })).toBe(0);
      const stats = await new AdminClient(socket).stats();
      expect(stats.tenants.map((t) => [t.name, t.requests_total, t.errors_total])).toEqual([
        ["pa", N, 0],
        ["pb", 0, 0],
      ]);
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 30_000);
});
