// Ingress on real namespaces: one host listener reaching each tenant's own service at the same colliding address
// (127.0.0.1:3000 inside every namespace), routed by Host or by the TLS server name, changed live.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import type { Subprocess } from "bun";
import { type Ca, haveOpenssl, makeCa, makeLeaf, subjectOf } from "./helpers/certs.ts";
import { daemonDir, runNsproxy, startNsproxy, type Running } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, delNetns, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { onOneConnection } from "./helpers/one-connection.ts";
import { freePort } from "./helpers/ports.ts";
import { until } from "./helpers/wait.ts";

const prefix = uniquePrefix("ingress");
const BACKEND = `${import.meta.dir}/helpers/ns-backend.ts`;
const haveWrk = Bun.spawnSync(["sh", "-c", "command -v wrk"]).exitCode === 0;
const backends = new Set<Subprocess>();

/** Start the tenant's own service inside `ns` on 127.0.0.1:`port` (HTTPS with cert/key). */
async function backend(ns: string, name: string, port: number, tls?: { cert: string; key: string }): Promise<Subprocess> {
  const p = Bun.spawn(["ip", "netns", "exec", ns, process.execPath, BACKEND, name, String(port), ...(tls ? [tls.cert, tls.key] : [])], { stdout: "pipe", stderr: "inherit" });
  backends.add(p);
  const reader = p.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  if (!new TextDecoder().decode(value).startsWith("ready")) throw new Error(`backend ${name} in ${ns} did not start`);
  return p;
}

async function get(port: number, host: string, path = "/x"): Promise<{ status: number; body: string }> {
  const r = Bun.spawn(["curl", "-sS", "--max-time", "10", "-H", `Host: ${host}`, "-w", "\n%{http_code}", `http://127.0.0.1:${port}${path}`], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(r.stdout).text();
  await r.exited;
  const cut = out.lastIndexOf("\n");
  return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut) };
}

describe.skipIf(Boolean(skipReason))("ingress", () => {
  let dir: string;
  let d: Running;
  let port: number;
  let sniPort: number;
  let ca: Ca | undefined;
  const [a, b] = [`${prefix}a`, `${prefix}b`];
  let admin: string;

  beforeAll(async () => {
    dir = daemonDir();
    admin = `${dir}/admin.sock`;
    addNetns(a);
    addNetns(b);
    // Both tenants run their service on the same address inside their own namespace.
    await backend(a, "tenant-a", 3000);
    await backend(b, "tenant-b", 3000);
    if (haveOpenssl) {
      ca = makeCa(`${dir}/ca`);
      for (const [ns, host] of [[a, "a.example"], [b, "b.example"]] as const) {
        const leaf = makeLeaf(ca, `${dir}/${ns}`, host, { dns: [host] });
        await backend(ns, `tls-${host}`, 8443, leaf);
      }
    }
    port = freePort();
    sniPort = freePort();
    writeFileSync(
      `${dir}/c.toml`,
      `[daemon]\ningress_listen = ["127.0.0.1:${port}", "sni://127.0.0.1:${sniPort}"]\n` +
        `[tenants.a]\nnetns = "${a}"\ningress_hosts = ["a.example", "*.a.example"]\ningress_backend = "127.0.0.1:3000"\ningress_tls_backend = "127.0.0.1:8443"\n` +
        `[tenants.b]\nnetns = "${b}"\ningress_hosts = ["b.example"]\ningress_backend = "127.0.0.1:3000"\ningress_tls_backend = "127.0.0.1:8443"\n`,
    );
    d = startNsproxy(["run", "-c", `${dir}/c.toml`, "-w", "2", "--admin-socket", admin, "--tenants-dir", `${dir}/tenants.d`]);
    await d.waitFor("attached 2/2");
  });

  afterAll(async () => {
    await d?.stop("SIGKILL");
    for (const p of backends) p.kill("SIGKILL");
    cleanupNetns(prefix);
  });

  test("Host picks the tenant: two services on the same 127.0.0.1:3000 in two namespaces; wildcard; 404 for an unknown host", async () => {
    const ra = await get(port, "a.example");
    expect(ra.status).toBe(200);
    const ea = JSON.parse(ra.body);
    expect(ea.tenant).toBe("tenant-a");
    // The host-side client, as on egress: X-Forwarded-*; no tenant stamp (the client is not a tenant).
    expect(ea.headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(ea.headers["x-forwarded-host"]).toBe("a.example");
    expect(ea.headers["x-forwarded-proto"]).toBe("http");
    expect(ea.headers["x-nsproxy-tenant"]).toBeUndefined();
    expect(JSON.parse((await get(port, "B.Example:80")).body).tenant).toBe("tenant-b");
    expect(JSON.parse((await get(port, "api.a.example")).body).tenant).toBe("tenant-a");
    const unknown = await get(port, "c.example");
    expect(unknown.status).toBe(404);
    expect(unknown.body).toContain("no tenant serves host c.example");
    // The access log says the direction.
    await d.waitFor(/access ingress tenant=a GET "\/x" 200 .* host="a\.example"/);
  });

  test("an unknown Host is answered 404 Not Found, and its access-log line says what was asked for", async () => {
    const [r10] = await onOneConnection(port, ["GET /who/10?q=1 HTTP/1.0\r\nHost: nobody.example\r\n\r\n"]);
    expect(r10!.head).toStartWith("HTTP/1.0 404 Not Found\r\n");
    const [r11] = await onOneConnection(port, ["DELETE /who/11 HTTP/1.1\r\nHost: nobody.example:8080\r\n\r\n"]);
    expect(r11!.head).toStartWith("HTTP/1.1 404 Not Found\r\n");
    await d.waitFor(/access ingress tenant=- GET "\/who\/10\?q=1" 404 \S+ [\d.]+ms host="nobody\.example"$/m);
    await d.waitFor(/access ingress tenant=- DELETE "\/who\/11" 404 \S+ [\d.]+ms host="nobody\.example:8080"$/m);
  });

  test("each request of a keep-alive connection goes to the tenant its own Host names (one after another, and pipelined)", async () => {
    const req = (host: string, i: number) => `GET /k${i} HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
    const hosts = ["a.example", "b.example", "a.example", "api.a.example", "b.example"];
    const expected = ["tenant-a", "tenant-b", "tenant-a", "tenant-a", "tenant-b"];
    for (const pipelined of [false, true]) {
      const rs = await onOneConnection(port, hosts.map(req), { pipelined });
      expect(rs.map((r) => r.status)).toEqual(hosts.map(() => 200));
      expect(rs.map((r) => JSON.parse(r.body).tenant)).toEqual(expected);
      expect(rs.map((r) => new URL(JSON.parse(r.body).url).pathname)).toEqual(hosts.map((_, i) => `/k${i}`));
    }
    // An unknown Host in the middle is refused alone; what came before it was answered by its own tenant.
    const mixed = await onOneConnection(port, [req("b.example", 0), req("c.example", 1)]);
    expect([JSON.parse(mixed[0]!.body).tenant, mixed[1]!.status]).toEqual(["tenant-b", 404]);
  });

  test("a forged X-Forwarded-For from the host-side client is replaced", async () => {
    const r = Bun.spawn(["curl", "-sS", "-H", "Host: a.example", "-H", "X-Forwarded-For: 6.6.6.6", "-H", "X_Forwarded_For: 7.7.7.7", `http://127.0.0.1:${port}/`], { stdout: "pipe" });
    const e = JSON.parse(await new Response(r.stdout).text());
    expect(e.headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(Object.keys(e.headers).some((k) => k.includes("_"))).toBe(false);
  });

  test("a WebSocket through ingress reaches the tenant's own service", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { Host: "b.example" } } as unknown as string[]);
    const got = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("no WebSocket answer")), 5000);
      ws.onopen = () => ws.send("hello");
      ws.onmessage = (ev) => {
        clearTimeout(t);
        resolve(String(ev.data));
      };
      ws.onerror = () => reject(new Error("WebSocket error"));
    });
    ws.close();
    expect(got).toBe("tenant-b:hello");
  });

  test.skipIf(!haveOpenssl)("sni:// passes TLS through by server name: each client sees its own tenant's certificate", async () => {
    for (const [host, cn] of [["a.example", "a.example"], ["b.example", "b.example"], ["x.a.example", "a.example"]] as const) {
      const r = Bun.spawn(["curl", "-sS", "-v", "--max-time", "10", "--cacert", ca!.cert, "--resolve", `${host}:${sniPort}:127.0.0.1`, `https://${host}:${sniPort}/tls`], { stdout: "pipe", stderr: "pipe" });
      const [out, err] = [await new Response(r.stdout).text(), await new Response(r.stderr).text()];
      await r.exited;
      // x.a.example is not in the leaf's names: curl refuses it; what matters is whose certificate it saw.
      expect(subjectOf(err)).toBe(cn);
      if (host !== "x.a.example") expect(JSON.parse(out).tenant).toBe(`tls-${cn}`);
    }
    // An unknown name: the connection is closed, no certificate at all.
    const r = Bun.spawn(["curl", "-sS", "-v", "--max-time", "10", "-k", "--resolve", `nobody.example:${sniPort}:127.0.0.1`, `https://nobody.example:${sniPort}/`], { stdout: "pipe", stderr: "pipe" });
    const err = await new Response(r.stderr).text();
    expect(await r.exited).not.toBe(0);
    expect(subjectOf(err)).toBeUndefined();
  });

  test("a refused backend is a 502 naming the tenant, the backend address and the errno; a host claimed twice is refused", async () => {
    const c = addNetns(`${prefix}c`);
    const add = await runNsproxy(["tenant", "add", "c", "--netns", c, "--ingress-host", "c.example", "--ingress-backend", "127.0.0.1:3999", "--admin-socket", admin]);
    expect(add.stdout).toContain("tenant c: created");
    const r = await get(port, "c.example");
    expect(r.status).toBe(502);
    expect(r.body).toContain(`tenant c backend 127.0.0.1:3999 (netns /run/netns/${c})`);
    expect(r.body).toMatch(/connection refused \(ECONNREFUSED\)/i);
    const twice = await runNsproxy(["tenant", "add", "d", "--netns", c, "--ingress-host", "B.example", "--ingress-backend", "127.0.0.1:3000", "--admin-socket", admin]);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain("ingress host b.example already belongs to tenant 'b'");
    const api = await fetch("http://nsproxy/v1/tenants/d", { unix: admin, method: "PUT", body: JSON.stringify({ netns: c, ingress_hosts: ["b.example"], ingress_backend: "127.0.0.1:3000" }) } as RequestInit);
    expect(api.status).toBe(409);
    const ls = JSON.parse((await runNsproxy(["tenant", "ls", "--json", "--admin-socket", admin])).stdout) as { name: string; ingress?: { hosts: string[]; backend?: string } }[];
    expect(ls.find((t) => t.name === "a")?.ingress).toMatchObject({ hosts: ["a.example", "*.a.example"], backend: "127.0.0.1:3000" });
    await runNsproxy(["tenant", "rm", "c", "--admin-socket", admin]);
    expect((await get(port, "c.example")).status).toBe(404);
  });

  test.skipIf(!haveWrk)("live add and remove under load on another tenant: 0 failed requests there", async () => {
    const e = addNetns(`${prefix}e`);
    await backend(e, "tenant-e", 3000);
    const wrk = Bun.spawn(["wrk", "-t1", "-c4", "-d4s", "-H", "Host: a.example", `http://127.0.0.1:${port}/`], { stdout: "pipe", stderr: "pipe" });
    await Bun.sleep(500);
    for (let i = 0; i < 3; i++) {
      const add = await runNsproxy(["tenant", "add", "e", "--netns", e, "--ingress-host", "e.example", "--ingress-backend", "127.0.0.1:3000", "--admin-socket", admin]);
      expect(add.code).toBe(0);
      expect(JSON.parse((await get(port, "e.example")).body).tenant).toBe("tenant-e");
      await runNsproxy(["tenant", "rm", "e", "--admin-socket", admin]);
      expect((await get(port, "e.example")).status).toBe(404);
    }
    const out = await new Response(wrk.stdout).text();
    await wrk.exited;
    console.log(`  ingress under live changes: ${/(\d+) requests in/.exec(out)?.[0]}`);
    expect(Number(/(\d+) requests in/.exec(out)?.[1] ?? 0)).toBeGreaterThan(100);
    expect(out).not.toMatch(/Socket errors|Non-2xx/);
  });

  test("a tenant replaced by a spec without ingress loses its hosts (404), and keeps serving egress", async () => {
    const g = addNetns(`${prefix}g`);
    await backend(g, "tenant-g", 3000);
    const add = (extra: string[]) => runNsproxy(["tenant", "add", "g", "--netns", g, "-l", "127.0.0.1:8080", "-u", "http://127.0.0.1:9", ...extra, "--admin-socket", admin]);
    expect((await add(["--ingress-host", "g.example", "--ingress-backend", "127.0.0.1:3000"])).code).toBe(0);
    expect(JSON.parse((await get(port, "g.example")).body).tenant).toBe("tenant-g");
    const replaced = await add([]);
    expect(replaced.stdout).toContain("tenant g: replaced");
    await until("g.example unknown", async () => (await get(port, "g.example")).status === 404, 5000);
    const ls = JSON.parse((await runNsproxy(["tenant", "ls", "--json", "--admin-socket", admin])).stdout) as { name: string; state: string; ingress?: unknown }[];
    expect(ls.find((t) => t.name === "g")).toMatchObject({ state: "serving" });
    expect(ls.find((t) => t.name === "g")?.ingress).toBeUndefined();
    await runNsproxy(["tenant", "rm", "g", "--admin-socket", admin]);
  });

  test("namespace deleted: 503 until it is back; re-created: served again", async () => {
    const f = addNetns(`${prefix}f`);
    await backend(f, "tenant-f", 3000);
    expect((await runNsproxy(["tenant", "add", "f", "--netns", f, "--ingress-host", "f.example", "--ingress-backend", "127.0.0.1:3000", "--admin-socket", admin])).code).toBe(0);
    expect(JSON.parse((await get(port, "f.example")).body).tenant).toBe("tenant-f");
    delNetns(f);
    const gone = await until("503 for the deleted namespace", async () => {
      const r = await get(port, "f.example");
      return r.status === 503 ? r : undefined;
    }, 10_000);
    expect(gone.body).toContain("tenant f");
    addNetns(f);
    await backend(f, "tenant-f2", 3000);
    await until("served again", async () => {
      const r = await get(port, "f.example");
      return r.status === 200 && JSON.parse(r.body).tenant === "tenant-f2";
    }, 10_000);
    mkdirSync(`${dir}/unused`, { recursive: true });
  });
});
